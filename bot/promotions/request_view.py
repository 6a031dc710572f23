"""Reading promotion requests: what the API shows of one, the policy's decision on it,
and why it must not merge now. The base of RequestService (bot/promotions/requests.py)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from bot.errors import NotFound, Refused
from bot.forge import Forge, RequestView
from bot.manifests.mirror import Mirror
from bot.manifests.trailers import parse_trailers
from bot.manifests.writer import ManifestWriter
from bot.policy.evaluate import Decision, PromotionRequest, Review, ReviewState, evaluate
from bot.policy.model import Policy, PromotionRule
from bot.promotions.eligibility import MergeFacts, stale_reason
from bot.promotions.service import PromotionService
from bot.statuses import RequestStatus
from bot.store.index import IndexedArtifact
from bot.store.locks import Locks
from bot.store.request_index import RequestIndex
from bot.store.request_record import RequestRecord
from bot.templates import Templates
from bot.timestamps import parse, stamp

BRANCH_PREFIX = "ritmo/promote/"

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="RequestViews")


def lock_name(app: str, env: str) -> str:
    return f"request/{app}/{env}"


def one_at_a_time(
    method: Callable[Concatenate[S, str, P], R],
) -> Callable[Concatenate[S, str, P], R]:
    """Run a method on request `request_id` holding its app and environment's lock, so
    replicas (and threads) never open, review, merge or close one request at once. The
    method reads the request again itself, under the lock."""

    def locked(self: S, request_id: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        request = self._requests.get(request_id)
        if request is None:
            return method(self, request_id, *args, **kwargs)
        with self._locks.hold(lock_name(request.app, request.to_env)):
            return method(self, request_id, *args, **kwargs)

    locked.__name__, locked.__doc__ = method.__name__, method.__doc__
    return locked


@dataclass(frozen=True)
class RollbackAsk:
    """A request that rolls `failed` back out of the environment (bot/deploy)."""

    failed: str
    deployment: str | None
    returned_to: str | None


def branch_for(app: str, env: str) -> str:
    return f"{BRANCH_PREFIX}{app}/{env}"


class RequestViews:
    """What every part of RequestService shares: its parts, and reading requests."""

    def __init__(
        self,
        mirror: Mirror,
        writer: ManifestWriter,
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
        self._promotions = promotions
        self._requests = requests
        self._artifact = artifact
        self._templates = templates
        self._policy = policy
        self._forge = forge
        self.forge = forge
        self._locks = locks
        self._clock = clock

    # -- decide ------------------------------------------------------------------
    def _fresh_decision(self, request: RequestRecord) -> Decision:
        return evaluate(self._policy(), self._as_request(request), [], {}, self._clock())

    def _as_request(self, request: RequestRecord) -> PromotionRequest:
        return PromotionRequest(
            app=request.app,
            version=request.version,
            from_env=request.from_env,
            to_env=request.to_env,
            author=self._forge.author(),
            requested_by=request.requested_by,
            head=request.head,
            opened_at=parse(request.opened_at),
        )

    def decide(self, request: RequestRecord, at: datetime | None = None) -> Decision:
        """The policy's decision now (or `at`, e.g. when a person merged on the forge)."""
        policy = self._policy()
        rule = policy.rule(request.app, request.from_env, request.to_env)
        groups = rule.groups if rule else ()
        reviews = self._forge.reviews(self._view(request))
        if reviews is None:
            reviews = [
                Review(
                    reviewer=r.reviewer,
                    # As recorded; evaluate counts only the states it knows.
                    state=cast(ReviewState, r.state),
                    commit=r.commit,
                    submitted_at=parse(r.submitted_at),
                )
                for r in self._requests.reviews_of(request.id)
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

    def stale(self, request: RequestRecord, branch_tip: str | None, rollback: bool) -> str | None:
        """Why the request must not merge now (bot/promotions/eligibility), or None.
        Reads only the index: the writer's thread asks it too, holding the mirror."""
        artifact = self._artifact(request.artifact_id)
        newest, _ = self._requests.search(app=request.app, env=request.to_env, limit=1)
        return stale_reason(
            MergeFacts(
                app=request.app,
                version=request.version,
                from_env=request.from_env,
                to_env=request.to_env,
                rollback=rollback,
                artifact_in=artifact.promotion_status if artifact else None,
                held_in=frozenset(self._holds(request.artifact_id)),
                newest_request=newest[0].id if newest else None,
                request_id=request.id,
                branch=request.branch,
                branch_tip=branch_tip,
                reviewed_tip=request.tip,
                artifact=not self._is_policy_change(request),
            )
        )

    @staticmethod
    def _is_policy_change(request: RequestRecord) -> bool:
        """Promotion requests only here; PolicyRequests knows the other kind."""
        return False

    def _rollback_of(self, request: RequestRecord) -> RollbackAsk | None:
        """What a rollback request rolls back, as its signed head commit says."""
        with self._mirror.locked():
            self._fetch_if_missing(request.head)
            said = parse_trailers(self._mirror.log("-1", "--format=%B", request.head))
        failed = said.get("Ritmo-Rolled-Back")
        if not said.get("Ritmo-Rollback-Request") or not failed:
            return None
        returned = said.get("Ritmo-Returned-To")
        deployment = said.get("Ritmo-Deployment")
        return RollbackAsk(
            failed[0], deployment[0] if deployment else None, returned[0] if returned else None
        )

    def _fetch_if_missing(self, sha: str) -> None:
        """Request commits another replica made are not in this one's mirror until it
        fetches the request branches. (Call with the mirror locked.)"""
        if not self._mirror.has_commit(sha):
            self._mirror.fetch_branches(BRANCH_PREFIX)

    def _view(self, request: RequestRecord, body: str = "") -> RequestView:
        rule = self._policy().rule(request.app, request.from_env, request.to_env)
        return RequestView(
            id=request.id,
            app=request.app,
            version=request.version,
            from_env=request.from_env,
            to_env=request.to_env,
            branch=request.branch,
            head=request.head,
            requested_by=request.requested_by,
            title=f"Promote {request.app} {request.version} to {request.to_env}",
            body=body,
            groups=rule.groups if rule else (),
            forge_ref=request.forge_ref,
        )

    def _rule(self, request: RequestRecord) -> PromotionRule:
        rule = self._policy().rule(request.app, request.from_env, request.to_env)
        if rule is None:
            raise Refused(f"the policy no longer has a rule {request.from_env} -> {request.to_env}")
        return rule

    # -- read --------------------------------------------------------------------
    def describe(self, request_id: str, fresh: bool = False) -> dict[str, Any]:
        """The request as the API shows it; `fresh`: just opened, so no forge round trip."""
        request = self._requests.get(request_id)
        if request is None:
            raise NotFound(f"no promotion request {request_id!r}")
        out: dict[str, Any] = {
            "id": request.id,
            "kind": "request",
            "artifact_id": request.artifact_id,
            "app": request.app,
            "version": request.version,
            "from": request.from_env,
            "to": request.to_env,
            "status": request.status,
            "branch": request.branch,
            "head": request.head,
            "requested_by": request.requested_by,
            "approval_ticket": request.approval_ticket,
            "opened_at": request.opened_at,
            "closed_at": request.closed_at,
            "superseded_by": request.superseded_by,
            "merge_commit": request.merge_commit,
            "reason": request.reason,
            "forge_ref": request.forge_ref,
            "description": request.body,
            "reviews": [
                {"reviewer": r.reviewer, "state": r.state, "commit": r.commit,
                 "submitted_at": r.submitted_at}
                for r in self._requests.reviews_of(request_id)
            ],
        }  # fmt: skip
        pending = request.status == RequestStatus.PENDING
        if fresh:
            decision = self._fresh_decision(request)
        else:
            # A closed request shows where it stood when it closed (a merged one: met,
            # `missing` empty), by the reviews given by then.
            closed = parse(request.closed_at) if request.closed_at else None
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


def needs(rule: PromotionRule) -> str:
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
