"""What the outbox hears: events from the commits Ritmo pushed and from deployments.

Events about commits come from the commits themselves (their files and trailers), in the
writer's thread right after the push, so every way of promoting (API, chain, merged
request, comment) and every rollback is announced the same way, once: the commit is
the event's id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bot.deploy.service import Emit
from bot.manifests.segments import WrittenCommit
from bot.manifests.trailers import parse_trailers
from bot.notify.outbox import Outbox
from bot.notify.render import EventContext
from bot.store.facts import PromotionFact, RollbackFact
from bot.store.index import ArtifactIndex
from bot.store.reindex import history_fact, record_in
from bot.trust.drift import alert_line, facts_of, recorded_drift

log = logging.getLogger(__name__)


def announce(outbox: Outbox, index: ArtifactIndex, written: Iterable[WrittenCommit]) -> None:
    """artifact_recorded, promoted, rolled_back and drift for each pushed commit that is
    one."""
    for commit in written:
        drift = recorded_drift(parse_trailers(commit.message))
        if drift is not None:
            facts = facts_of(drift)
            extra = {
                "kind": drift.kind,
                "audit_kind": drift.audit_kind,
                "commit": drift.commit,
                "detail": drift.detail,
                "author": facts.author,
                "version": facts.version,
                "manifest_commit": commit.sha,
                "message": alert_line(drift),
            }
            context = EventContext(
                event_id=commit.sha, app=facts.app or "", artifact={},
                environment=facts.env, extra=extra,
            )  # fmt: skip
            outbox.emit("drift", context)
            continue
        for path, data in commit.files.items():
            record = record_in(path, data)
            if record is not None:
                outbox.emit("artifact_recorded", _context(record["id"], record, None, commit))
        fact = history_fact(commit.sha, commit.message, commit.when)
        if isinstance(fact, PromotionFact):
            known = index.get(fact.artifact_id)
            if known is not None:
                extra = {"from_environment": fact.from_env, "manifest_commit": commit.sha}
                outbox.emit(
                    "promoted",
                    _context(commit.sha, known.record.to_dict(), fact.to_env, commit, extra),
                )
        elif isinstance(fact, RollbackFact):
            known = index.get(fact.restored)
            if known is not None:
                extra = {"manifest_commit": commit.sha, "rolled_back_artifact": fact.failed}
                outbox.emit(
                    "rolled_back",
                    _context(commit.sha, known.record.to_dict(), fact.environment, commit, extra),
                )


def _context(
    event_id: str,
    record: dict[str, Any],
    environment: str | None,
    commit: WrittenCommit,
    extra: dict[str, Any] | None = None,
) -> EventContext:
    correlation = _correlation(commit.message)
    return EventContext(
        event_id=event_id,
        app=str(record["name"]),
        artifact=record,
        environment=environment,
        correlation_id=correlation,
        extra=extra or {},
    )


def _correlation(message: str) -> str | None:
    for line in reversed(message.strip().splitlines()):
        if line.startswith("Ritmo-Correlation-Id: "):
            return line.split(": ", 1)[1].strip()
    return None


def emitter(outbox: Outbox) -> Emit:
    """The deployment service's hook: deployed and deployment_failed, once per deployment
    and status."""

    def emit(
        event: str,
        record: dict[str, Any],
        environment: str | None,
        correlation_id: str,
        extra: dict[str, Any],
    ) -> None:
        event_id = f"{extra.get('deployment_id')}:{extra.get('status')}"
        context = EventContext(
            event_id=event_id,
            app=str(record.get("name", "")),
            artifact=record,
            environment=environment,
            correlation_id=correlation_id,
            extra=extra,
        )
        outbox.emit(event, context)

    return emit
