"""Changing the policy through Ritmo, and accepting policy pull requests people merge.

A change is judged by the policy in force's `policy_changes` rule (`Policy.change_rule`).
Without approvals it is one signed commit; with them it is a request like a promotion
request, whose target is the pseudo app `POLICY_APP`: `Policy.rule` answers for it with the
change rule, so reviews, evaluation, expiry and closing are the promotion request's own.
Only what is merged differs: the policy file, with `Ritmo-Policy: <blob>` vouching for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from bot.forge import RequestView
from bot.manifests.branches import BranchMoved, NothingToBuildOn
from bot.manifests.objects import read_path
from bot.manifests.packs import object_id
from bot.manifests.plans import Edit, EmptyCommit, Reader, Unchanged
from bot.manifests.trailers import parse_trailers
from bot.manifests.writer import Conflict
from bot.policy.evaluate import Decision, PromotionRequest, Review, evaluate
from bot.policy.load import BRANCH_POLICY_PATH, load_policy
from bot.policy.model import POLICY_APP
from bot.promotions.request_view import BRANCH_PREFIX, branch_for, needs, overlay_diff
from bot.promotions.requests import RequestService
from bot.promotions.service import PromotionRefused
from bot.statuses import RequestStatus
from bot.store.request_record import RequestRecord
from bot.timestamps import stamp

log = logging.getLogger(__name__)

NO_POLICY = "none"  # Ritmo-Policy-Base when the branch had no policy file (the default)


def blob_of(data: bytes | None) -> str:
    """The git blob sha of a policy file's content (`Ritmo-Policy`), or NO_POLICY."""
    return object_id("blob", data) if data is not None else NO_POLICY


def is_policy_change(request: RequestRecord) -> bool:
    """Whether a request (an index row) changes the policy rather than promotes an artifact."""
    return request.app == POLICY_APP


@dataclass(frozen=True)
class Applied:
    """What `PUT /api/v1/policy` did: changed (a commit), unchanged, or pending (a request)."""

    status: Literal["changed", "unchanged", "pending"]
    blob: str
    commit: str | None = None
    request: dict[str, Any] | None = None


@dataclass(frozen=True)
class WritePolicy:
    """Write the policy file, only over the one the change was judged against (`base`)."""

    text: bytes
    base: str  # blob_of the file the change was judged against
    message: str
    merge: str | None = None

    def plan(self, read: Reader) -> Edit | Unchanged:
        if blob_of(read(BRANCH_POLICY_PATH)) != self.base:
            raise Conflict(
                f"{BRANCH_POLICY_PATH} changed on the default branch since this change was "
                "judged; send it again to be judged by the policy now in force"
            )
        return Edit({BRANCH_POLICY_PATH: self.text}, self.message, merge=self.merge)


