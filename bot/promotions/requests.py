"""Promotion requests: a branch whose signed commit pins the overlay, reviews, a signed merge.

The request lives in git: `ritmo/promote/<app>/<env>` holds the request commit (the head
reviewers judge) and one signed commit per review on top. Approving merges it into the
default branch with a signed merge commit whose trailers name who approved. Expiry and
rejection leave a signed closing commit on the default branch. The index only caches.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.auth import Principal, is_among
from bot.forge import Forge, RequestView
from bot.manifests.mirror import Mirror, PushStatus
from bot.manifests.objects import Identity, read_path, signed_commit, write_tree
from bot.manifests.records import split_image
from bot.manifests.trailers import parse_trailers
from bot.manifests.writer import Edit, ManifestWriter, Reader, Unchanged, WriteUnavailable
from bot.policy.evaluate import Decision, PromotionRequest, Review, evaluate
from bot.policy.model import Policy, PromotionRule
from bot.promotions.eligibility import MergeFacts, stale_reason
from bot.promotions.pin import current_value, pinned_value
from bot.promotions.service import PinChange, PromotionInput, PromotionRefused, PromotionService
from bot.store.index import IndexedArtifact
from bot.store.locks import Locks
from bot.store.request_index import RequestIndex
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.templates import Templates
from bot.timestamps import stamp

BRANCH_PREFIX = "ritmo/promote/"
log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _lock_name(app: str, env: str) -> str:
    return f"request/{app}/{env}"


def one_at_a_time(
    method: Callable[Concatenate[RequestService, str, P], R],
) -> Callable[Concatenate[RequestService, str, P], R]:
    """Run a method on request `request_id` holding its app and environment's lock, so
    replicas (and threads) never open, review, merge or close one request at once. The
    method reads the request again itself, under the lock."""

    def locked(self: RequestService, request_id: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        request = self._requests.get(request_id)
        if request is None:
            return method(self, request_id, *args, **kwargs)
        with self._locks.hold(_lock_name(request["app"], request["to_env"])):
            return method(self, request_id, *args, **kwargs)

    locked.__name__, locked.__doc__ = method.__name__, method.__doc__
    return locked


@dataclass(frozen=True)
class RollbackAsk:
    """A request that rolls `failed` back out of the environment (bot/deploy)."""

    failed: str
    deployment: str | None
    returned_to: str | None


class ReviewRefused(Exception):
    """The review cannot be taken; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def branch_for(app: str, env: str) -> str:
    return f"{BRANCH_PREFIX}{app}/{env}"


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


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


@dataclass(frozen=True)
class CloseRequest:
    message: str

    def plan(self, read: Reader) -> Edit | Unchanged:
        return Edit({}, self.message)


@dataclass(frozen=True)
class RecordMerge:
    """An empty signed commit recording a merge made on the forge, outside Ritmo."""

    message: str

    def plan(self, read: Reader) -> Edit | Unchanged:
        return Edit({}, self.message)


