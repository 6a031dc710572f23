"""What happens to promotion requests outside Ritmo: a push to a request branch, a merge
on the forge, and the scheduled settling of every pending request."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from bot.manifests.plans import EmptyCommit
from bot.promotions.request_view import one_at_a_time
from bot.promotions.review import RequestReviews, event_ids
from bot.statuses import RequestStatus
from bot.telemetry.events import event
from bot.timestamps import stamp

log = logging.getLogger(__name__)


class Reconciling(RequestReviews):
    """Requests meeting what happened elsewhere: the schedule, pushes, forge merges."""

    def expire_due(self) -> list[str]:
        """The scheduled job: settle every pending request (merges, expiries)."""
        expired = []
        for request in self._requests.pending():
            try:
                if self.settle(request.id) == RequestStatus.EXPIRED:
                    expired.append(request.id)
            except Exception:  # one forge hiccup must not stop the others being settled
                log.exception("could not settle %s", request.id)
        return expired

    @one_at_a_time
    def tampered(self, request_id: str, by: str, sha: str) -> bool:
        """Someone else pushed `sha` to the request branch: flag it and reject the request,
        so it is never merged. False when `sha` is Ritmo's own tip or the request ended."""
        request = self._requests.get(request_id)
        if request is None or request.status != RequestStatus.PENDING or sha == request.tip:
            return False
        reason = (
            f"tampered: {by} pushed {sha[:12]} to {request.branch}, which only Ritmo "
            "writes; Ritmo will never merge it. Ask for the promotion again to get a clean "
            "request"
        )
        self._forge.flagged(sha, reason)
        # The branch stays: it holds the foreign commit, the evidence.
        self.close(request_id, RequestStatus.REJECTED, reason, drop_branch=False)
        log.warning("%s: %s", request_id, reason)
        return True

    @one_at_a_time
    def merged_on_forge(
        self, request_id: str, merge_commit: str, by: str, merged_head: str, merged_at: datetime
    ) -> bool | None:
        """A person merged the request on the forge: record the promotion with a signed
        commit on the default branch, judged by the policy at `merged_at`. Returns whether
        the policy held (None when the request is not pending any more)."""
        request = self._requests.get(request_id)
        if request is None or request.status != RequestStatus.PENDING:
            return None
        decision = self.decide(request, at=merged_at)
        held = decision.status == "approved" and merged_head == request.tip
        if merged_head != request.tip:
            reason = f"the merged head {merged_head[:12]} is not the request's {request.tip[:12]}"
        else:
            reason = decision.reason
        message = self._templates.render(
            "commit/forge-merge.txt",
            request=request,
            number=request.forge_ref,
            merge_commit=merge_commit,
            merged_by=by,
            merged_at=stamp(merged_at),
            held=held,
            reason=reason,
            approvers=list(decision.approvers),
            rollback=self._rollback_of(request),
        )
        self._writer.sync()  # the forge's merge commit first: ours goes on top of it
        self._writer.write(EmptyCommit(message))  # the merge made on the forge
        self._requests.save(
            replace(
                request, status=RequestStatus.MERGED, merge_commit=merge_commit,
                closed_at=stamp(self._clock()),
                reason=f"merged by {by} on {self._forge.kind}; policy held: "
                       f"{'yes' if held else 'no'} ({reason})",
            )
        )  # fmt: skip
        event(
            "request_merged",
            f"merged {request_id} by {by} on {self._forge.kind}: "
            f"{request.app} {request.version} to {request.to_env} in {merge_commit}",
            **event_ids(request),
            commit=merge_commit,
            policy_held=held,
        )
        if not held:
            self._forge.flagged(merge_commit, f"merged by {by} without the policy: {reason}")
            self._forge.alert(
                merge_commit,
                f"this promotion of {request.app} {request.version} to "
                f"{request.to_env} was merged by @{by} although the policy did not hold "
                f"({reason}). Ritmo recorded it with `Ritmo-Policy-Held: no`.",
                request.forge_ref,
            )
            log.error(
                "ALERT: %s (%s %s to %s) was merged by %s in %s although the policy did not "
                "hold: %s",
                request_id, request.app, request.version, request.to_env, by,
                merge_commit[:12], reason,
            )  # fmt: skip
        return held
