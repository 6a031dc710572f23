"""The pins of the environments table, read from git in a few passes and then followed.

A first read asks git a fixed number of questions whatever the number of apps: one log of
the overlays' history (each pin's pinning commit), one batch of overlay blobs, one log of
the commits that may record a pin, one of the pinning commits' signatures. After a new
tip that descends from the one read, only what the new commits touch is read again: the
pins whose overlay they changed, the apps they registered or recorded artifacts for, the
pins a new recording commit may record; every other pin is kept as read.

Reads by commit sha (objects never change): no lock is held here. The index reads, per
pin and cheap, are in bot/promotions/pin_index.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.manifests.pins import (
    PathChange,
    PinCommit,
    commits,
    first_parent_positions,
    new_commits,
    path_changes,
    read_blobs,
    recording_log,
)
from bot.manifests.records import RECORDS_DIR
from bot.manifests.trailers import parse_trailers
from bot.policy.model import AppTarget, Policy
from bot.promotions.environments import Known, PinFacts
from bot.promotions.pin import current_value
from bot.promotions.pin_index import IndexReads, Rollbacks, pins_value
from bot.store.artifact_record import ArtifactRecord
from bot.store.index import ArtifactIndex

Pin = tuple[str, str]  # (app, environment)
_LOOKAHEAD = 8  # changes of one file read per pass while looking for its pinning commit
_KEPT_COMMITS = 65536


@dataclass(frozen=True)
class Snapshot:
    """The pins as read at `tip` under `policy`, in table order (apps sorted, then the
    policy's environments), with what a later read builds on."""

    tip: str
    policy: Policy
    facts: dict[Pin, PinFacts]
    images: dict[str, str | None]  # app -> the image name its overlays pin
    rollbacks: dict[str, Rollbacks]  # env -> each app's latest rollback there


class PinReader(IndexReads):
    def __init__(
        self, mirror: Mirror, index: ArtifactIndex, gnupghome: Path, fingerprint: str
    ) -> None:
        super().__init__(index)
        self._mirror = mirror
        self._gnupghome = gnupghome
        self._fingerprint = fingerprint
        self._commits: dict[str, PinCommit] = {}  # a commit and its signature never change
        self._parsed: dict[str, dict[str, list[str]]] = {}  # sha -> its trailers
        self._artifacts: dict[str, ArtifactRecord | None] = {}  # id -> record, for one read
        self._known: dict[tuple[str, str, AppTarget, str | None], Known | None] = {}  # ditto

    # -- a whole read -------------------------------------------------------------------
    def full(self, tip: str, policy: Policy) -> Snapshot:
        self._forget()
        apps = self.apps(policy)
        images = {app: self.image(policy, app) for app in apps}
        rollbacks = {env: self.rollbacks(env) for env in policy.environment_names}
        pins = [(app, env) for app in apps for env in policy.environment_names]
        facts = self._read(tip, policy, pins, images, rollbacks)
        return Snapshot(tip, policy, facts, images, rollbacks)

    # -- following a new tip ------------------------------------------------------------
    def update(self, old: Snapshot, tip: str) -> Snapshot | None:
        """`old` moved to `tip`, reading again only what changed; None when `tip` does not
        continue `old.tip`'s first-parent line (read it whole)."""
        if tip == old.tip:
            return old
        self._forget()
        moved = new_commits(self._mirror, old.tip, tip)
        if moved is None:
            return None
        policy, envs = old.policy, old.policy.environment_names
        apps = self.apps(policy)
        touched = {p.split("/")[1] for p in moved.paths if p.startswith(f"{RECORDS_DIR}/")}
        fresh = {app for app in apps if app not in old.images or app in touched}
        facts_apps, rolled_envs = self._history_apps(moved.messages)
        images = {a: self.image(policy, a) if a in fresh else old.images[a] for a in apps}
        rollbacks = dict(old.rollbacks)
        for env in rolled_envs & set(envs):
            rollbacks[env] = self.rollbacks(env)
            changed = rollbacks[env].items() ^ old.rollbacks.get(env, {}).items()
            facts_apps |= {app for app, _ in changed}
        reread = [
            (app, env)
            for app in apps
            for env in envs
            if app in fresh or old.facts[(app, env)].path in moved.paths
        ]
        facts = self._read(tip, policy, reread, images, rollbacks)
        recorders = self._new_recorders(old, tip, set(reread))
        kept: dict[Pin, PinFacts] = {}
        for pin in ((app, env) for app in apps for env in envs):
            if pin in facts:
                kept[pin] = facts[pin]
                continue
            was = old.facts[pin]
            if pin in recorders or pin[0] in facts_apps:
                was = replace(was, recorder=recorders.get(pin, was.recorder))
                kept[pin] = self._derived(was, policy.target(pin[0]), rollbacks[pin[1]])
            else:
                kept[pin] = was
        return Snapshot(tip, policy, kept, images, rollbacks)

    def _history_apps(self, messages: Iterable[str]) -> tuple[set[str], set[str]]:
        """The apps whose promotions or rollbacks the index learnt from these commits, and
        the environments rolled back in."""
        apps, envs = set(), set()
        for message in messages:
            trailers = parse_trailers(message)
            for key in ("Ritmo-Artifact", "Ritmo-Rolled-Back"):
                for artifact_id in trailers.get(key, []):
                    found = self._index.get(artifact_id)
                    if found is not None:
                        apps.add(str(found.record.name))
            envs.update(trailers.get("Ritmo-Rollback", []))
        return apps, envs

    def _new_recorders(self, old: Snapshot, tip: str, reread: set[Pin]) -> dict[Pin, PinCommit]:
        """The kept pins a new first-parent commit records: newer than any recorder they
        had, so the first (newest) one that records a pin is its recorder now."""
        new = recording_log(self._mirror, f"{old.tip}..{tip}")
        if not new:
            return {}
        found: dict[Pin, PinCommit] = {}
        waiting = {
            pin: facts
            for pin, facts in old.facts.items()
            if pin not in reread and _looks_for_recorder(facts)
        }
        for pin, facts in waiting.items():
            target = old.policy.target(pin[0])
            recorder = self._first_recorder(facts, target, new)
            if recorder is not None:
                found[pin] = recorder
        return found

    # -- reading pins -------------------------------------------------------------------
    def _read(
        self,
        tip: str,
        policy: Policy,
        pins: list[Pin],
        images: dict[str, str | None],
        rollbacks: dict[str, Rollbacks],
    ) -> dict[Pin, PinFacts]:
        if not pins:
            return {}
        targets = {app: policy.target(app) for app, _ in pins}
        paths = {pin: targets[pin[0]].path(*pin) for pin in pins}
        history = path_changes(self._mirror, tip, set(paths.values()))
        blobs: dict[str, bytes] = {}

        def value(pin: Pin, blob: str | None) -> str | None:
            target, image = targets[pin[0]], images[pin[0]]
            if blob is None or (image is None and target.kind == "kustomize"):
                return None
            return overlay_value(blobs[blob], target, image or "")

        def load(changes: Iterable[PathChange]) -> None:
            wanted = {b for c in changes for b in (c.old, c.new) if b and b not in blobs}
            blobs.update(read_blobs(self._mirror, wanted))

        changes = {pin: history.get(paths[pin], []) for pin in pins}
        load(c[0] for c in changes.values() if c)
        values = {pin: value(pin, c[0].new) if c else None for pin, c in changes.items()}
        pinning: dict[Pin, str] = {}
        cursor = {pin: 0 for pin in pins if values[pin]}
        while cursor:
            load(c for pin, at in cursor.items() for c in changes[pin][at : at + _LOOKAHEAD])
            for pin, at in list(cursor.items()):
                change = changes[pin][at]
                if value(pin, change.new) != value(pin, change.old):
                    pinning[pin] = change.sha
                    del cursor[pin]
                elif at + 1 < len(changes[pin]):
                    cursor[pin] = at + 1
                else:
                    del cursor[pin]  # no commit ever set this value
        read = self._load_commits(set(pinning.values()))
        facts = {pin: PinFacts(*pin, paths[pin], values[pin]) for pin in pins}
        for pin, sha in pinning.items():
            facts[pin] = replace(facts[pin], commit=read.get(sha))
        recorders = self._later_records(tip, facts, targets)
        return {
            pin: self._derived(
                replace(f, recorder=recorders.get(pin, f.commit if f.commit else None)),
                targets[pin[0]],
                rollbacks[pin[1]],
            )
            for pin, f in facts.items()
        }

    def _later_records(
        self, tip: str, facts: dict[Pin, PinFacts], targets: dict[str, AppTarget]
    ) -> dict[Pin, PinCommit | None]:
        """For each pin whose pinning commit is not Ritmo's: the newest Ritmo-signed commit
        after it on the first-parent line that records its value, or None."""
        waiting = {pin: f for pin, f in facts.items() if _looks_for_recorder(f)}
        if not waiting:
            return {}
        log = recording_log(self._mirror, tip)
        place = first_parent_positions(self._mirror, tip) if log else {}
        found: dict[Pin, PinCommit | None] = {}
        for pin, f in waiting.items():
            since = place.get(f.commit.sha if f.commit else "", -1)
            newer = [(sha, m) for sha, m in log if place.get(sha, -1) > since]
            found[pin] = self._first_recorder(f, targets[pin[0]], newer)
        return found

    def _first_recorder(
        self, facts: PinFacts, target: AppTarget, log: list[tuple[str, str]]
    ) -> PinCommit | None:
        """The newest commit of `log` (newer than the pin's commit) that Ritmo signed and
        that records the pin: a forge merge naming its commit, or a promotion or rollback
        into its environment of a record with its value."""
        since = facts.commit.sha if facts.commit else ""
        records = [
            sha
            for sha, message in log
            if _may_record(message, since, facts.env)
            and self._records(facts, target, self._trailers(sha, message), since)
        ]
        read = self._load_commits(set(records))
        return next((read[s] for s in records if s in read and read[s].ritmo_signed), None)

    def _records(
        self, facts: PinFacts, target: AppTarget, trailers: dict[str, list[str]], since: str
    ) -> bool:
        if _one(trailers, "Ritmo-Merge-Commit") == since:
            return True
        into = (_one(trailers, "Ritmo-Promotion") or "").partition(" -> ")[2].strip()
        if into != facts.env and _one(trailers, "Ritmo-Rollback") != facts.env:
            return False
        record = self._artifact(_one(trailers, "Ritmo-Artifact") or "")
        return record is not None and pins_value(target, record) == facts.value

    def _trailers(self, sha: str, message: str) -> dict[str, list[str]]:
        if sha not in self._parsed:
            self._parsed[sha] = parse_trailers(message)
        return self._parsed[sha]

    def _artifact(self, artifact_id: str) -> ArtifactRecord | None:
        """A record by id, once per read (a promotion is checked against many pins)."""
        if artifact_id not in self._artifacts:
            found = self._index.get(artifact_id)
            self._artifacts[artifact_id] = found.record if found else None
        return self._artifacts[artifact_id]

    def _forget(self) -> None:
        self._artifacts.clear()  # records may be indexed since; commits never change
        self._known.clear()
        if len(self._parsed) > _KEPT_COMMITS:
            self._parsed.clear()

    def _load_commits(self, shas: set[str]) -> dict[str, PinCommit]:
        missing = sorted(s for s in shas if s not in self._commits)
        if missing:
            if len(self._commits) + len(missing) > _KEPT_COMMITS:
                self._commits.clear()
            for c in commits(self._mirror, missing, self._gnupghome, self._fingerprint):
                self._commits[c.sha] = c
        return {s: self._commits[s] for s in shas if s in self._commits}

    # -- index reads --------------------------------------------------------------------
    def _derived(self, facts: PinFacts, target: AppTarget, rollbacks: Rollbacks) -> PinFacts:
        """The facts with what the index says: what Ritmo last pinned there, the record
        the value is, the version a recorded rollback replaced."""
        expected = self.expected(facts.app, facts.env, target, rollbacks.get(facts.app))
        facts = replace(facts, expected=expected, artifact=None, rolled_back_from=None)
        if facts.commit is None or facts.value is None:
            return replace(facts, recorder=None)
        recorder = facts.recorder
        failed = recorder.one("Ritmo-Rolled-Back") if recorder else None
        rolled_back_from = self._index.get(failed) if failed else None
        return replace(
            facts,
            artifact=self._known_once(facts.app, facts.value, target, recorder),
            rolled_back_from=str(rolled_back_from.record.version) if rolled_back_from else None,
        )

    def _known_once(
        self, app: str, value: str, target: AppTarget, recorder: PinCommit | None
    ) -> Known | None:
        """`known`, once per read for the same question (environments often pin alike)."""
        key = (app, value, target, recorder.one("Ritmo-Artifact") if recorder else None)
        if key not in self._known:
            self._known[key] = self.known(app, value, target, recorder)
        return self._known[key]


def _looks_for_recorder(facts: PinFacts) -> bool:
    """A pin set by a commit that is not Ritmo's: a later commit may record it."""
    return facts.value is not None and facts.commit is not None and not facts.commit.ritmo_signed


def _one(trailers: dict[str, list[str]], key: str) -> str | None:
    values = trailers.get(key)
    return values[0] if values else None


def _may_record(message: str, since: str, env: str) -> bool:
    """What `git log --grep` picks for a pin in `env` set by `since`: a line naming it as
    a forge merge, or one promoting or rolling back into `env`."""
    if since and f"\nRitmo-Merge-Commit: {since}" in f"\n{message}":
        return True
    return _into(env).search(message) is not None


@lru_cache(maxsize=256)
def _into(env: str) -> re.Pattern[str]:
    e = re.escape(env)
    return re.compile(rf"^Ritmo-Promotion: .* -> {e}$|^Ritmo-Rollback: {e}$", re.MULTILINE)


@lru_cache(maxsize=8192)
def overlay_value(data: bytes, target: AppTarget, image: str) -> str | None:
    """The value an overlay's content pins, parsed once per content: a read after a new
    tip meets the same files again, and YAML parsing was most of a read's time."""
    try:
        return current_value(target, data.decode(), image)
    except Exception:  # an overlay someone broke: no value can be read from it
        return None
