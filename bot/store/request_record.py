"""RequestRecord and ReviewRecord: a promotion (or policy change) request and its reviews
as the index keeps them (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from bot.statuses import RequestStatus


@dataclass(frozen=True)
class RequestRecord:
    """One row of the requests table; `dataclasses.replace` makes the next state."""

    id: str
    artifact_id: str  # a policy change: the new policy's blob
    app: str
    version: str
    from_env: str
    to_env: str
    branch: str
    head: str  # the commit that edits the overlay
    tip: str  # the branch tip: head plus reviews
    status: RequestStatus
    requested_by: str
    opened_at: str
    approval_ticket: str | None = None
    closed_at: str | None = None
    superseded_by: str | None = None
    merge_commit: str | None = None
    reason: str | None = None
    forge_ref: str | None = None  # e.g. the pull request number
    body: str | None = None  # the description shown to reviewers

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RequestRecord:
        fields = {k: v for k, v in row.items() if k != "seq"}
        return cls(**{**fields, "status": _status(str(row["status"]))})

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReviewRecord:
    """One review of a request, as its review commit on the request branch says."""

    sha: str  # the review's own commit
    request_id: str
    reviewer: str
    state: str  # as the commit says: approved, changes_requested, ...
    commit: str  # the request head it reviewed
    submitted_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReviewRecord:
        return cls(**row)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def _status(value: str) -> RequestStatus:
    try:
        return RequestStatus(value)
    except ValueError:
        # A rebuilt index keeps a closing commit's Ritmo-Request-Closed as written.
        return cast(RequestStatus, value)
