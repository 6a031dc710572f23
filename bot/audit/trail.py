"""The audit log's events for the branch's tip, kept between requests and extended.

`GET /api/v1/audit` read the whole first-parent line (and every record path at the tip)
on every call. Here the events of the last tip are kept: a call at the same tip reads
nothing from git, and after the branch moved forward only the commits since the kept tip
and the record paths they changed are read. Anything else (a tip that is not a
first-parent descendant of the kept one, a record an older event named that changed) is
read whole again, so the answer is always what a full read would give.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bot.audit.history import AuditEvent, audit_events
from bot.audit.log import (
    Range,
    branch_commits,
    known_artifacts,
    on_first_parent_line,
    record_path_artifact,
)
from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import RECORDS_DIR
from bot.manifests.trailers import Commit


@dataclass(frozen=True)
class _Kept:
    tip: str
    commits: list[Commit]  # the event commits, newest first
    names: dict[str, tuple[str, str]]  # artifact id -> (app, version), at the tip
    events: list[AuditEvent]  # newest first
    named: frozenset[str]  # the artifact ids the events looked up


class AuditTrail:
    """Every audit event on the branch at a tip, newest first; callers hold the mirror's
    lock, as for bot/audit/log.py."""

    def __init__(self, mirror: Mirror) -> None:
        self._mirror = mirror
        self._lock = threading.Lock()
        self._kept: _Kept | None = None

    def events(self, tip: str) -> list[AuditEvent]:
        with self._lock:
            kept = self._kept
            if kept is None or kept.tip != tip:
                kept = self._extended(kept, tip) if kept is not None else None
                kept = kept or self._read(tip)
                self._kept = kept
            return kept.events

    def _read(self, tip: str) -> _Kept:
        names = known_artifacts(self._mirror, tip)
        commits = branch_commits(self._mirror, tip)
        events, named = _events(commits, names)
        return _Kept(tip, commits, names, events, named)

    def _extended(self, kept: _Kept, tip: str) -> _Kept | None:
        """The kept events with the commits since `kept.tip`; None when they cannot be."""
        mirror = self._mirror
        if not mirror.is_ancestor(kept.tip, tip) or not on_first_parent_line(mirror, kept.tip, tip):
            return None
        names = dict(kept.names)
        changed = set()
        tree = mirror.tree_of(tip)
        for path in mirror.changed_files(kept.tip, tip, RECORDS_DIR + "/"):
            artifact = record_path_artifact(path)
            if artifact is None:
                continue
            changed.add(artifact[0])
            if read_path(mirror, tree, path) is None:
                names.pop(artifact[0], None)
            else:
                names[artifact[0]] = artifact[1]
        if changed & kept.named:
            return None  # an event already made named a record that changed: read whole
        new = branch_commits(mirror, tip, Range(since=kept.tip))
        events, named = _events(new, names)
        return _Kept(tip, new + kept.commits, names, events + kept.events, kept.named | named)


def _events(
    commits: list[Commit], names: dict[str, tuple[str, str]]
) -> tuple[list[AuditEvent], frozenset[str]]:
    named: set[str] = set()

    def lookup(artifact: str) -> tuple[str, str] | None:
        named.add(artifact)
        return names.get(artifact)

    return audit_events(commits, lookup), frozenset(named)
