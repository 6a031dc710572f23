"""Make the index follow the branch: incrementally, or from scratch when history moved."""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import RECORDS_DIR, parse_record
from bot.manifests.segments import Written
from bot.manifests.trailers import parse_trailers, promotion_hop
from bot.store.artifact_record import ArtifactRecord
from bot.store.facts import HistoryFact, PromotionFact, RollbackFact
from bot.store.index import ArtifactIndex
from bot.store.request_history import rebuild_requests
from bot.store.request_index import RequestIndex
from bot.timestamps import stamp_epoch

log = logging.getLogger(__name__)

_RECORD_PATH = re.compile(rf"^{RECORDS_DIR}/([^/]+)/([^/]+)\.yaml$")
_HISTORY_GREP = "^Ritmo-(Promotion|Rollback): "


def follow(
    index: ArtifactIndex,
    mirror: Mirror,
    tip: str,
    base: str | None = None,
    written: Written | None = None,
    requests: RequestIndex | None = None,
) -> int:
    """Index every record and promotion up to `tip`; returns how many records were new.

    `written` is what this process pushed on top of `base`: when the index stood at
    `base`, the facts come from memory instead of from git.
    """
    indexed = index.tip()
    if indexed == tip:
        return 0
    if written is not None and indexed is not None and indexed == base:
        records = [
            (record, c.sha)
            for c in written
            for path, data in c.files.items()
            if (record := _artifact(path, data)) is not None
        ]
        promoted = [f for c in written if (f := history_fact(c.sha, c.message, c.when)) is not None]
    elif indexed and mirror.is_ancestor(indexed, tip):
        records = _read_each(mirror, mirror.added_files(indexed, tip, RECORDS_DIR + "/"))
        promoted = _promotions(mirror, indexed, tip)
    elif indexed and index_ahead(mirror, indexed, tip, base):
        return 0  # another replica sharing the index followed further than this one
    else:
        index.clear()
        added = index.add(_read_at_tip(mirror, tip), tip, _promotions(mirror, None, tip))
        if requests is not None:
            rebuild_requests(mirror, tip, requests, index)
        return added
    return index.add(records, tip, promoted)


def index_ahead(mirror: Mirror, indexed: str, tip: str, base: str | None) -> bool:
    """Whether the index (shared by replicas) already stands past `tip`.

    It does when `indexed` descends from `tip`. It does too when this mirror does not have
    `indexed` while following on from a fetched `base`: another replica pushed it after
    this one last fetched, so it descends from everything here (a push must fast-forward),
    and that replica indexed up to it. With no `base` (a first fetch) an unknown tip means
    the history was rewritten: rebuild."""
    if mirror.has_commit(indexed):
        return mirror.is_ancestor(tip, indexed)
    return base is not None


def reindex(index: ArtifactIndex, mirror: Mirror, requests: RequestIndex | None = None) -> int:
    """Throw the index away and rebuild it from git alone."""
    index.clear()
    tip = mirror.fetch()
    if tip is None:
        return 0
    added = index.add(_read_at_tip(mirror, tip), tip, _promotions(mirror, None, tip))
    if requests is not None:
        rebuild_requests(mirror, tip, requests, index)
    return added


def promotion_fact(commit: str, message: str, when: int = 0) -> PromotionFact | None:
    trailers = parse_trailers(message)
    hop = promotion_hop(trailers)
    artifact = trailers.get("Ritmo-Artifact")
    if hop is None or not artifact:
        return None

    def one(key: str) -> str | None:
        values = trailers.get(key)
        return values[0] if values else None

    return PromotionFact(
        commit=commit,
        artifact_id=artifact[0],
        from_env=hop[0],
        to_env=hop[1],
        promoted_by=one("Ritmo-Promoted-By") or "unknown",
        approval_ticket=one("Ritmo-Approval-Ticket"),
        approved_by=one("Ritmo-Approved-By"),
        correlation_id=one("Ritmo-Correlation-Id"),
        request_id=one("Ritmo-Request"),
        promoted_at=stamp_epoch(when),
        automatic=bool(one("Ritmo-Automatic")),
    )


def rollback_fact(commit: str, message: str, when: int = 0) -> RollbackFact | None:
    trailers = parse_trailers(message)

    def one(key: str) -> str | None:
        values = trailers.get(key)
        return values[0] if values else None

    env, restored, failed = one("Ritmo-Rollback"), one("Ritmo-Artifact"), one("Ritmo-Rolled-Back")
    if not (env and restored and failed):
        return None
    return RollbackFact(
        commit=commit,
        environment=env,
        restored=restored,
        failed=failed,
        returned_to=one("Ritmo-Returned-To"),
        rolled_back_by=one("Ritmo-Rolled-Back-By") or "unknown",
        deployment_id=one("Ritmo-Deployment"),
        correlation_id=one("Ritmo-Correlation-Id"),
        rolled_back_at=stamp_epoch(when),
    )


def history_fact(commit: str, message: str, when: int = 0) -> HistoryFact | None:
    """The promotion or rollback a commit records, if any."""
    return promotion_fact(commit, message, when) or rollback_fact(commit, message, when)


def _promotions(mirror: Mirror, since: str | None, tip: str) -> list[HistoryFact]:
    found = mirror.commit_messages(since, tip, grep=_HISTORY_GREP)
    return [
        f for sha, when, message in found if (f := history_fact(sha, message, when)) is not None
    ]


def _read_each(mirror: Mirror, pairs: list[tuple[str, str]]) -> list[tuple[ArtifactRecord, str]]:
    entries = []
    for commit, path in pairs:
        if not _RECORD_PATH.match(path):
            continue
        data = read_path(mirror, mirror.tree_of(commit), path)
        record = _artifact(path, data)
        if record is not None:
            entries.append((record, commit))
    return entries


def _read_at_tip(mirror: Mirror, tip: str) -> list[tuple[ArtifactRecord, str]]:
    # Records are written once, so the tip's copy is the one the adding commit wrote.
    added = {path: commit for commit, path in mirror.added_files(None, tip, RECORDS_DIR + "/")}
    blobs = mirror.blobs_under(tip, RECORDS_DIR + "/")
    entries = []
    for path, commit in added.items():
        if path not in blobs or not _RECORD_PATH.match(path):
            continue
        record = _artifact(path, mirror.read(blobs[path])[1])
        if record is not None:
            entries.append((record, commit))
    return entries


def record_in(path: str, data: bytes | None) -> dict[str, Any] | None:
    """The artifact record a file of the branch holds, if it is one."""
    return _parse(path, data)


def _artifact(path: str, data: bytes | None) -> ArtifactRecord | None:
    """The record as the index keeps it; one it cannot index is skipped, as _parse's are."""
    record = _parse(path, data)
    if record is None:
        return None
    try:
        return ArtifactRecord.from_dict(record)
    except ValueError as exc:
        log.warning("skipping %s: %s", path, exc)
        return None


def _parse(path: str, data: bytes | None) -> dict[str, Any] | None:
    match = _RECORD_PATH.match(path)
    if data is None or not match:
        return None
    try:
        record = parse_record(data)
    except Exception as exc:  # a file someone else put there; the index skips it
        log.warning("skipping %s: %s", path, exc)
        return None
    if (record.get("name"), str(record.get("version"))) != match.groups():
        log.warning("skipping %s: name/version do not match its path", path)
        return None
    return record
