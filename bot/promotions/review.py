"""Reviews of a promotion request, and how it ends: merged when the policy holds (a signed
merge commit), closed otherwise (a signed closing commit on the default branch)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.auth import Principal, is_among
from bot.errors import Forbidden, NotFound, Refused
from bot.manifests.branches import BranchMoved
from bot.manifests.plans import Edit, EmptyCommit, Reader, Unchanged
from bot.policy.evaluate import Decision
from bot.promotions.pin import pinned_value
from bot.promotions.request_view import BRANCH_PREFIX, RequestViews, one_at_a_time
from bot.promotions.service import PinChange, PromotionInput
from bot.statuses import RequestStatus
from bot.store.request_record import RequestRecord, ReviewRecord
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.timestamps import stamp

log = logging.getLogger(__name__)


class StaleRequest(Exception):
    """The approved request's artifact is no longer eligible; the message says why."""


@dataclass(frozen=True)
class MergeRequest:
    """Merge a request branch: re-pin on the current default branch, with the branch tip
    as second parent so the request shows as merged. `recheck` asks once more, on the
    writer's branch, whether the request went stale since the caller looked."""

    pin: PinChange
    tip: str
    recheck: Callable[[], str | None] = lambda: None

    def plan(self, read: Reader) -> Edit | Unchanged:
        if (stale := self.recheck()) is not None:
            raise StaleRequest(stale)
        edit = self.pin.plan(read)
        assert isinstance(edit, Edit)  # a pin without preconditions always edits
        return Edit(edit.files, edit.message, merge=self.tip)  # with Ritmo-Replaces if any


def event_ids(request: RequestRecord) -> dict[str, str]:
    """The ids an event about a request carries, besides its own fields."""
    return {
        "request_id": request.id,
        "artifact_id": request.artifact_id,
        "app": request.app,
        "to": request.to_env,
    }