class RequestService:
    def __init__(
        self,
        mirror: Mirror,
        writer: ManifestWriter,
        sign: Callable[[bytes], str],
        identity: Identity,
        promotions: PromotionService,
        requests: RequestIndex,
        artifact: Callable[[str], IndexedArtifact | None],
        templates: Templates,
        policy: Callable[[], Policy],
        forge: Forge,
        locks: Locks,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        holds: Callable[[str], list[str]] = lambda artifact_id: [],
    ) -> None:
        self._mirror = mirror
        self._holds = holds  # artifact id -> environments a rollback holds it out of
        self._writer = writer
        self._sign = sign
        self._identity = identity
        self._promotions = promotions
        self._requests = requests
        self._artifact = artifact
        self._templates = templates
        self._policy = policy
        self._forge = forge
        self.forge = forge
        self._locks = locks
        self._clock = clock

    # -- open --------------------------------------------------------------------
    @traced("ritmo.promote.request")
    def open(
        self,
        artifact: IndexedArtifact,
        ask: PromotionInput,
        rule: PromotionRule,
        by: str,
        correlation_id: str,
        rollback: RollbackAsk | None = None,
    ) -> dict[str, Any]:
        """Open the request for app+env; an open older one is superseded by it. Asking
        again for what the open request already asks returns that request.

        With `rollback`, the request pins an earlier artifact again, and its merge is a
        rollback (a hold on the failed artifact) instead of a promotion."""
        with self._locks.hold(_lock_name(artifact.record["name"], ask.to_env)):
            older = self._requests.open_for(artifact.record["name"], ask.to_env)
            if older is not None and self._asks_the_same(older, artifact, ask, rollback):
                return self.describe(older["id"])
            return self._open(artifact, ask, rule, by, correlation_id, rollback, older)

    def _asks_the_same(
        self,
        request: Mapping[str, Any],
        artifact: IndexedArtifact,
        ask: PromotionInput,
        rollback: RollbackAsk | None,
    ) -> bool:
        return (
            request["artifact_id"] == artifact.record["id"]
            and request["from_env"] == ask.from_env
            and self._rollback_of(request) == rollback
        )

    def _open(
        self,
        artifact: IndexedArtifact,
        ask: PromotionInput,
        rule: PromotionRule,
        by: str,
        correlation_id: str,
        rollback: RollbackAsk | None,
        older: dict[str, Any] | None,
    ) -> dict[str, Any]:
        record = artifact.record
        app, env = record["name"], ask.to_env
        now = self._clock()
        pin = self._promotions.pin_change(record, ask, by, correlation_id, auto=False)
        deadline = now + rule.approval_timeout if rule.approval_timeout else None
        message = self._templates.render(
            "commit/request.txt",
            record=record,
            from_env=ask.from_env,
            to_env=env,
            requested_by=by,
            pinned=pinned_value(pin.target, record),
            path=pin.path,
            needs=_needs(rule),
            deadline=stamp(deadline) if deadline else None,
            notes=ask.notes,
            approved_by_note=ask.approved_by_note,
            approval_ticket=ask.approval_ticket,
            supersedes=older["id"] if older else None,
            correlation_id=correlation_id,
            rollback=rollback,
        )
        branch = branch_for(app, env)
        with self._mirror.locked():
            tip = self._mirror.fetch()
            if tip is None:
                raise PromotionRefused("the default branch is empty; nothing to promote onto")
            existing = self._mirror.fetch_branches(BRANCH_PREFIX).get(branch)
            before = read_path(self._mirror, self._mirror.tree_of(tip), pin.path)
            edit = pin.plan(lambda path: read_path(self._mirror, self._mirror.tree_of(tip), path))
            assert isinstance(edit, Edit)
            tree = write_tree(self._mirror, self._mirror.tree_of(tip), edit.files)
            head = signed_commit(
                self._mirror, self._sign, tree, [tip], self._identity, self._identity,
                int(now.timestamp()), message,
            )  # fmt: skip
            self._mirror.flush()
            if existing is not None and not self._mirror.delete_branch(branch, existing):
                raise PromotionRefused(
                    f"{branch} was changed by someone else while Ritmo replaced it; try again"
                )
            pushed = self._mirror.push_branch(head, branch)
            if pushed.status is not PushStatus.PUSHED:
                raise WriteUnavailable(f"could not push {branch}: {pushed.detail}")
        request_id = "req-" + head[:16]
        after = edit.files.get(pin.path, before or b"")
        body = self._templates.render(
            "pr/request.md",
            record=record,
            to_env=env,
            current=current_value(
                pin.target, (before or b"").decode(), split_image(str(record["image"]))[0]
            ),
            requested_by=by,
            approval_ticket=ask.approval_ticket,
            diff=overlay_diff(pin.path, before or b"", after),
            needs=_needs(rule),
            deadline=stamp(deadline) if deadline else None,
            notes=ask.notes,
            approved_by_note=ask.approved_by_note,
            request_id=request_id,
            correlation_id=correlation_id,
        )
        row = {
            "id": request_id,
            "artifact_id": record["id"],
            "app": app,
            "version": record["version"],
            "from_env": ask.from_env,
            "to_env": env,
            "branch": branch,
            "head": head,
            "tip": head,
            "status": "pending",
            "requested_by": by,
            "approval_ticket": ask.approval_ticket,
            "opened_at": stamp(now),
            "closed_at": None,
            "superseded_by": None,
            "merge_commit": None,
            "reason": None,
            "forge_ref": None,
            "body": body,
        }
        view = self._view(row, body)
        row["forge_ref"] = self._forge.opened(view)
        self._requests.save(row)
        event(
            "request_opened",
            f"opened {request_id}: {app} {record['version']} "
            f"{ask.from_env} -> {env} ({record['id']})",
            request_id=request_id,
            artifact_id=record["id"],
            app=app,
            version=record["version"],
            to=env,
            requested_by=by,
            correlation_id=correlation_id,
        )
        if older is not None:
            # The branch already holds the new request: only the old one's record ends,
            # with a pointer to the new one (its pull request, on GitHub).
            where = f" (#{row['forge_ref']})" if row["forge_ref"] else ""
            self.close(
                older["id"], "superseded", f"superseded by {request_id}{where}",
                superseded_by=request_id, drop_branch=False,
            )  # fmt: skip
        return self.describe(request_id, fresh=True)

    # -- review ------------------------------------------------------------------
    @one_at_a_time
    def review(
        self, request_id: str, reviewer: Principal, state: str, commit: str | None
    ) -> dict[str, Any]:
        """Record a review by an authenticated user; merge when the policy then holds."""
        request = self._requests.get(request_id)
        if request is None:
            raise ReviewRefused(404, f"no promotion request {request_id!r}")
        if request["status"] != "pending":
            raise ReviewRefused(409, f"request {request_id} is {request['status']}, not pending")
        if self._forge.kind != "local":
            raise ReviewRefused(
                409, f"reviews of this request are taken on {self._forge.kind}, not here"
            )
        if is_among(reviewer.name, (request["requested_by"], self._forge.author())):
            raise ReviewRefused(
                403, f"{reviewer.name} requested this promotion; someone else must review it"
            )
        rule = self._rule(request)
        groups = rule.groups
        members = self._forge.memberships(self._policy(), groups)
        if not any(is_among(reviewer.name, members.get(g, frozenset())) for g in groups):
            raise ReviewRefused(
                403,
                f"{reviewer.name} is in none of the approver groups ({', '.join(groups)}) "
                f"for {request['from_env']} -> {request['to_env']}",
            )
        if commit is not None and commit != request["head"]:
            raise ReviewRefused(
                409,
                f"commit {commit[:12]} is not the request's head {request['head'][:12]}; "
                "review the current head",
            )
        now = self._clock()
        message = self._templates.render(
            "commit/review.txt",
            verb="Approve" if state == "approved" else "Request changes on",
            request_id=request_id,
            reviewer=reviewer.name,
            app=request["app"],
            version=request["version"],
            to_env=request["to_env"],
            state=state,
            head=request["head"],
        )
        with self._mirror.locked():
            tip = self._mirror.fetch_branches(BRANCH_PREFIX).get(request["branch"])
            if tip is None or tip != request["tip"]:
                raise ReviewRefused(
                    409, f"{request['branch']} moved outside Ritmo; the request cannot be reviewed"
                )
            sha = signed_commit(
                self._mirror, self._sign, self._mirror.tree_of(tip), [tip], self._identity,
                self._identity, int(now.timestamp()), message,
            )  # fmt: skip
            self._mirror.flush()
            pushed = self._mirror.push_branch(sha, request["branch"])
            if pushed.status is not PushStatus.PUSHED:
                raise WriteUnavailable(f"could not push {request['branch']}: {pushed.detail}")
        self._requests.add_review(
            {
                "sha": sha,
                "request_id": request_id,
                "reviewer": reviewer.name,
                "state": state,
                "commit": request["head"],
                "submitted_at": stamp(now),
            }
        )
        self._requests.save({**request, "tip": sha})
        self.settle(request_id)
        return self.describe(request_id)

    # -- decide ------------------------------------------------------------------
    def _fresh_decision(self, request: Mapping[str, Any]) -> Decision:
        return evaluate(self._policy(), self._as_request(request), [], {}, self._clock())

    def _as_request(self, request: Mapping[str, Any]) -> PromotionRequest:
        return PromotionRequest(
            app=request["app"],
            version=request["version"],
            from_env=request["from_env"],
            to_env=request["to_env"],
            author=self._forge.author(),
            requested_by=request["requested_by"],
            head=request["head"],
            opened_at=_parse(request["opened_at"]),
        )

    def decide(self, request: Mapping[str, Any], at: datetime | None = None) -> Decision:
        """The policy's decision now (or `at`, e.g. when a person merged on the forge)."""
        policy = self._policy()
        rule = policy.rule(request["app"], request["from_env"], request["to_env"])
        groups = rule.groups if rule else ()
        reviews = self._forge.reviews(self._view(request))
        if reviews is None:
            reviews = [
                Review(
                    reviewer=r["reviewer"],
                    state=r["state"],
                    commit=r["commit"],
                    submitted_at=_parse(r["submitted_at"]),
                )
                for r in self._requests.reviews_of(request["id"])
            ]
        if at is not None:  # what reviewers said by then; a later approval does not count
            reviews = [r for r in reviews if r.submitted_at <= at]
        return evaluate(
            policy,
            self._as_request(request),
            reviews,
            self._forge.memberships(policy, groups),
            at or self._clock(),
        )

    @one_at_a_time
    def settle(self, request_id: str) -> str:
        """Merge an approved request, close an expired one; returns the status after."""
        request = self._requests.get(request_id)
        if request is None or request["status"] != "pending":
            return request["status"] if request else "missing"
        decision = self.decide(request)
        if decision.status == "approved":
            self._writer.sync()  # what other replicas wrote (a rollback) counts too
            with self._mirror.locked():
                tip = self._mirror.fetch_branches(BRANCH_PREFIX).get(request["branch"])
            stale = self.stale(request, tip, self._rollback_of(request) is not None)
            if stale is None:
                self._forge.progressed(self._view(request), decision)  # the status turns green
                try:
                    self._merge(request, decision)
                    return "merged"
                except StaleRequest as exc:
                    stale = str(exc)
            self.close(request_id, "stale", stale)
            log.info("%s is stale, not merged: %s", request_id, stale)
            return "stale"
        if decision.status == "expired":
            self.close(request_id, "expired", decision.reason)
            return "expired"
        self._forge.progressed(self._view(request), decision)
        return "pending"

    def stale(
        self, request: Mapping[str, Any], branch_tip: str | None, rollback: bool
    ) -> str | None:
        """Why the request must not merge now (bot/promotions/eligibility), or None.
        Reads only the index: the writer's thread asks it too, holding the mirror."""
        artifact = self._artifact(request["artifact_id"])
        newest, _ = self._requests.search(app=request["app"], env=request["to_env"], limit=1)
        return stale_reason(
            MergeFacts(
                app=request["app"],
                version=request["version"],
                from_env=request["from_env"],
                to_env=request["to_env"],
                rollback=rollback,
                artifact_in=artifact.promotion_status if artifact else None,
                held_in=frozenset(self._holds(request["artifact_id"])),
                newest_request=newest[0]["id"] if newest else None,
                request_id=request["id"],
                branch=request["branch"],
                branch_tip=branch_tip,
                reviewed_tip=request["tip"],
                artifact=not self._is_policy_change(request),
            )
        )

    @staticmethod
    def _is_policy_change(request: Mapping[str, Any]) -> bool:
        """Promotion requests only here; PolicyRequests knows the other kind."""
        return False

    def expire_due(self) -> list[str]:
        """The scheduled job: settle every pending request (merges, expiries)."""
        expired = []
        for request in self._requests.pending():
            try:
                if self.settle(request["id"]) == "expired":
                    expired.append(request["id"])
            except Exception:  # one forge hiccup must not stop the others being settled
                log.exception("could not settle %s", request["id"])
        return expired

    def _rollback_of(self, request: Mapping[str, Any]) -> RollbackAsk | None:
        """What a rollback request rolls back, as its signed head commit says."""
        with self._mirror.locked():
            self._fetch_if_missing(request["head"])
            said = parse_trailers(self._mirror.log("-1", "--format=%B", request["head"]))
        failed = said.get("Ritmo-Rolled-Back")
        if not said.get("Ritmo-Rollback-Request") or not failed:
            return None
        returned = said.get("Ritmo-Returned-To")
        deployment = said.get("Ritmo-Deployment")
        return RollbackAsk(
            failed[0], deployment[0] if deployment else None, returned[0] if returned else None
        )

    @traced("ritmo.promote")
    def _merge(self, request: Mapping[str, Any], decision: Decision) -> None:
        artifact = self._artifact(request["artifact_id"])
        if artifact is None:
            raise RuntimeError(f"artifact {request['artifact_id']} of {request['id']} is gone")
        ask = PromotionInput(
            request["from_env"], request["to_env"], None, request["approval_ticket"]
        )
        pin = self._promotions.pin_change(
            artifact.record, ask, request["requested_by"], request["id"], auto=False
        )
        rollback = self._rollback_of(request)
        message = self._templates.render(
            "commit/merge.txt",
            record=artifact.record,
            from_env=request["from_env"],
            to_env=request["to_env"],
            request_id=request["id"],
            requested_by=request["requested_by"],
            approvers=list(decision.approvers),
            pinned=pinned_value(pin.target, artifact.record),
            path=pin.path,
            approval_ticket=request["approval_ticket"],
            correlation_id=request["id"],
            rollback=rollback,
        )
        with self._mirror.locked():
            self._fetch_if_missing(request["tip"])  # the merge's second parent
        # Always a commit: the merge records the approvals even over an overlay that pins it.
        merge = MergeRequest(
            replace(pin, message=message, promoted_already=None),
            request["tip"],
            # The branch was checked; the index may have moved on since (another replica).
            recheck=lambda: self.stale(request, request["tip"], rollback is not None),
        )
        result = self._writer.write(merge)
        if self._forge.kind == "local":
            # On GitHub the pull request must see its head reach the default branch first;
            # the repository's "delete head branches" setting tidies up after that.
            self._drop_branch(request)
        self._requests.save(
            {**request, "status": "merged", "merge_commit": result.commit,
             "closed_at": stamp(self._clock()), "reason": decision.reason}
        )  # fmt: skip
        event(
            "request_merged",
            f"merged {request['id']}: {request['app']} {request['version']} "
            f"to {request['to_env']} in {result.commit}",
            request_id=request["id"],
            artifact_id=request["artifact_id"],
            app=request["app"],
            to=request["to_env"],
            commit=result.commit,
        )

    @one_at_a_time
    def close(
        self,
        request_id: str,
        status: str,
        reason: str,
        superseded_by: str | None = None,
        drop_branch: bool = True,
        tell_forge: bool = True,
    ) -> None:
        """End a pending request (expired, rejected, superseded) with a signed closing
        commit on the default branch: the audit trail keeps requests that never merged.
        `tell_forge=False` when the forge ended it already (a person closed the PR)."""
        request = self._requests.get(request_id)
        if request is None or request["status"] != "pending":
            return
        message = self._templates.render(
            "commit/close.txt",
            request_id=request_id,
            status=status,
            app=request["app"],
            version=request["version"],
            from_env=request["from_env"],
            to_env=request["to_env"],
            reason=reason,
            head=request["head"],
            artifact_id=request["artifact_id"],
            requested_by=request["requested_by"],
            # A closed branch goes away: its reviews stay in the audit trail here.
            reviews=self._requests.reviews_of(request_id),
        )
        self._writer.write(CloseRequest(message))
        if tell_forge:
            self._forge.closed(self._view(request), status, reason)
        if drop_branch:
            self._drop_branch(request)
        self._requests.save(
            {**request, "status": status, "closed_at": stamp(self._clock()), "reason": reason,
             "superseded_by": superseded_by}
        )  # fmt: skip
        event(
            "request_closed",
            f"closed {request_id} ({status}): {reason}",
            request_id=request_id,
            artifact_id=request["artifact_id"],
            app=request["app"],
            to=request["to_env"],
            status=status,
        )

    # -- outside Ritmo ------------------------------------------------------------
    @one_at_a_time
    def tampered(self, request_id: str, by: str, sha: str) -> bool:
        """Someone else pushed `sha` to the request branch: flag it and reject the request,
        so it is never merged. False when `sha` is Ritmo's own tip or the request ended."""
        request = self._requests.get(request_id)
        if request is None or request["status"] != "pending" or sha == request["tip"]:
            return False
        reason = (
            f"tampered: {by} pushed {sha[:12]} to {request['branch']}, which only Ritmo "
            "writes; Ritmo will never merge it. Ask for the promotion again to get a clean "
            "request"
        )
        self._forge.flagged(sha, reason)
        # The branch stays: it holds the foreign commit, the evidence.
        self.close(request_id, "rejected", reason, drop_branch=False)
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
        if request is None or request["status"] != "pending":
            return None
        decision = self.decide(request, at=merged_at)
        held = decision.status == "approved" and merged_head == request["tip"]
        if merged_head != request["tip"]:
            reason = (
                f"the merged head {merged_head[:12]} is not the request's {request['tip'][:12]}"
            )
        else:
            reason = decision.reason
        message = self._templates.render(
            "commit/forge-merge.txt",
            request=request,
            number=request["forge_ref"],
            merge_commit=merge_commit,
            merged_by=by,
            merged_at=stamp(merged_at),
            held=held,
            reason=reason,
            approvers=list(decision.approvers),
            rollback=self._rollback_of(request),
        )
        self._writer.sync()  # the forge's merge commit first: ours goes on top of it
        self._writer.write(RecordMerge(message))
        self._requests.save(
            {**request, "status": "merged", "merge_commit": merge_commit,
             "closed_at": stamp(self._clock()),
             "reason": f"merged by {by} on {self._forge.kind}; policy held: "
                       f"{'yes' if held else 'no'} ({reason})"}
        )  # fmt: skip
        event(
            "request_merged",
            f"merged {request_id} by {by} on {self._forge.kind}: "
            f"{request['app']} {request['version']} to {request['to_env']} in {merge_commit}",
            request_id=request_id,
            artifact_id=request["artifact_id"],
            app=request["app"],
            to=request["to_env"],
            commit=merge_commit,
            policy_held=held,
        )
        if not held:
            self._forge.flagged(merge_commit, f"merged by {by} without the policy: {reason}")
            self._forge.alert(
                merge_commit,
                f"this promotion of {request['app']} {request['version']} to "
                f"{request['to_env']} was merged by @{by} although the policy did not hold "
                f"({reason}). Ritmo recorded it with `Ritmo-Policy-Held: no`.",
                request.get("forge_ref"),
            )
            log.error(
                "ALERT: %s (%s %s to %s) was merged by %s in %s although the policy did not "
                "hold: %s",
                request_id, request["app"], request["version"], request["to_env"], by,
                merge_commit[:12], reason,
            )  # fmt: skip
        return held

    def _fetch_if_missing(self, sha: str) -> None:
        """Request commits another replica made are not in this one's mirror until it
        fetches the request branches. (Call with the mirror locked.)"""
        if not self._mirror.has_commit(sha):
            self._mirror.fetch_branches(BRANCH_PREFIX)

    def _drop_branch(self, request: Mapping[str, Any]) -> None:
        with self._mirror.locked():
            tip = self._mirror.fetch_branches(BRANCH_PREFIX).get(request["branch"])
            if tip is not None:
                self._mirror.delete_branch(request["branch"], tip)

    def _view(self, request: Mapping[str, Any], body: str = "") -> RequestView:
        rule = self._policy().rule(request["app"], request["from_env"], request["to_env"])
        return RequestView(
            id=request["id"],
            app=request["app"],
            version=request["version"],
            from_env=request["from_env"],
            to_env=request["to_env"],
            branch=request["branch"],
            head=request["head"],
            requested_by=request["requested_by"],
            title=f"Promote {request['app']} {request['version']} to {request['to_env']}",
            body=body,
            groups=rule.groups if rule else (),
            forge_ref=request.get("forge_ref"),
        )

    def _rule(self, request: Mapping[str, Any]) -> PromotionRule:
        rule = self._policy().rule(request["app"], request["from_env"], request["to_env"])
        if rule is None:
            raise ReviewRefused(
                409, f"the policy no longer has a rule {request['from_env']} -> {request['to_env']}"
            )
        return rule

    # -- read --------------------------------------------------------------------
    def describe(self, request_id: str, fresh: bool = False) -> dict[str, Any]:
        """The request as the API shows it; `fresh`: just opened, so no forge round trip."""
        request = self._requests.get(request_id)
        if request is None:
            raise ReviewRefused(404, f"no promotion request {request_id!r}")
        out: dict[str, Any] = {
            "id": request["id"],
            "kind": "request",
            "artifact_id": request["artifact_id"],
            "app": request["app"],
            "version": request["version"],
            "from": request["from_env"],
            "to": request["to_env"],
            "status": request["status"],
            "branch": request["branch"],
            "head": request["head"],
            "requested_by": request["requested_by"],
            "approval_ticket": request["approval_ticket"],
            "opened_at": request["opened_at"],
            "closed_at": request["closed_at"],
            "superseded_by": request["superseded_by"],
            "merge_commit": request["merge_commit"],
            "reason": request["reason"],
            "forge_ref": request["forge_ref"],
            "description": request["body"],
            "reviews": [
                {"reviewer": r["reviewer"], "state": r["state"], "commit": r["commit"],
                 "submitted_at": r["submitted_at"]}
                for r in self._requests.reviews_of(request_id)
            ],
        }  # fmt: skip
        pending = request["status"] == "pending"
        if fresh:
            decision = self._fresh_decision(request)
        else:
            # A closed request shows where it stood when it closed (a merged one: met,
            # `missing` empty), by the reviews given by then.
            closed = _parse(request["closed_at"]) if request["closed_at"] else None
            decision = self.decide(request, at=None if pending else closed)
        out.update(
            {
                "progress": decision.progress,
                "missing": [{"group": g, "count": n} for g, n in decision.missing],
                "approvers": list(decision.approvers),
                "blocked_by": list(decision.blocked_by),
                "frozen_until": stamp(decision.frozen_until) if decision.frozen_until else None,
                "decision": decision.status,
            }
        )
        if pending:
            out["reason"] = decision.reason
        return out


def _needs(rule: PromotionRule) -> str:
    parts = [f"{a.count} from {a.group}" for a in rule.approvals if a.count]
    if rule.min_approvers:
        parts.append(f"{rule.min_approvers} from any of {', '.join(rule.approver_groups)}")
    return " and ".join(parts) or "no approvals"


def overlay_diff(path: str, before: bytes, after: bytes) -> str:
    """A unified diff of one overlay, for the request's description."""
    lines = difflib.unified_diff(
        before.decode().splitlines(keepends=True),
        after.decode().splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(lines).rstrip("\n")
