"""Policy evaluation as one table: reviews + memberships + clock -> decision (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.policy.evaluate import (
    Decision,
    PromotionRequest,
    Review,
    ReviewState,
    Status,
    evaluate,
)
from bot.policy.model import Policy

BERLIN = ZoneInfo("Europe/Berlin")
HEAD, OLD = "c0ffee2", "c0ffee1"

# A Wednesday outside any freeze; reviews are stamped minutes after REVIEWED.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REVIEWED = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
MINUTE, SECOND = timedelta(minutes=1), timedelta(seconds=1)

# The weekend freeze: Friday 16:00 Europe/Berlin for 64h, up to Monday 08:00.
FRI = datetime(2026, 11, 27, 16, 0, tzinfo=BERLIN)
MON = datetime(2026, 11, 30, 8, 0, tzinfo=BERLIN)
WEEKEND = "production is frozen until 2026-11-30 08:00 Europe/Berlin (weekend)"
# DST weeks: clocks go forward on 2026-03-29 and back on 2026-10-25 (Europe/Berlin).
MON_SPRING = datetime(2026, 3, 30, 8, 0, tzinfo=BERLIN)  # 06:00 UTC
FRI_AUTUMN = datetime(2026, 10, 23, 16, 0, tzinfo=BERLIN)  # 14:00 UTC
MON_AUTUMN = datetime(2026, 10, 26, 8, 0, tzinfo=BERLIN)  # 07:00 UTC

# ada wrote the PR, rick asked for the promotion; abe is in both approver groups.
MEMBERS: dict[str, frozenset[str]] = {
    "ops-team": frozenset({"alice", "dave", "abe", "ada", "ritmo-ci[bot]"}),
    "security-team": frozenset({"bob", "carol", "abe", "rick", "deploybot"}),
    "sre-team": frozenset({"steve"}),
}

OPS_AND_SECURITY = [{"group": "ops-team", "count": 1}, {"group": "security-team", "count": 1}]


def policy(rule: dict[str, Any] | None = None, **top: Any) -> Policy:
    """policies/default.yaml's shape; `rule` overrides the staging -> production rule."""
    production_rule = {
        "from": "staging",
        "to": "production",
        "requires_approval": True,
        "approvals": OPS_AND_SECURITY,
        "approval_timeout": "7d",
        **(rule or {}),
    }
    doc: dict[str, Any] = {
        "environments": [
            {"name": "dev", "auto_promote": True},
            {"name": "staging"},
            {
                "name": "production",
                "freeze": [
                    {
                        "cron": "0 16 * * FRI",
                        "duration": "64h",
                        "timezone": "Europe/Berlin",
                        "reason": "weekend",
                    }
                ],
            },
        ],
        "promotion_rules": [
            {"from": "dev", "to": "staging", "auto_promote": True, "requires_approval": False},
            production_rule,
        ],
        "groups": {"ops-team": {}, "security-team": {}, "sre-team": {}},
        "apps": {"web": {}},
    }
    doc.update(top)
    return Policy.model_validate(doc)


DEFAULT = policy()
ANY_TWO = policy(
    {"approvals": [], "min_approvers": 2, "approver_groups": ["ops-team", "security-team"]}
)
COMBINED = policy(
    {"min_approvers": 3, "approver_groups": ["ops-team", "security-team", "sre-team"]}
)
TWO_OPS = policy({"approvals": [{"group": "ops-team", "count": 2}, OPS_AND_SECURITY[1]]})
NO_TIMEOUT = policy({"approval_timeout": None})
PER_APP = policy(
    apps={
        "web": {},
        "api": {
            "promotion_rules": [
                {"from": "dev", "to": "staging", "auto_promote": True},
                {"from": "staging", "to": "production"},  # no approval for this app
            ]
        },
        "worker": {"promotion_rules": [{"from": "dev", "to": "staging"}]},
    }
)
HOLIDAYS = policy(
    {
        "freeze": [
            {"cron": "0 0 24 12 *", "duration": "48h", "timezone": "UTC", "reason": "holidays"}
        ]
    }
)
NIGHTLY_STAGING = policy(
    environments=[
        {"name": "dev"},
        {"name": "staging", "freeze": [{"cron": "0 18 * * *", "duration": "14h"}]},
        {"name": "production"},
    ],
    promotion_rules=[
        {"from": "dev", "to": "staging", "approval_timeout": "1d"},
        {
            "from": "staging",
            "to": "production",
            "requires_approval": True,
            "approvals": OPS_AND_SECURITY,
        },
    ],
)