class RequestReviews(RequestViews):
    """Reviews taken here (the local forge), and settling: merge or close."""

    @one_at_a_time
    def review(
        self, request_id: str, reviewer: Principal, state: str, commit: str | None
    ) -> dict[str, Any]:
        """Record a review by an authenticated user; merge when the policy then holds."""
        request = self._requests.get(request_id)
        if request is None:
            raise NotFound(f"no promotion request {request_id!r}")
        if request.status != RequestStatus.PENDING:
            raise Refused(f"request {request_id} is {request.status}, not pending")
        if self._forge.kind != "local":
            raise Refused(f"reviews of this request are taken on {self._forge.kind}, not here")
        if is_among(reviewer.name, (request.requested_by, self._forge.author())):
            raise Forbidden(
                f"{reviewer.name} requested this promotion; someone else must review it"
            )
        rule = self._rule(request)
        groups = rule.groups
        members = self._forge.memberships(self._policy(), groups)
        if not any(is_among(reviewer.name, members.get(g, frozenset())) for g in groups):
            raise Forbidden(
                f"{reviewer.name} is in none of the approver groups ({', '.join(groups)}) "
                f"for {request.from_env} -> {request.to_env}",
            )
        if commit is not None and commit != request.head:
            raise Refused(
                f"commit {commit[:12]} is not the request's head {request.head[:12]}; "
                "review the current head",
            )
        now = self._clock()
        message = self._templates.render(
            "commit/review.txt",
            verb="Approve" if state == "approved" else "Request changes on",
            request_id=request_id,
            reviewer=reviewer.name,
            app=request.app,
            version=request.version,
            to_env=request.to_env,
            state=state,
            head=request.head,
        )
        try:
            written = self._writer.write_branch(
                request.branch, EmptyCommit(message).plan, when=int(now.timestamp()),
                prefix=BRANCH_PREFIX, expect=request.tip,
            )  # fmt: skip
        except BranchMoved:
            raise Refused(
                f"{request.branch} moved outside Ritmo; the request cannot be reviewed"
            ) from None
        sha = str(written.commit)
        self._requests.add_review(
            ReviewRecord(
                sha=sha,
                request_id=request_id,
                reviewer=reviewer.name,
                state=state,
                commit=request.head,
                submitted_at=stamp(now),
            )
        )
        self._requests.save(replace(request, tip=sha))
        self.settle(request_id)
        return self.describe(request_id)

    @one_at_a_time
    def settle(self, request_id: str) -> str:
        """Merge an approved request, close an expired one; returns the status after."""
        request = self._requests.get(request_id)
        if request is None or request.status != RequestStatus.PENDING:
            return request.status if request else "missing"
        decision = self.decide(request)
        if decision.status == "approved":
            self._writer.sync()  # what other replicas wrote (a rollback) counts too
            with self._mirror.locked():
                tip = self._mirror.fetch_branches(BRANCH_PREFIX).get(request.branch)
            stale = self.stale(request, tip, self._rollback_of(request) is not None)
            if stale is None:
                self._forge.progressed(self._view(request), decision)  # the status turns green
                try:
                    self._merge(request, decision)
                    return RequestStatus.MERGED
                except StaleRequest as exc:
                    stale = str(exc)
            self.close(request_id, RequestStatus.STALE, stale)
            log.info("%s is stale, not merged: %s", request_id, stale)
            return RequestStatus.STALE
        if decision.status == "expired":
            self.close(request_id, RequestStatus.EXPIRED, decision.reason)
            return RequestStatus.EXPIRED
        self._forge.progressed(self._view(request), decision)
        return RequestStatus.PENDING

    @traced("ritmo.promote")
    def _merge(self, request: RequestRecord, decision: Decision) -> None:
        artifact = self._artifact(request.artifact_id)
        if artifact is None:
            raise RuntimeError(f"artifact {request.artifact_id} of {request.id} is gone")
        ask = PromotionInput(request.from_env, request.to_env, None, request.approval_ticket)
        pin = self._promotions.pin_change(
            artifact.record, ask, request.requested_by, request.id, auto=False
        )
        rollback = self._rollback_of(request)
        message = self._templates.render(
            "commit/merge.txt",
            record=artifact.record,
            from_env=request.from_env,
            to_env=request.to_env,
            request_id=request.id,
            requested_by=request.requested_by,
            approvers=list(decision.approvers),
            pinned=pinned_value(pin.target, artifact.record),
            path=pin.path,
            approval_ticket=request.approval_ticket,
            correlation_id=request.id,
            rollback=rollback,
        )
        with self._mirror.locked():
            self._fetch_if_missing(request.tip)  # the merge's second parent
        # Always a commit: the merge records the approvals even over an overlay that pins it.
        merge = MergeRequest(
            replace(pin, message=message, promoted_already=None),
            request.tip,
            # The branch was checked; the index may have moved on since (another replica).
            recheck=lambda: self.stale(request, request.tip, rollback is not None),
        )
        result = self._writer.write(merge)
        self._merged(request, result.commit, decision.reason)
        event(
            "request_merged",
            f"merged {request.id}: {request.app} {request.version} "
            f"to {request.to_env} in {result.commit}",
            **event_ids(request),
            commit=result.commit,
        )

    def _merged(self, request: RequestRecord, commit: str | None, reason: str) -> None:
        """The request merged in `commit`: its branch goes (on the local forge), its row
        closes."""
        if self._forge.kind == "local":
            # On GitHub the pull request must see its head reach the default branch first;
            # the repository's "delete head branches" setting tidies up after that.
            self._drop_branch(request)
        self._requests.save(
            replace(
                request, status=RequestStatus.MERGED, merge_commit=commit,
                closed_at=stamp(self._clock()), reason=reason,
            )
        )  # fmt: skip

    @one_at_a_time
    def close(
        self,
        request_id: str,
        status: RequestStatus,
        reason: str,
        superseded_by: str | None = None,
        drop_branch: bool = True,
        tell_forge: bool = True,
    ) -> None:
        """End a pending request (expired, rejected, superseded) with a signed closing
        commit on the default branch: the audit trail keeps requests that never merged.
        `tell_forge=False` when the forge ended it already (a person closed the PR)."""
        request = self._requests.get(request_id)
        if request is None or request.status != RequestStatus.PENDING:
            return
        message = self._templates.render(
            "commit/close.txt",
            request_id=request_id,
            status=status,
            app=request.app,
            version=request.version,
            from_env=request.from_env,
            to_env=request.to_env,
            reason=reason,
            head=request.head,
            artifact_id=request.artifact_id,
            requested_by=request.requested_by,
            # A closed branch goes away: its reviews stay in the audit trail here.
            reviews=self._requests.reviews_of(request_id),
        )
        self._writer.write(EmptyCommit(message))
        if tell_forge:
            self._forge.closed(self._view(request), status, reason)
        if drop_branch:
            self._drop_branch(request)
        self._requests.save(
            replace(
                request, status=status, closed_at=stamp(self._clock()), reason=reason,
                superseded_by=superseded_by,
            )
        )  # fmt: skip
        event(
            "request_closed",
            f"closed {request_id} ({status}): {reason}",
            **event_ids(request),
            status=status,
        )

    def _drop_branch(self, request: RequestRecord) -> None:
        with self._mirror.locked():
            tip = self._mirror.fetch_branches(BRANCH_PREFIX).get(request.branch)
            if tip is not None:
                self._mirror.delete_branch(request.branch, tip)
