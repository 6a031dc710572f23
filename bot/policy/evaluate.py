"""Promotion policy evaluation: a request, its reviews and group memberships -> a decision.

Pure: no I/O, no clock. The forge adapters turn what GitHub (or the local forge) really
recorded into `Review`s and resolve approver groups into `memberships`; the caller
passes `now`. See DESIGN.md, principle 3: approvals come from the forge, on the current
head commit, by distinct people in the required groups, never the author.

The order of the questions asked (the first that applies decides the status):

1. no rule for from -> to (a skipped stage, an unknown environment) -> ``blocked``;
2. the approval timeout has passed (``now >= opened_at + approval_timeout``) -> ``expired``;
3. the rule's or the target environment's freeze covers ``now`` -> ``frozen``;
4. an eligible reviewer's standing review requests changes -> ``blocked``;
5. approvals are missing -> ``pending``;
6. otherwise -> ``approved``.

A rule without ``requires_approval`` skips 2, 4 and 5. Whenever a rule applies, the
decision also carries the approval tally (approvers, missing, blocked_by), whatever the
status, so a frozen or expired request still shows its progress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from bot.policy.freeze import frozen_until as _frozen_until
from bot.policy.model import Policy
from bot.policy.rules import PromotionRule

ReviewState = Literal["approved", "changes_requested", "commented", "dismissed"]
Status = Literal["approved", "pending", "blocked", "frozen", "expired"]

_REVIEW_STATES: frozenset[str] = frozenset(get_args(ReviewState))


def _require_aware(what: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")


def _login_key(login: str) -> str:
    """GitHub logins are case-insensitive: compare them folded."""
    return login.casefold()


@dataclass(frozen=True)
class Review:
    """One review as the forge recorded it (GitHub: a pull request review)."""

    reviewer: str
    state: ReviewState
    commit: str
    submitted_at: datetime
    is_bot: bool = False

    def __post_init__(self) -> None:
        if self.state not in _REVIEW_STATES:
            raise ValueError(
                f"review state {self.state!r} is not one of {', '.join(sorted(_REVIEW_STATES))}"
            )
        _require_aware("Review.submitted_at", self.submitted_at)

    @property
    def by_bot(self) -> bool:
        return self.is_bot or self.reviewer.casefold().endswith("[bot]")


@dataclass(frozen=True)
class PromotionRequest:
    """A promotion of `app` at `version` from one environment to the next (a PR)."""

    app: str
    version: str
    from_env: str
    to_env: str
    author: str
    requested_by: str
    head: str
    opened_at: datetime

    def __post_init__(self) -> None:
        _require_aware("PromotionRequest.opened_at", self.opened_at)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What the policy says about a promotion request right now.

    `approvers`: who counted (sorted). `missing`: (group, how many more) for each
    per-group need, then ("any of a, b", n) for `min_approvers` — n counts the
    approvals needed *on top of* the per-group ones (a newcomer filling a per-group
    gap in one of the approver groups also counts towards the minimum), so the
    numbers add up to the approvals still needed. `required`: the rule's
    `required_approvers` (0 when no rule applies or no approval is required).
    """

    status: Status
    approvers: tuple[str, ...] = ()
    missing: tuple[tuple[str, int], ...] = ()
    blocked_by: tuple[str, ...] = ()
    frozen_until: datetime | None = None
    reason: str
    required: int = 0

    @property
    def outstanding(self) -> int:
        """How many more approvals are needed."""
        return sum(n for _, n in self.missing)

    @property
    def progress(self) -> str:
        """For the commit status, e.g. "1/2 approvals"."""
        if self.required == 0:
            return "no approvals required"
        done = max(0, self.required - self.outstanding)
        return f"{done}/{self.required} approvals"


# -- the approval tally ---------------------------------------------------------------


@dataclass(frozen=True)
class _Tally:
    approvers: tuple[str, ...]
    missing: tuple[tuple[str, int], ...]
    blocked_by: tuple[str, ...]


def _standing_reviews(reviews: Iterable[Review]) -> dict[str, Review]:
    """Each reviewer's standing review, GitHub-style.

    Reviews are replayed by `submitted_at` (ties keep their given order): an approval or
    a changes request replaces the reviewer's earlier one; a comment replaces nothing;
    a dismissed review withdraws what the reviewer had standing.
    """
    standing: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: r.submitted_at):
        key = _login_key(review.reviewer)
        if review.state == "commented":
            continue
        if review.state == "dismissed":
            standing.pop(key, None)
            continue
        standing[key] = review
    return standing


def _assign(
    slots: list[str], candidates: list[str], groups_of: Mapping[str, frozenset[str]]
) -> dict[int, str]:
    """Maximum bipartite matching of approvers to per-group slots (augmenting paths).

    Each slot is filled by a different person who is a member of the slot's group, so
    one person in two groups fills one slot only, and the result does not depend on the
    order in which reviews arrived. Returns slot index -> approver.
    """
    slot_of: dict[str, int] = {}

    def place(slot: int, seen: set[str]) -> bool:
        for person in candidates:
            if person in seen or slots[slot] not in groups_of[person]:
                continue
            seen.add(person)
            if person not in slot_of or place(slot_of[person], seen):
                slot_of[person] = slot
                return True
        return False

    for slot in range(len(slots)):
        place(slot, set())
    return {slot: person for person, slot in slot_of.items()}


