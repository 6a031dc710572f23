"""What a commit's trailers say happened to artifacts: a promotion or a rollback (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.statuses import RequestStatus


@dataclass(frozen=True)
class PromotionFact:
    """A promotion as its commit's trailers tell it."""

    commit: str
    artifact_id: str
    from_env: str
    to_env: str
    promoted_by: str
    approval_ticket: str | None = None
    approved_by: str | None = None
    correlation_id: str | None = None
    request_id: str | None = None  # set when a merged request made this promotion
    promoted_at: str | None = None  # the commit's time
    automatic: bool = False  # made by policy, not asked for: it releases no hold

    @property
    def id(self) -> str:
        return "pro-" + self.commit[:16]

    def as_json(self, app: str, version: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "artifact_id": self.artifact_id,
            "app": app,
            "version": version,
            "from": self.from_env,
            "to": self.to_env,
            "status": RequestStatus.PROMOTED,
            "commit": self.commit,
            "promoted_by": self.promoted_by,
            "approval_ticket": self.approval_ticket,
            "approved_by": self.approved_by.split(", ") if self.approved_by else [],
            "request_id": self.request_id,
            "promoted_at": self.promoted_at,
            "automatic": self.automatic,
        }


@dataclass(frozen=True)
class RollbackFact:
    """A rollback as its commit's trailers tell it: `failed` out, `restored` back in."""

    commit: str
    environment: str
    restored: str
    failed: str
    returned_to: str | None  # where the failed artifact stands now (the previous environment)
    rolled_back_by: str
    deployment_id: str | None = None
    correlation_id: str | None = None
    rolled_back_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "environment": self.environment,
            "restored_artifact": self.restored,
            "failed_artifact": self.failed,
            "deployment_id": self.deployment_id,
            "rolled_back_by": self.rolled_back_by,
            "rolled_back_at": self.rolled_back_at,
        }


HistoryFact = PromotionFact | RollbackFact
