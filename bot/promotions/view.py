"""EnvironmentsView: the apps x environments table, read from git once per tip.

The dashboard polls it, so the git part (pins, pinning commits, signatures) is computed
once per tip of the default branch as the index follows it, and kept; a poll between two
tips reads two rows from the index (its tip) and the latest deployments. Assembly is in
bot/promotions/environments.py, git reads in bot/manifests/pins.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.pins import PinCommit, commits, pinning_commit, recording_candidates
from bot.manifests.records import split_image
from bot.policy.model import AppTarget, Policy
from bot.promotions.environments import Known, PinFacts, cell, replaced, with_health
from bot.promotions.pin import current_value, pinned_value
from bot.store.deployments import DeploymentIndex
from bot.store.index import ArtifactIndex

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

    # -- the table ------------------------------------------------------------------
    def table(self, app: str | None = None) -> dict[str, Any]:
        """{"tip", "environments", "apps": [{"app", "environments": {env: cell}}]}."""
        policy = self._policy()
        tip = self._index.tip()
        cached = self._cache
        if cached is None or cached[0] != tip or cached[1] is not policy:
            with self._mirror.locked():
                if tip is not None and not self._mirror.has_commit(tip):
                    tip = self._mirror.tip()  # another replica's commit, not fetched here
                read = self._read(tip, policy) if tip else []
            cached = (tip, policy, read)
            if tip == self._index.tip():
                self._cache = cached
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

    def _version(self, deployment: dict[str, Any] | None) -> str | None:
        if deployment is None or deployment.get("version"):
            return None
        found = self._index.get(deployment["artifact_id"])
        return str(found.record["version"]) if found else None

    def _read(self, tip: str, policy: Policy) -> list[PinFacts]:
        pins: list[tuple[PinFacts, AppTarget, str | None]] = []
        for app in sorted(set(self._index.names()) | set(policy.app_names)):
            target = policy.target(app)
            image = target.image or self._image_of(app)
            for env in policy.environment_names:
                facts, sha = self._pin(tip, app, env, target, image)
                pins.append((facts, target, sha))
        shas = sorted({sha for _, _, sha in pins if sha})
        read = {c.sha: c for c in commits(self._mirror, shas, self._gnupghome, self._fingerprint)}
        return [self._recorded(tip, f, t, read.get(sha or "")) for f, t, sha in pins]

    def _pin(
        self, tip: str, app: str, env: str, target: AppTarget, image: str | None
    ) -> tuple[PinFacts, str | None]:
        """What the overlay pins at `tip`, what the index expects; and the pinning commit."""
        path = target.path(app, env)
        memo: dict[str | None, str | None] = {None: None}

        def value_at(commit: str | None) -> str | None:
            if commit not in memo:
                memo[commit] = self._value(commit, path, target, image)
            return memo[commit]

        value = value_at(tip)
        pinned = pinning_commit(self._mirror, tip, path, value_at) if value else None
        return PinFacts(app, env, path, value, expected=self._expected(app, env, target)), pinned

    def _recorded(
        self, tip: str, facts: PinFacts, target: AppTarget, commit: PinCommit | None
    ) -> PinFacts:
        """The facts with their pinning commit, what recorded the pin, and its record."""
        if commit is None or facts.value is None:
            return facts
        recorder = commit if commit.ritmo_signed else self._later_record(tip, facts, target, commit)
        artifact = self._known(facts.app, facts.value, target, recorder)
        failed = recorder.one("Ritmo-Rolled-Back") if recorder else None
        rolled_back_from = self._index.get(failed) if failed else None
        return replace(
            facts, artifact=artifact, commit=commit, recorder=recorder,
            rolled_back_from=str(rolled_back_from.record["version"]) if rolled_back_from else None,
        )  # fmt: skip

    def _later_record(
        self, tip: str, facts: PinFacts, target: AppTarget, pinning: PinCommit
    ) -> PinCommit | None:
        """The newest Ritmo-signed commit after the pinning one that records its value."""
        since = pinning.sha
        candidates = recording_candidates(self._mirror, since, tip, facts.env)
        for later in commits(self._mirror, candidates, self._gnupghome, self._fingerprint):
            if not later.ritmo_signed:
                continue
            if later.one("Ritmo-Merge-Commit") == since:
                return later
            into = (later.one("Ritmo-Promotion") or "").partition(" -> ")[2].strip()
            if into != facts.env and later.one("Ritmo-Rollback") != facts.env:
                continue
            record = self._index.get(later.one("Ritmo-Artifact") or "")
            if record is not None and self._pins(target, record.record) == facts.value:
                return later
        return None

    # -- index reads --------------------------------------------------------------------
    def _expected(self, app: str, env: str, target: AppTarget) -> frozenset[str] | None:
        """The values Ritmo last pinned for `app` in `env`, as the index says: its last
        promotion there, or a rollback there at least as recent (both, within a second)."""
        promoted, _ = self._index.search_promotions(app=app, env=env, limit=1)
        last = [(str(p["promoted_at"] or ""), str(p["artifact_id"])) for p in promoted]
        for rollback in self._index.rollbacks(environment=env):
            restored = self._index.get(rollback["restored_artifact"])
            if restored is not None and restored.record["name"] == app:
                last.append((str(rollback["rolled_back_at"] or ""), restored.record["id"]))
                break
        if not last:
            return None
        newest = max(at for at, _ in last)
        values = set()
        for at, artifact_id in last:
            found = self._index.get(artifact_id) if at == newest else None
            value = self._pins(target, found.record) if found else None
            if value is not None:
                values.add(value)
        return frozenset(values)

    def _known(
        self, app: str, value: str, target: AppTarget, recorder: PinCommit | None
    ) -> Known | None:
        ids = [recorder.one("Ritmo-Artifact")] if recorder else []
        candidates = [self._index.get(i) for i in ids if i]
        candidates += self._index.search(name=app, version=value, limit=1)[0]
        for found in candidates:
            if found is not None and self._pins(target, found.record) == value:
                return Known(found.record["id"], str(found.record["version"]))
        return None

    def _image_of(self, app: str) -> str | None:
        newest, _ = self._index.search(name=app, limit=1)
        image = newest[0].record.get("image") if newest else None
        return split_image(str(image))[0] if image else None

    @staticmethod
    def _pins(target: AppTarget, record: dict[str, Any]) -> str | None:
        try:
            return pinned_value(target, record)
        except ValueError:  # PinError: this record cannot be pinned by the target
            return None

    def _value(
        self, commit: str | None, path: str, target: AppTarget, image: str | None
    ) -> str | None:
        if commit is None or (image is None and target.kind == "kustomize"):
            return None
        data = read_path(self._mirror, self._mirror.tree_of(commit), path)
        if data is None:
            return None
        return _overlay_value(data, target, image or "")

    # -- for a pin about to be written (PinChange.plan) ---------------------------------
    def unrecorded(
        self, record: dict[str, Any], target: AppTarget, env: str, current: str | None
    ) -> str | None:
        """The version of the unrecorded pin a new pin of `record` in `env` replaces, or
        None. Called by the writer (or with the mirror locked): reads, never locks."""
        app = record["name"]
        tip = self._index.tip()
        if current is None or tip is None:
            return None
        image = target.image or split_image(str(record.get("image") or "x:x"))[0]
        try:
            at_tip = self._value(tip, target.path(app, env), target, image)
        except Exception:  # the index's tip is another replica's, not in this mirror yet
            at_tip = current
        if at_tip != current:
            return None  # Ritmo's own pin, written on top of the tip and not followed yet
        last = self._index.last_promoted(app, env)  # the usual case, in two reads
        found = self._index.get(last) if last else None
        if found is not None and self._pins(target, found.record) == current:
            return None
        if not replaced(current, at_tip, self._expected(app, env, target)):
            return None
        known = self._known(app, current, target, None)
        return known.version if known else current


@lru_cache(maxsize=8192)
def _overlay_value(data: bytes, target: AppTarget, image: str) -> str | None:
    """The value an overlay's content pins, parsed once per content: a table read after
    a new tip meets the same files again (and a pin's file at its pinning commit is
    usually the tip's), and YAML parsing was most of a read's time."""
    try:
        return current_value(target, data.decode(), image)
    except Exception:  # an overlay someone broke: no value can be read from it
        return None