class PolicyRequests(RequestService):
    """Promotion requests, plus requests that change the policy (`is_policy_change`)."""

    def __init__(
        self,
        *args: Any,
        report_policy_drift: Callable[[str, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """`report_policy_drift(merge_commit, detail)`: records a policy pull request merged
        without its rule (bot/trust/watch.py makes it a `policy` drift)."""
        super().__init__(*args, **kwargs)
        self._report_policy_drift = report_policy_drift

    @staticmethod
    def _is_policy_change(request: RequestRecord) -> bool:
        return is_policy_change(request)

    # -- PUT /api/v1/policy ---------------------------------------------------------
    def apply_policy(self, text: str, reason: str, by: str, correlation_id: str) -> Applied:
        """Validate `text` (PolicyError), judge it by the policy in force, then write it
        (no approval needed) or open a request."""
        load_policy(text, BRANCH_POLICY_PATH)
        data = text.encode()
        with self._mirror.locked():
            tip = self._mirror.fetch()
            tree = self._mirror.tree_of(tip) if tip is not None else None
            current = read_path(self._mirror, tree, BRANCH_POLICY_PATH)
        blob = blob_of(data)
        if current == data:
            return Applied("unchanged", blob)
        rule = self._policy().change_rule
        if rule.requires_approval:
            opened = self._open_policy_change(
                data, blob_of(current), current, reason, by, correlation_id
            )
            return Applied("pending", blob, request=opened)
        message = self._templates.render(
            "commit/policy.txt", path=BRANCH_POLICY_PATH, reason=reason, changed_by=by,
            approvers=[], blob=blob, request_id=None, correlation_id=correlation_id,
        )  # fmt: skip
        result = self._writer.write(WritePolicy(data, blob_of(current), message))
        return Applied("changed", blob, commit=result.commit)

    def _open_policy_change(
        self, data: bytes, base: str, before: bytes | None, reason: str, by: str, cid: str
    ) -> dict[str, Any]:
        blob = blob_of(data)
        with self._locks.hold(f"request/{POLICY_APP}/{POLICY_APP}"):
            older = self._requests.open_for(POLICY_APP, POLICY_APP)
            if older is not None and older.artifact_id == blob:
                return self.describe(older.id)  # the same change asked again
            rule = self._policy().change_rule
            now = self._clock()
            deadline = now + rule.approval_timeout if rule.approval_timeout else None
            message = self._templates.render(
                "commit/policy-request.txt", path=BRANCH_POLICY_PATH, target=POLICY_APP,
                blob=blob, base=base, requested_by=by, reason=reason, needs=needs(rule),
                deadline=stamp(deadline) if deadline else None,
                supersedes=older.id if older else None, correlation_id=cid,
            )  # fmt: skip
            branch = branch_for(POLICY_APP, POLICY_APP)

            def change(read: Reader) -> Edit:
                if blob_of(read(BRANCH_POLICY_PATH)) != base:
                    raise Conflict(f"{BRANCH_POLICY_PATH} changed meanwhile; send it again")
                return Edit({BRANCH_POLICY_PATH: data}, message)

            try:
                written = self._writer.write_branch(
                    branch, change, when=int(now.timestamp()), prefix=BRANCH_PREFIX, replace=True
                )
            except NothingToBuildOn:
                raise PromotionRefused(
                    "the default branch is empty; run `ritmo init` first"
                ) from None
            except BranchMoved:
                raise PromotionRefused(f"{branch} was changed meanwhile; try again") from None
            head = str(written.commit)
            request_id = "req-" + head[:16]
            diff = overlay_diff(BRANCH_POLICY_PATH, before or b"", data)
            body = (
                f"Policy change requested by {by}: {reason}\n\nNeeds {needs(rule)}"
                f"{f', by {stamp(deadline)}' if deadline else ''}.\n\n```diff\n{diff}\n```\n\n"
                f"Ritmo request `{request_id}`; correlation id `{cid}`.\n"
            )
            row = RequestRecord(
                id=request_id, artifact_id=blob, app=POLICY_APP, version=blob[:12],
                from_env=POLICY_APP, to_env=POLICY_APP, branch=branch, head=head,
                tip=head, status=RequestStatus.PENDING, requested_by=by,
                approval_ticket=None, opened_at=stamp(now), closed_at=None,
                superseded_by=None,
                merge_commit=None, reason=None, forge_ref=None, body=body,
            )  # fmt: skip
            row = replace(row, forge_ref=self._forge.opened(self._view(row, body)))
            self._requests.save(row)
            if older is not None:
                self.close(
                    older.id, RequestStatus.SUPERSEDED, f"superseded by {request_id}",
                    superseded_by=request_id, drop_branch=False,
                )  # fmt: skip
            return self.describe(request_id, fresh=True)

    # -- the request lifecycle, where a policy change differs ------------------------
    def _view(self, request: RequestRecord, body: str = "") -> RequestView:
        view = super()._view(request, body)
        if not is_policy_change(request):
            return view
        return replace(view, title=f"Change the Ritmo policy ({BRANCH_POLICY_PATH})")

    def describe(self, request_id: str, fresh: bool = False) -> dict[str, Any]:
        out = super().describe(request_id, fresh)
        if out["app"] == POLICY_APP:
            out["change"] = "policy"
        return out

    def _merge(self, request: RequestRecord, decision: Decision) -> None:
        if not is_policy_change(request):
            super()._merge(request, decision)
            return
        with self._mirror.locked():
            self._fetch_if_missing(request.tip)
            said = parse_trailers(self._mirror.log("-1", "--format=%B", request.head))
            text = read_path(self._mirror, self._mirror.tree_of(request.head), BRANCH_POLICY_PATH)
        if text is None:
            raise RuntimeError(f"{request.id}'s head has no {BRANCH_POLICY_PATH}")
        message = self._templates.render(
            "commit/policy.txt", path=BRANCH_POLICY_PATH,
            reason=(said.get("Ritmo-Reason") or ["(none given)"])[0],
            changed_by=request.requested_by, approvers=list(decision.approvers),
            blob=blob_of(text), request_id=request.id, correlation_id=request.id,
        )  # fmt: skip
        base = (said.get("Ritmo-Policy-Base") or [NO_POLICY])[0]
        try:
            result = self._writer.write(WritePolicy(text, base, message, merge=request.tip))
        except Conflict as exc:
            self.close(request.id, RequestStatus.REJECTED, str(exc))
            return
        self._merged(request, result.commit, decision.reason)

    def merged_on_forge(
        self, request_id: str, merge_commit: str, by: str, merged_head: str, merged_at: datetime
    ) -> bool | None:
        request = self._requests.get(request_id)
        if request is None or not is_policy_change(request):
            return super().merged_on_forge(request_id, merge_commit, by, merged_head, merged_at)
        with self._locks.hold(f"request/{POLICY_APP}/{POLICY_APP}"):
            request = self._requests.get(request_id)
            if request is None or request.status != RequestStatus.PENDING:
                return None
            decision = self.decide(request, at=merged_at)
            if merged_head != request.tip:
                decision = replace(decision, status="blocked",
                                   reason="the merged head is not the request's")  # fmt: skip
            held = self.accept_merged_pull(
                str(request.forge_ref), merge_commit, by, request.requested_by,
                request.head, decision, request_id,
            )  # fmt: skip
            self._requests.save(
                replace(
                    request, status=RequestStatus.MERGED, merge_commit=merge_commit,
                    closed_at=stamp(self._clock()),
                    reason=f"merged by {by}; policy_changes held: {'yes' if held else 'no'}",
                )
            )  # fmt: skip
            return held

    # -- policy pull requests people open on GitHub ----------------------------------
    def judge_pull(
        self,
        number: str,
        head: str,
        author: str,
        opened_at: datetime,
        at: datetime | None = None,
    ) -> Decision:
        """The policy in force's `policy_changes` on a pull request that edits the policy,
        from the reviews the forge recorded (by `at`, when given)."""
        policy = self._policy()
        rule = policy.change_rule
        view = self._pull_view(number, head, author, rule.groups)
        reviews: list[Review] = self._forge.reviews(view) or []
        if at is not None:
            reviews = [r for r in reviews if r.submitted_at <= at]
        asked = PromotionRequest(
            app=POLICY_APP, version=head[:12], from_env=POLICY_APP, to_env=POLICY_APP,
            author=self._forge.author(), requested_by=author, head=head, opened_at=opened_at,
        )  # fmt: skip
        return evaluate(
            policy, asked, reviews, self._forge.memberships(policy, rule.groups),
            at or self._clock(),
        )  # fmt: skip

    def show_pull(self, number: str, head: str, author: str, decision: Decision) -> None:
        """The `ritmo/approval` status on the pull request's head."""
        view = self._pull_view(number, head, author, self._policy().change_rule.groups)
        self._forge.progressed(view, decision)

    def accept_merged_pull(
        self,
        number: str,
        merge_commit: str,
        merged_by: str,
        requested_by: str,
        head: str,
        decision: Decision,
        request_id: str | None = None,
    ) -> bool:
        """A policy pull request was merged: with `decision` approved for `head`, and the
        merged policy the one reviewers approved there, a signed commit vouches for it
        (`Ritmo-Policy`); otherwise an ALERT and nothing that makes it trusted. Judge
        before calling: the merge may change the policy."""
        self._writer.sync()  # the forge's merge, its head among its parents
        with self._mirror.locked():
            merged = read_path(self._mirror, self._mirror.tree_of(merge_commit), BRANCH_POLICY_PATH)
            approved = (
                read_path(self._mirror, self._mirror.tree_of(head), BRANCH_POLICY_PATH)
                if self._mirror.has_commit(head)
                else None
            )
        why = decision.reason
        held = decision.status == "approved"
        if held and (approved is None or blob_of(approved) != blob_of(merged)):
            # The merge mixed in other policy edits (e.g. an unvouched one on the default
            # branch): those were never approved, so neither is the result.
            held, why = (
                False,
                (f"the merged {BRANCH_POLICY_PATH} is not the one approved at {head[:12]}"),
            )
        if not held:
            text = (
                f"policy pull request #{number} was merged by {merged_by} in "
                f"{merge_commit[:12]} although policy_changes did not hold ({why}); "
                "Ritmo does not vouch for the policy it wrote"
            )
            self._forge.flagged(merge_commit, f"merged without policy_changes: {why}")
            self._forge.alert(merge_commit, text, number)
            if self._report_policy_drift is None:
                log.error("ALERT %s", text)
            else:  # the ALERT, audit event and drift notification come with its record
                log.error("%s", text)
                detail = (
                    f"merges policy pull request #{number} although policy_changes did not "
                    f"hold ({why}); by {merged_by}"
                )
                self._report_policy_drift(merge_commit, " ".join(detail.split()))
            return False
        message = self._templates.render(
            "commit/policy-accepted.txt", number=number, path=BRANCH_POLICY_PATH,
            merged_by=merged_by, merge_commit=merge_commit, approvers=list(decision.approvers),
            blob=blob_of(merged), request_id=request_id, requested_by=requested_by,
            correlation_id=request_id or f"pr-{number}",
        )  # fmt: skip
        self._writer.write(EmptyCommit(message))  # vouches for the merged policy
        log.info("policy pull request #%s merged with policy_changes held: %s vouched",
                 number, blob_of(merged))  # fmt: skip
        return True

    def _pull_view(
        self, number: str, head: str, author: str, groups: tuple[str, ...]
    ) -> RequestView:
        return RequestView(
            id=f"pr-{number}", app=POLICY_APP, version=head[:12], from_env=POLICY_APP,
            to_env=POLICY_APP, branch="", head=head, requested_by=author,
            title="policy change", body="", groups=groups, forge_ref=number,
        )  # fmt: skip