def rv(
    who: str,
    state: ReviewState = "approved",
    *,
    at: int = 0,
    commit: str = HEAD,
    bot: bool = False,
) -> Review:
    """A review by `who`, submitted `at` minutes after REVIEWED."""
    return Review(who, state, commit, REVIEWED + at * MINUTE, is_bot=bot)


APPROVED = (rv("alice", at=1), rv("bob", at=2))


def approved_on(day: datetime) -> tuple[Review, ...]:
    """Both approvals, given in time on `day` (for `now`s far from REVIEWED)."""
    return (Review("alice", "approved", HEAD, day), Review("bob", "approved", HEAD, day + MINUTE))


SPRING, AUTUMN = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)
IN_TIME_SPRING: dict[str, Any] = {
    "reviews": approved_on(SPRING),
    "opened": SPRING - timedelta(days=1),
}
IN_TIME_AUTUMN: dict[str, Any] = {
    "reviews": approved_on(AUTUMN),
    "opened": AUTUMN - timedelta(days=1),
}


@dataclass(frozen=True)
class Case:
    # given
    reviews: tuple[Review, ...] = ()
    policy: Policy = DEFAULT
    now: datetime = NOW
    opened: datetime | None = None  # default: a day before `now`
    app: str = "web"
    route: tuple[str, str] = ("staging", "production")
    # expected
    status: Status = "pending"
    approvers: tuple[str, ...] = ()
    missing: tuple[tuple[str, int], ...] = ()
    blocked_by: tuple[str, ...] = ()
    frozen_until: datetime | None = None
    reason: str = ""
    progress: str | None = None
    marks: tuple[Any, ...] = field(default=())


def case(id: str, **kwargs: Any) -> Any:
    c = Case(**kwargs)
    return pytest.param(c, id=id, marks=c.marks)


MISSING_BOTH = (("ops-team", 1), ("security-team", 1))
MISSING_OPS = (("ops-team", 1),)
MISSING_SECURITY = (("security-team", 1),)
ANY_OPS_SEC = "any of ops-team, security-team"
ANY_ALL = "any of ops-team, security-team, sre-team"

