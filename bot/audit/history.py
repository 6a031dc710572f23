"""Audit events from the default branch's commits and their trailers (pure).

Each commit Ritmo writes says in its trailers what happened and who did it; this module
turns a parsed commit into the events it records:

- `registered`: `Ritmo-Registered-By` (with `Ritmo-Artifact`, `Ritmo-Build`);
- `promoted`: `Ritmo-Promotion: a -> b` (a direct promotion, Ritmo's merge of a request,
  or Ritmo's record of a request a person merged on the forge);
- `approved`: one per name in `Ritmo-Approved-By` (a merged request);
- `rolled_back`: `Ritmo-Rollback: env`; the event's `version` and `artifact_id` are the
  version rolled back (`Ritmo-Rolled-Back`), `restored_version` and `restored_artifact_id`
  the one pinned again (the commit's `Ritmo-Artifact`);
- `request_closed`: `Ritmo-Request-Closed: status` (expired, superseded, rejected, ...);
- `merged_outside_policy`: `Ritmo-Policy-Held: no` (a person merged before the policy held);
- `pinned_outside_ritmo`, `policy_changed_outside_ritmo`: `Ritmo-Drift: pin|policy`, Ritmo's
  record of a commit it did not make (`Ritmo-Drift-Commit`, the event's
  `offending_commit`) that moved a pin or changed the policy (`Ritmo-Drift-Detail`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from bot.manifests.trailers import Commit, promotion_hop
from bot.statuses import AuditKind, values
from bot.timestamps import parse, parse_or_none, stamp_epoch
from bot.trust.drift import facts_of, recorded_drift

KINDS = values(AuditKind)

Lookup = Callable[[str], tuple[str, str] | None]
"""artifact id -> (app, version), or None when no record is known."""


@dataclass(frozen=True)
class AuditEvent:
    at: str  # commit time, UTC, ISO 8601
    commit: str
    # On the wire a plain string, as it was before the enum.
    kind: Annotated[AuditKind, WithJsonSchema({"type": "string"}), Field(title="Kind")]
    app: str | None
    environment: str | None
    from_environment: str | None
    version: str | None
    artifact_id: str | None
    actor: str | None  # who registered, promoted, approved, rolled back, merged
    ticket: str | None
    request_id: str | None
    correlation_id: str | None
    automatic: bool
    deployment_id: str | None = None
    rolled_back_artifact_id: str | None = None  # rolled_back: the same as artifact_id
    restored_version: str | None = None  # rolled_back: the version pinned again
    restored_artifact_id: str | None = None
    detail: str | None = None
    offending_commit: str | None = None  # drift: the commit Ritmo did not make
    # Signed by a trusted key (Ritmo's)? None until the reader checks the signature: a
    # commit anyone could push may carry the same trailers.
    trusted: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def when(self) -> datetime:
        return parse(self.at)


def events_of(commit: Commit, lookup: Lookup) -> list[AuditEvent]:
    """The events one commit records, in the order they happened."""
    artifact = commit.one("Ritmo-Artifact")
    known = lookup(artifact) if artifact else None
    app, version = known if known else (None, None)
    base: dict[str, Any] = {
        "at": stamp_epoch(commit.when),
        "commit": commit.sha,
        "app": app,
        "version": version,
        "artifact_id": artifact,
        "ticket": commit.one("Ritmo-Approval-Ticket"),
        "request_id": commit.one("Ritmo-Request"),
        "correlation_id": commit.one("Ritmo-Correlation-Id"),
        "automatic": False,
    }
    found: list[AuditEvent] = []
    drift = recorded_drift(commit.trailers)
    if drift is not None:
        facts = facts_of(drift)
        kind = (
            AuditKind.PINNED_OUTSIDE_RITMO
            if drift.kind == "pin"
            else AuditKind.POLICY_CHANGED_OUTSIDE_RITMO
        )
        return [
            AuditEvent(
                **{**base, "app": facts.app, "version": facts.version},
                kind=kind,
                environment=facts.env,
                from_environment=None,
                actor=facts.author,
                detail=drift.detail,
                offending_commit=drift.commit,
            )
        ]
    hop = promotion_hop(commit.trailers)
    rollback_env = commit.one("Ritmo-Rollback")
    merged_by = commit.one("Ritmo-Merged-By")
    on_forge = f"merged by {merged_by} on the forge" if merged_by else None
    if commit.one("Ritmo-Registered-By") and artifact:
        build = commit.one("Ritmo-Build")
        found.append(
            AuditEvent(
                **base,
                kind=AuditKind.REGISTERED,
                environment=None,
                from_environment=None,
                actor=commit.one("Ritmo-Registered-By"),
                detail=f"build {build}" if build else None,
            )
        )
    elif hop is not None and artifact:
        found.append(
            AuditEvent(
                **{**base, "automatic": bool(commit.one("Ritmo-Automatic"))},
                kind=AuditKind.PROMOTED,
                environment=hop[1],
                from_environment=hop[0],
                actor=commit.one("Ritmo-Promoted-By"),
                detail=on_forge,
            )
        )
    elif rollback_env and artifact:
        # The event is about the version rolled back; the commit pins the restored one.
        failed = commit.one("Ritmo-Rolled-Back")
        failed_of = lookup(failed) if failed else None
        failed_version = failed_of[1] if failed_of else None
        detail = f"restores {version or artifact}"
        if commit.one("Ritmo-Returned-To"):
            was = failed_version or failed
            detail += f"; {was} stands in {commit.one('Ritmo-Returned-To')} again"
        by = commit.one("Ritmo-Rolled-Back-By")
        found.append(
            AuditEvent(
                **{
                    **base,
                    "app": failed_of[0] if failed_of else app,
                    "version": failed_version,
                    "artifact_id": failed,
                    "automatic": "(automatic)" in (by or ""),
                },
                kind=AuditKind.ROLLED_BACK,
                environment=rollback_env,
                from_environment=None,
                actor=by,
                deployment_id=commit.one("Ritmo-Deployment"),
                rolled_back_artifact_id=failed,
                restored_version=version,
                restored_artifact_id=artifact,
                detail=f"{detail}; {on_forge}" if on_forge else detail,
            )
        )
    elif commit.one("Ritmo-Request-Closed"):
        asked = (commit.one("Ritmo-Promotion-Request") or "").partition(" -> ")
        requested_by = commit.one("Ritmo-Requested-By")
        found.append(
            AuditEvent(
                **base,
                kind=AuditKind.REQUEST_CLOSED,
                environment=asked[2].strip() or None,
                from_environment=asked[0].strip() or None,
                actor=None,
                detail=f"{commit.one('Ritmo-Request-Closed')} (requested by {requested_by})",
            )
        )
    into = hop[1] if hop else rollback_env
    came_from = hop[0] if hop else None
    if found and found[0].kind in (AuditKind.PROMOTED, AuditKind.ROLLED_BACK):
        for name in _names(commit.trailers.get("Ritmo-Approved-By", [])):
            found.append(
                AuditEvent(
                    **base,
                    kind=AuditKind.APPROVED,
                    environment=into,
                    from_environment=came_from,
                    actor=name,
                )
            )
    if (commit.one("Ritmo-Policy-Held") or "").lower() == "no":
        merge = commit.one("Ritmo-Merge-Commit")
        found.append(
            AuditEvent(
                **base,
                kind=AuditKind.MERGED_OUTSIDE_POLICY,
                environment=into,
                from_environment=came_from,
                actor=merged_by,
                detail=f"merged in {merge} before the policy held" if merge else None,
            )
        )
    return found


def _names(values: Iterable[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def audit_events(commits: Iterable[Commit], lookup: Lookup) -> list[AuditEvent]:
    """Every event of `commits` (given newest first), newest first."""
    found: list[AuditEvent] = []
    for commit in commits:
        # Within a commit, the first event happened first: newest first reverses them.
        found += reversed(events_of(commit, lookup))
    return found


@dataclass(frozen=True)
class Window:
    """Which events to keep: all the given conditions hold."""

    app: str | None = None
    env: str | None = None
    kind: AuditKind | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive

    def keeps(self, event: AuditEvent) -> bool:
        if self.app is not None and event.app != self.app:
            return False
        if self.env is not None and event.environment != self.env:
            return False
        if self.kind is not None and event.kind != self.kind:
            return False
        if self.since is not None and event.when < self.since:
            return False
        return self.until is None or event.when <= self.until


def select(events: Iterable[AuditEvent], window: Window) -> list[AuditEvent]:
    return [e for e in events if window.keeps(e)]


def page_of(events: Sequence[AuditEvent], page: int, per_page: int) -> tuple[list[AuditEvent], int]:
    """One page (1-based) of `events`, and how many there are in all."""
    start = (page - 1) * per_page
    return list(events[start : start + per_page]), len(events)


def parse_when(text: str, end: bool = False) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime; None when `text` is not one.

    A date-time without a zone is UTC. A bare date means its first second, or with `end`
    its last, so that `until=2024-05-01` keeps all of that day."""
    text = text.strip()
    parsed = parse_or_none(text)
    if parsed is None:
        return None
    if end and "T" not in text.upper() and " " not in text and len(text) <= 10:
        parsed += timedelta(days=1, seconds=-1)
    return parsed.astimezone(UTC)
