"""EnvironmentsView: the apps x environments table, read from git once per tip.

The dashboard polls it, so the git part (pins, pinning commits, signatures) is read once
per tip of the default branch as the index follows it, and kept; a poll between two tips
reads two rows from the index (its tip) and the latest deployments. A new tip that
descends from the one read is read incrementally (bot/promotions/pin_read.py): only the
pins its commits touch. Assembly is in bot/promotions/environments.py, git reads in
bot/manifests/pins.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import split_image
from bot.policy.model import AppTarget, Policy
from bot.promotions.environments import PinFacts, cell, replaced, with_health
from bot.promotions.pin_index import pins_value
from bot.promotions.pin_read import PinReader, Snapshot, overlay_value
from bot.store.artifact_record import ArtifactRecord
from bot.store.deployment_record import Deployment
from bot.store.deployments import DeploymentIndex
from bot.store.index import ArtifactIndex

log = logging.getLogger(__name__)

Cache = tuple[str | None, Policy, list[PinFacts]]


class EnvironmentsView:
    def __init__(
        self,
        mirror: Mirror,
        index: ArtifactIndex,
        deployments: DeploymentIndex,
        policy: Callable[[], Policy],
        gnupghome: Path,
        fingerprint: str,
    ) -> None:
        self._mirror = mirror
        self._index = index
        self._deployments = deployments
        self._policy = policy
        self._gnupghome = gnupghome
        self._fingerprint = fingerprint
        self._cache: Cache | None = None  # replaced whole: readers need no lock
        self._reader = PinReader(mirror, index, gnupghome, fingerprint)
        self._snapshot: Snapshot | None = None  # the last read, the next one builds on it
        self._reading = threading.Lock()  # one read at a time; the others then find it

    # -- the table ------------------------------------------------------------------
    def table(self, app: str | None = None) -> dict[str, Any]:
        """{"tip", "environments", "apps": [{"app", "environments": {env: cell}}]}."""
        policy = self._policy()
        tip = self._index.tip()
        cached = self._cache
        if cached is None or cached[0] != tip or cached[1] is not policy:
            cached = self._refresh(tip, policy)
        latest = self._deployments.latest_by_place()
        apps: dict[str, dict[str, Any]] = {}
        for facts in cached[2]:
            if app is not None and facts.app != app:
                continue
            deployment = latest.get((facts.app, facts.env))
            apps.setdefault(facts.app, {})[facts.env] = with_health(
                cell(facts), deployment, self._version(deployment)
            )
        return {
            "tip": cached[0],
            "environments": list(policy.environment_names),
            "apps": [{"app": name, "environments": envs} for name, envs in apps.items()],
        }

    def _version(self, deployment: Deployment | None) -> str | None:
        if deployment is None or deployment.version:
            return None
        found = self._index.get(deployment.artifact_id)
        return str(found.record.version) if found else None

    def _refresh(self, tip: str | None, policy: Policy) -> Cache:
        with self._reading:
            cached = self._cache  # a read that waited here may find it done
            if cached is not None and cached[0] == tip and cached[1] is policy:
                return cached
            # The lock only while the mirror may move: objects never change, so once the
            # tip is here the reads go by sha without it.
            with self._mirror.locked():
                if tip is not None and not self._mirror.has_commit(tip):
                    tip = self._mirror.tip()  # another replica's commit, not fetched here
            read = self._read(tip, policy) if tip else None
            cached = (tip, policy, list(read.facts.values()) if read else [])
            if tip == self._index.tip():
                self._cache = cached
                self._snapshot = read
            return cached

    def _read(self, tip: str, policy: Policy) -> Snapshot:
        last = self._snapshot
        if last is not None and last.policy is policy:
            try:
                moved = self._reader.update(last, tip)
            except OSError as exc:  # git could not compare the two tips: read it whole
                log.warning("environments: reading %s whole: %s", tip, exc)
                moved = None
            if moved is not None:
                return moved
        return self._reader.full(tip, policy)

    def _value(
        self, commit: str | None, path: str, target: AppTarget, image: str | None
    ) -> str | None:
        if commit is None or (image is None and target.kind == "kustomize"):
            return None
        data = read_path(self._mirror, self._mirror.tree_of(commit), path)
        if data is None:
            return None
        return overlay_value(data, target, image or "")

    # -- for a pin about to be written (PinChange.plan) ---------------------------------
    def unrecorded(
        self, record: ArtifactRecord, target: AppTarget, env: str, current: str | None
    ) -> str | None:
        """The version of the unrecorded pin a new pin of `record` in `env` replaces, or
        None. Called by the writer (or with the mirror locked): reads, never locks."""
        app = record.name
        tip = self._index.tip()
        if current is None or tip is None:
            return None
        image = target.image or split_image(record.image or "x:x")[0]
        try:
            at_tip = self._value(tip, target.path(app, env), target, image)
        except Exception:  # the index's tip is another replica's, not in this mirror yet
            at_tip = current
        if at_tip != current:
            return None  # Ritmo's own pin, written on top of the tip and not followed yet
        last = self._index.last_promoted(app, env)  # the usual case, in two reads
        found = self._index.get(last) if last else None
        if found is not None and pins_value(target, found.record) == current:
            return None
        rollback = self._reader.latest_rollback(app, env)
        if not replaced(current, at_tip, self._reader.expected(app, env, target, rollback)):
            return None
        known = self._reader.known(app, current, target, None)
        return known.version if known else current