def _tally(
    rule: PromotionRule,
    request: PromotionRequest,
    reviews: Iterable[Review],
    memberships: Mapping[str, frozenset[str]],
) -> _Tally:
    members = {
        group: frozenset(_login_key(m) for m in memberships.get(group, frozenset()))
        for group in rule.groups
    }
    excluded = {_login_key(request.author), _login_key(request.requested_by)}

    approving: dict[str, frozenset[str]] = {}  # login -> the rule groups they belong to
    blocking: list[str] = []
    for key, review in _standing_reviews(reviews).items():
        if key in excluded or review.by_bot:
            continue
        groups = frozenset(g for g, people in members.items() if key in people)
        if not groups:
            continue  # not an eligible approver: neither approves nor blocks
        if review.state == "changes_requested":
            blocking.append(review.reviewer)  # on any commit: still unresolved
        elif review.state == "approved" and review.commit == request.head:
            approving[review.reviewer] = groups

    candidates = sorted(approving, key=lambda login: (login.casefold(), login))
    slots = [a.group for a in rule.approvals for _ in range(a.count)]
    filled = _assign(slots, candidates, approving)
    counted = set(filled.values())

    shortfall: dict[str, int] = {}
    for index, group in enumerate(slots):
        if index not in filled:
            shortfall[group] = shortfall.get(group, 0) + 1
    missing = [(group, shortfall.get(group, 0)) for group in dict.fromkeys(slots)]
    missing = [(group, n) for group, n in missing if n]

    if rule.min_approvers:
        pool = set(rule.approver_groups)
        from_pool = {p for p in candidates if approving[p] & pool}
        counted |= from_pool
        will_count = sum(n for group, n in missing if group in pool)
        more = rule.min_approvers - len(from_pool) - will_count
        if more > 0:
            missing.append((f"any of {', '.join(rule.approver_groups)}", more))

    return _Tally(
        approvers=tuple(p for p in candidates if p in counted),
        missing=tuple(missing),
        blocked_by=tuple(sorted(blocking, key=lambda login: (login.casefold(), login))),
    )


# -- sentences ------------------------------------------------------------------------


def _join(items: Iterable[str]) -> str:
    words = list(items)
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _human(duration: timedelta) -> str:
    """timedelta(days=7) -> "7 days"; timedelta(hours=36) -> "1 day 12 hours"."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(_plural(amount, unit))
    return " ".join(parts) or "0 seconds"


def _moment(when: datetime) -> str:
    """2026-11-30 08:00 Europe/Berlin"""
    zone = getattr(when.tzinfo, "key", None) or when.tzname() or ""
    return f"{when:%Y-%m-%d %H:%M} {zone}".rstrip()


def _no_rule(policy: Policy, request: PromotionRequest) -> str:
    names = policy.environment_names
    for env in (request.from_env, request.to_env):
        if env not in names:
            return f"unknown environment {env!r}: environments are {', '.join(names)}"
    head = f"no promotion rule from {request.from_env} to {request.to_env}"
    following = policy.next_environment(request.from_env)
    if following is None:
        return f"{head}: {request.from_env} is the last environment"
    if following == request.to_env:
        return head
    if names.index(request.to_env) > names.index(following):
        return f"{head}: promote to {following} first"
    return f"{head}: the next environment after {request.from_env} is {following}"


# -- the evaluation -------------------------------------------------------------------


def evaluate(
    policy: Policy,
    request: PromotionRequest,
    reviews: Iterable[Review],
    memberships: Mapping[str, frozenset[str]],
    now: datetime,
) -> Decision:
    """Decide a promotion request under `policy` at `now` (aware). Pure."""
    _require_aware("now", now)
    now = now.astimezone(UTC)  # the same answer whatever zone the caller's clock is in
    rule = policy.rule(request.app, request.from_env, request.to_env)
    if rule is None:
        return Decision(status="blocked", reason=_no_rule(policy, request))

    timeout = rule.approval_timeout if rule.requires_approval else None
    deadline = request.opened_at + timeout if timeout is not None else None
    # Reviews after the deadline do not count; approvals complete in time survive a freeze.
    in_time = [r for r in reviews if deadline is None or r.submitted_at < deadline]
    tally = (
        _tally(rule, request, in_time, memberships)
        if rule.requires_approval
        else _Tally(approvers=(), missing=(), blocked_by=())
    )
    required = rule.required_approvers if rule.requires_approval else 0

    def decide(status: Status, reason: str, until: datetime | None = None) -> Decision:
        return Decision(
            status=status,
            approvers=tally.approvers,
            missing=tally.missing,
            blocked_by=tally.blocked_by,
            frozen_until=until,
            reason=reason,
            required=required,
        )

    incomplete = bool(tally.missing or tally.blocked_by)
    if timeout is not None and deadline is not None and now >= deadline and incomplete:
        return decide("expired", f"expired: no approval within {_human(timeout)}")

    target = policy.environment(request.to_env)
    freezes = rule.freeze + (target.freeze if target is not None else ())
    frozen = _frozen_until(freezes, now)
    if frozen is not None:
        until, why = frozen
        reason = f"{request.to_env} is frozen until {_moment(until)}"
        return decide("frozen", f"{reason} ({why})" if why else reason, until)

    if tally.blocked_by:
        return decide("blocked", f"changes requested by {_join(tally.blocked_by)}")
    if tally.missing:
        needs = (f"{_plural(n, 'approval')} from {group}" for group, n in tally.missing)
        return decide("pending", f"missing {_join(needs)}")
    if not rule.requires_approval:
        return decide(
            "approved", f"no approval required from {request.from_env} to {request.to_env}"
        )
    if not tally.approvers:
        return decide("approved", "approved: the rule requires no approvers")
    return decide("approved", f"approved by {_join(tally.approvers)}")