TABLE = [
    # -- per-group counts, distinct people --------------------------------------------
    case("no-reviews", missing=MISSING_BOTH, progress="0/2 approvals",
         reason="missing 1 approval from ops-team and 1 approval from security-team"),
    case("one-group-only", reviews=(rv("alice"),), approvers=("alice",),
         missing=MISSING_SECURITY, progress="1/2 approvals",
         reason="missing 1 approval from security-team"),
    case("one-from-each-group", reviews=APPROVED, status="approved",
         approvers=("alice", "bob"), progress="2/2 approvals", reason="approved by alice and bob"),
    case("two-from-the-same-group-fill-one-slot", reviews=(rv("alice"), rv("dave")),
         approvers=("alice",), missing=MISSING_SECURITY, progress="1/2 approvals",
         reason="missing 1 approval from security-team"),
    case("one-person-in-both-groups-fills-one", reviews=(rv("abe"),), approvers=("abe",),
         missing=MISSING_SECURITY, progress="1/2 approvals",
         reason="missing 1 approval from security-team"),
    case("both-groups-person-moves-to-security", reviews=(rv("abe", at=1), rv("alice", at=2)),
         status="approved", approvers=("abe", "alice"), reason="approved by abe and alice"),
    case("both-groups-person-moves-order-reversed",
         reviews=(rv("alice", at=1), rv("abe", at=2)),
         status="approved", approvers=("abe", "alice"), reason="approved by abe and alice"),
    case("both-groups-person-with-security-member", reviews=(rv("bob"), rv("abe")),
         status="approved", approvers=("abe", "bob"), reason="approved by abe and bob"),
    case("count-two-per-group-short", policy=TWO_OPS, reviews=(rv("abe"), rv("bob")),
         approvers=("abe", "bob"), missing=MISSING_OPS, progress="2/3 approvals",
         reason="missing 1 approval from ops-team"),
    case("count-two-per-group-met", policy=TWO_OPS,
         reviews=(rv("abe"), rv("alice"), rv("dave")), status="approved",
         approvers=("abe", "alice", "dave"), progress="3/3 approvals",
         reason="approved by abe, alice and dave"),
    # -- N from any of the groups -------------------------------------------------------
    case("any-one-of-two", policy=ANY_TWO, reviews=(rv("alice"),), approvers=("alice",),
         missing=((ANY_OPS_SEC, 1),), progress="1/2 approvals",
         reason=f"missing 1 approval from {ANY_OPS_SEC}"),
    case("any-two-from-one-group", policy=ANY_TWO, reviews=(rv("alice"), rv("dave")),
         status="approved", approvers=("alice", "dave"), progress="2/2 approvals",
         reason="approved by alice and dave"),
    case("any-both-groups-person-counts-once", policy=ANY_TWO, reviews=(rv("abe"),),
         approvers=("abe",), missing=((ANY_OPS_SEC, 1),),
         reason=f"missing 1 approval from {ANY_OPS_SEC}"),
    case("any-non-member-does-not-count", policy=ANY_TWO,
         reviews=(rv("mallory"), rv("steve"), rv("alice")), approvers=("alice",),
         missing=((ANY_OPS_SEC, 1),), reason=f"missing 1 approval from {ANY_OPS_SEC}"),
    case("any-more-than-needed", policy=ANY_TWO, reviews=(rv("alice"), rv("bob"), rv("dave")),
         status="approved", approvers=("alice", "bob", "dave"), progress="2/2 approvals",
         reason="approved by alice, bob and dave"),
    # -- per-group and min_approvers together: both must hold ---------------------------
    case("combined-groups-met-minimum-not", policy=COMBINED, reviews=APPROVED,
         approvers=("alice", "bob"), missing=((ANY_ALL, 1),), progress="2/3 approvals",
         reason=f"missing 1 approval from {ANY_ALL}"),
    case("combined-minimum-met-groups-not", policy=COMBINED,
         reviews=(rv("alice"), rv("dave"), rv("steve")), approvers=("alice", "dave", "steve"),
         missing=MISSING_SECURITY, progress="2/3 approvals",
         reason="missing 1 approval from security-team"),
    case("combined-both-met", policy=COMBINED, reviews=(*APPROVED, rv("steve")),
         status="approved", approvers=("alice", "bob", "steve"), progress="3/3 approvals",
         reason="approved by alice, bob and steve"),
    case("combined-any-counts-on-top-of-groups", policy=COMBINED, reviews=(rv("alice"),),
         approvers=("alice",), missing=(("security-team", 1), (ANY_ALL, 1)),
         progress="1/3 approvals",
         reason=f"missing 1 approval from security-team and 1 approval from {ANY_ALL}"),
    # -- who never counts ---------------------------------------------------------------
    case("author-does-not-count", reviews=(rv("ada"), rv("bob")), approvers=("bob",),
         missing=MISSING_OPS, reason="missing 1 approval from ops-team"),
    case("author-case-insensitive", reviews=(rv("ADA"), rv("bob")), approvers=("bob",),
         missing=MISSING_OPS, reason="missing 1 approval from ops-team"),
    case("requester-does-not-count", reviews=(rv("alice"), rv("rick")), approvers=("alice",),
         missing=MISSING_SECURITY, reason="missing 1 approval from security-team"),
    case("bot-login-does-not-count", reviews=(rv("ritmo-ci[bot]"), rv("bob")),
         approvers=("bob",), missing=MISSING_OPS, reason="missing 1 approval from ops-team"),
    case("bot-flag-does-not-count", reviews=(rv("alice"), rv("deploybot", bot=True)),
         approvers=("alice",), missing=MISSING_SECURITY,
         reason="missing 1 approval from security-team"),
    case("non-member-does-not-count", reviews=(rv("alice"), rv("mallory")),
         approvers=("alice",), missing=MISSING_SECURITY,
         reason="missing 1 approval from security-team"),
    # -- the head commit ----------------------------------------------------------------
    case("approval-on-stale-head", reviews=(rv("alice", commit=OLD), rv("bob")),
         approvers=("bob",), missing=MISSING_OPS, reason="missing 1 approval from ops-team"),
    case("re-approved-on-new-head",
         reviews=(rv("alice", at=1, commit=OLD), rv("alice", at=5), rv("bob", at=2)),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("comment-on-head-keeps-stale-approval-stale",
         reviews=(rv("alice", at=1, commit=OLD), rv("alice", "commented", at=5), rv("bob")),
         approvers=("bob",), missing=MISSING_OPS, reason="missing 1 approval from ops-team"),
    # -- each reviewer's latest review --------------------------------------------------
    case("latest-wins-changes-after-approval",
         reviews=(rv("alice"), rv("bob", at=1), rv("bob", "changes_requested", at=9)),
         status="blocked", approvers=("alice",), missing=MISSING_SECURITY, blocked_by=("bob",),
         reason="changes requested by bob"),
    case("latest-by-time-not-list-order",
         reviews=(rv("bob", at=9), rv("bob", "changes_requested", at=1), rv("alice")),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("approval-after-changes-request",
         reviews=(rv("carol", "changes_requested", at=1), rv("carol", at=7), rv("alice")),
         status="approved", approvers=("alice", "carol"), reason="approved by alice and carol"),
    case("comment-does-not-override-approval",
         reviews=(rv("alice", at=1), rv("alice", "commented", at=8), rv("bob")),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("comment-does-not-override-changes-request",
         reviews=(*APPROVED, rv("carol", "changes_requested", at=3),
                  rv("carol", "commented", at=9)),
         status="blocked", approvers=("alice", "bob"), blocked_by=("carol",),
         reason="changes requested by carol"),
    case("dismissed-removes-approval",
         reviews=(rv("alice", at=1), rv("alice", "dismissed", at=4), rv("bob")),
         approvers=("bob",), missing=MISSING_OPS, reason="missing 1 approval from ops-team"),
    case("dismissed-removes-changes-request",
         reviews=(*APPROVED, rv("carol", "changes_requested", at=3),
                  rv("carol", "dismissed", at=6)),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    # -- changes requested --------------------------------------------------------------
    case("changes-by-member-block", reviews=(*APPROVED, rv("carol", "changes_requested")),
         status="blocked", approvers=("alice", "bob"), blocked_by=("carol",),
         progress="2/2 approvals", reason="changes requested by carol"),
    case("changes-by-non-member-ignored",
         reviews=(*APPROVED, rv("mallory", "changes_requested")),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("changes-by-author-ignored", reviews=(*APPROVED, rv("ada", "changes_requested")),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("changes-by-bot-ignored",
         reviews=(*APPROVED, rv("deploybot", "changes_requested", bot=True)),
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("changes-on-old-commit-still-block",
         reviews=(*APPROVED, rv("dave", "changes_requested", commit=OLD)),
         status="blocked", approvers=("alice", "bob"), blocked_by=("dave",),
         reason="changes requested by dave"),
    case("changes-block-before-pending",
         reviews=(rv("dave", "changes_requested"), rv("carol", "changes_requested")),
         status="blocked", missing=MISSING_BOTH, blocked_by=("carol", "dave"),
         reason="changes requested by carol and dave"),
    # -- freeze windows (Friday 16:00 Europe/Berlin + 64h) -------------------------------
    case("freeze-one-minute-before-start", reviews=APPROVED, now=FRI - MINUTE,
         status="approved", approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("freeze-exactly-at-start", reviews=APPROVED, now=FRI, status="frozen",
         approvers=("alice", "bob"), frozen_until=MON, progress="2/2 approvals", reason=WEEKEND),
    case("freeze-one-minute-before-end", reviews=APPROVED, now=MON - MINUTE, status="frozen",
         approvers=("alice", "bob"), frozen_until=MON, reason=WEEKEND),
    case("freeze-exactly-at-end", reviews=APPROVED, now=MON, status="approved",
         approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("freeze-before-changes-and-pending", reviews=(rv("carol", "changes_requested"),),
         now=FRI + timedelta(hours=30), status="frozen", missing=MISSING_BOTH,
         blocked_by=("carol",), frozen_until=MON, reason=WEEKEND),
    case("freeze-dst-spring-minute-before-end", **IN_TIME_SPRING, now=MON_SPRING - MINUTE,
         status="frozen", approvers=("alice", "bob"), frozen_until=MON_SPRING,
         reason="production is frozen until 2026-03-30 08:00 Europe/Berlin (weekend)"),
    case("freeze-dst-spring-at-end", **IN_TIME_SPRING, now=MON_SPRING, status="approved",
         approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("freeze-dst-autumn-at-start", **IN_TIME_AUTUMN, now=FRI_AUTUMN, status="frozen",
         approvers=("alice", "bob"), frozen_until=MON_AUTUMN,
         reason="production is frozen until 2026-10-26 08:00 Europe/Berlin (weekend)"),
    case("freeze-dst-autumn-minute-before-end", **IN_TIME_AUTUMN, now=MON_AUTUMN - MINUTE,
         status="frozen", approvers=("alice", "bob"), frozen_until=MON_AUTUMN,
         reason="production is frozen until 2026-10-26 08:00 Europe/Berlin (weekend)"),
    case("freeze-dst-autumn-at-end", **IN_TIME_AUTUMN, now=MON_AUTUMN, status="approved",
         approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("freeze-on-the-rule", policy=HOLIDAYS, reviews=APPROVED,
         now=datetime(2026, 12, 25, 12, 0, tzinfo=UTC), status="frozen",
         approvers=("alice", "bob"), frozen_until=datetime(2026, 12, 26, 0, 0, tzinfo=UTC),
         reason="production is frozen until 2026-12-26 00:00 UTC (holidays)"),
    case("freeze-without-reason-on-no-approval-rule", policy=NIGHTLY_STAGING,
         route=("dev", "staging"), now=datetime(2026, 11, 25, 20, 0, tzinfo=UTC),
         status="frozen", frozen_until=datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
         progress="no approvals required", reason="staging is frozen until 2026-11-26 08:00 UTC"),
    # -- approval timeout ---------------------------------------------------------------
    case("timeout-one-second-before", reviews=(rv("alice"),), opened=NOW - timedelta(days=7),
         now=NOW - SECOND, approvers=("alice",), missing=MISSING_SECURITY,
         reason="missing 1 approval from security-team"),
    case("timeout-exactly-at-deadline", reviews=(rv("alice"),), opened=NOW - timedelta(days=7),
         approvers=("alice",), missing=MISSING_SECURITY, status="expired",
         progress="1/2 approvals", reason="expired: no approval within 7 days"),
    case("timeout-before-freeze", now=FRI + timedelta(hours=1),
         opened=FRI - timedelta(days=8), status="expired", missing=MISSING_BOTH,
         reason="expired: no approval within 7 days"),
    case("timeout-approvals-after-deadline-do-not-count", reviews=APPROVED,
         opened=NOW - timedelta(days=30), status="expired", missing=MISSING_BOTH,
         reason="expired: no approval within 7 days"),
    case("timeout-approved-in-time-survives-the-deadline", reviews=APPROVED,
         opened=REVIEWED - timedelta(days=6, hours=23), status="approved",
         approvers=("alice", "bob"), reason="approved by alice and bob"),
    case("timeout-unset-never-expires", policy=NO_TIMEOUT, opened=NOW - timedelta(days=365),
         missing=MISSING_BOTH,
         reason="missing 1 approval from ops-team and 1 approval from security-team"),
    case("timeout-ignored-without-approval", policy=NIGHTLY_STAGING, route=("dev", "staging"),
         opened=NOW - timedelta(days=3), status="approved",
         reason="no approval required from dev to staging"),
    # -- routes: skipped stages, unknown environments, rules per app ---------------------
    case("no-approval-rule", route=("dev", "staging"), reviews=(rv("carol", "changes_requested"),),
         status="approved", progress="no approvals required",
         reason="no approval required from dev to staging"),
    case("skipped-stage", route=("dev", "production"), reviews=APPROVED, status="blocked",
         progress="no approvals required",
         reason="no promotion rule from dev to production: promote to staging first"),
    case("skipped-stage-during-freeze", route=("dev", "production"), now=FRI,
         status="blocked",
         reason="no promotion rule from dev to production: promote to staging first"),
    case("backwards", route=("staging", "dev"), status="blocked",
         reason="no promotion rule from staging to dev: "
         "the next environment after staging is production"),
    case("past-the-last-environment", route=("production", "staging"), status="blocked",
         reason="no promotion rule from production to staging: "
         "production is the last environment"),
    case("unknown-environment", route=("staging", "qa"), status="blocked",
         reason="unknown environment 'qa': environments are dev, staging, production"),
    case("app-rule-without-approval", policy=PER_APP, app="api", status="approved",
         reason="no approval required from staging to production"),
    case("app-rule-still-frozen", policy=PER_APP, app="api", now=FRI, status="frozen",
         frozen_until=MON, reason=WEEKEND),
    case("app-without-rule-for-next-stage", policy=PER_APP, app="worker", status="blocked",
         reason="no promotion rule from staging to production"),
]  # fmt: skip


def request_for(c: Case) -> PromotionRequest:
    return PromotionRequest(
        app=c.app,
        version="1.4.2",
        from_env=c.route[0],
        to_env=c.route[1],
        author="ada",
        requested_by="rick",
        head=HEAD,
        opened_at=c.opened if c.opened is not None else c.now - timedelta(days=1),
    )


@pytest.mark.parametrize("c", TABLE)
def test_evaluate(c: Case) -> None:
    decision = evaluate(c.policy, request_for(c), c.reviews, MEMBERS, c.now)
    got = (decision.status, decision.approvers, decision.missing, decision.blocked_by)
    assert got == (c.status, c.approvers, c.missing, c.blocked_by)
    assert decision.frozen_until == c.frozen_until
    if c.frozen_until is not None:
        assert decision.frozen_until is not None and decision.frozen_until.tzinfo is not None
    assert decision.reason == c.reason
    if c.progress is not None:
        assert decision.progress == c.progress


def test_table_is_large_and_ids_unique() -> None:
    ids = [p.id for p in TABLE]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


def test_review_order_never_matters() -> None:
    """Every arrival order of the same reviews gives the same decision."""
    reviews = (rv("abe", at=1), rv("alice", at=2), rv("dave", at=3), rv("carol", at=4))
    request = request_for(Case())
    for p in (TWO_OPS, COMBINED, ANY_TWO):
        decisions = {
            evaluate(p, request, order, MEMBERS, NOW) for order in itertools.permutations(reviews)
        }
        assert len(decisions) == 1, decisions
        assert next(iter(decisions)).status == "approved"


def test_decision_progress_counts_outstanding() -> None:
    decision = Decision(status="pending", missing=(("ops-team", 1),), reason="x", required=2)
    assert decision.progress == "1/2 approvals"
    assert decision.outstanding == 1


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        evaluate(DEFAULT, request_for(Case()), (), MEMBERS, datetime(2026, 11, 25, 12, 0))
    with pytest.raises(ValueError, match="submitted_at"):
        Review("alice", "approved", HEAD, datetime(2026, 11, 25, 12, 0))
    with pytest.raises(ValueError, match="opened_at"):
        PromotionRequest("web", "1", "staging", "production", "a", "b", HEAD, datetime(2026, 1, 1))


def test_unknown_review_state_is_refused() -> None:
    with pytest.raises(ValueError, match="review state 'pending'"):
        Review("alice", "pending", HEAD, NOW)  # type: ignore[arg-type]


def test_the_callers_time_zone_does_not_matter() -> None:
    request = request_for(Case(now=FRI))
    in_utc = evaluate(DEFAULT, request, APPROVED, MEMBERS, FRI.astimezone(UTC))
    assert evaluate(DEFAULT, request, APPROVED, MEMBERS, FRI) == in_utc
    assert in_utc.status == "frozen"
