"""GET /api/v1/audit: who registered, promoted, approved and rolled back what, from git.

The events are read from the default branch's commit trailers (bot/audit/history.py),
never from the index: the history is the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from bot.api.auth import require_scope
from bot.api.context import current_runtime
from bot.api.errors import ApiError, reason_of
from bot.api.paging import Page, PerPage, has_next, page_of
from bot.api.parse import query_of
from bot.audit.history import AuditEvent, Window
from bot.audit.log import (
    REVISION_PATTERN,
    Range,
    on_first_parent_line,
    read_audit,
    time_or_revision,
)
from bot.audit.repo import trusted_commits
from bot.auth import Scope
from bot.manifests.records import NAME_PATTERN
from bot.statuses import AuditKind, values

blueprint = Blueprint("audit", __name__, url_prefix="/api/v1/audit")

# Described inline, as a Literal would be: a query parameter's schema takes no $ref.
Kind = Annotated[AuditKind, WithJsonSchema({"type": "string", "enum": list(values(AuditKind))})]
_WHEN = "an ISO 8601 date or date-time (2024-05-01, 2024-05-01T12:00:00Z) or a commit"


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: str | None = Field(default=None, pattern=NAME_PATTERN)
    env: str | None = Field(default=None, pattern=NAME_PATTERN)
    kind: Kind | None = None
    # A date-time holds ':' and '+'; a revision ~ and ^: one pattern admits both.
    since: str | None = Field(default=None, pattern=REVISION_PATTERN)
    until: str | None = Field(default=None, pattern=REVISION_PATTERN)
    page: Page = 1
    per_page: PerPage = 50


class AuditPage(BaseModel):
    """A page of audit events, newest first. A `rolled_back` event's `version` and
    `artifact_id` name the version rolled back; `restored_version` and
    `restored_artifact_id` the one pinned again (null on other kinds)."""

    items: list[AuditEvent]
    page: int
    per_page: int
    total: int
    has_next: bool


def _refuse(field: str, value: str) -> ApiError:
    message = f"{value!r} is neither {_WHEN} on the default branch"
    return ApiError(400, f"invalid request: {field}", [{"field": field, "message": message}])


def _off_the_line(field: str, value: str, sha: str, branch: str) -> ApiError:
    message = (
        f"{value!r} is commit {sha[:12]}, which is not on {branch}'s first-parent line (a "
        f"request branch's commit, say); give a commit of {branch} itself, or a date"
    )
    return ApiError(422, f"invalid request: {field}", [{"field": field, "message": message}])


@blueprint.get("")
@require_scope(Scope.ARTIFACTS_READ)
def list_audit() -> Response:
    try:
        query = query_of(AuditQuery)
    except ApiError as error:
        for field in error.fields:
            if field["field"] in ("since", "until"):
                field["message"] = f"expected {_WHEN}"
        raise
    runtime = current_runtime()
    try:
        runtime.writer.sync()  # fetch: the log reads the branch as it is on the remote
    except OSError as exc:
        raise ApiError(503, f"the manifests remote is unavailable: {reason_of(exc)}", headers={
            "Retry-After": "5"
        }) from None  # fmt: skip
    mirror = runtime.mirror
    with mirror.locked():
        tip = mirror.tip()
        if tip is None:
            items: list[Any] = []
            total = 0
        else:
            since_at, since_rev, ok = time_or_revision(mirror, query.since, end=False)
            if not ok:
                raise _refuse("since", str(query.since))
            until_at, until_rev, ok = time_or_revision(mirror, query.until, end=True)
            if not ok:
                raise _refuse("until", str(query.until))
            # Only the branch's own history is the audit trail.
            for name, value, sha in (("since", query.since, since_rev),
                                     ("until", query.until, until_rev)):  # fmt: skip
                if sha is not None and not on_first_parent_line(mirror, sha, tip):
                    raise _off_the_line(name, str(value), sha, mirror.branch)
            window = Window(query.app, query.env, query.kind, since_at, until_at)
            home, ritmo = runtime.settings.gnupghome, frozenset({runtime.signer.fingerprint})
            events, total = read_audit(
                mirror, tip, window, Range(since_rev, until_rev), query.page, query.per_page,
                trusted=lambda shas: trusted_commits(mirror, shas, home, ritmo),
                kept=runtime.audit.events,
            )  # fmt: skip
            items = [e.as_json() for e in events]
    more = has_next(query.page, query.per_page, total)
    return page_of(".list_audit", items, total, query.page, query.per_page, has_next=more)
