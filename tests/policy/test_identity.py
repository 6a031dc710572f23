"""Identities ignore case in the evaluation: the requester, the author (Ritmo's bot),
group members and distinct approvers, whatever case GitHub or a token writes them in."""

from __future__ import annotations

from datetime import timedelta

from bot.auth import identity_key, is_among
from bot.policy.evaluate import PromotionRequest, Review, evaluate
from tests.policy.test_evaluate import HEAD, MINUTE, NOW, REVIEWED, policy

MEMBERS = {
    "ops-team": frozenset({"Alice", "release-bot", "Ritmo[bot]"}),
    "security-team": frozenset({"BOB", "release-bot"}),
}


def _request(requested_by: str = "Release-Bot", author: str = "ritmo[bot]") -> PromotionRequest:
    return PromotionRequest(
        app="web", version="2.0.0", from_env="staging", to_env="production", author=author,
        requested_by=requested_by, head=HEAD, opened_at=NOW - timedelta(days=1),
    )  # fmt: skip


def _approved(*logins: str) -> list[Review]:
    return [
        Review(login, "approved", HEAD, REVIEWED + i * MINUTE) for i, login in enumerate(logins)
    ]


def test_the_requester_in_another_case_never_counts() -> None:
    decision = evaluate(policy(), _request(), _approved("release-bot", "RELEASE-BOT"), MEMBERS, NOW)
    assert decision.status == "pending" and decision.approvers == ()


def test_ritmos_bot_in_another_case_never_counts() -> None:
    reviews = [Review("RITMO[BOT]", "approved", HEAD, REVIEWED, is_bot=False)]
    decision = evaluate(policy(), _request(requested_by="ci"), reviews, MEMBERS, NOW)
    assert decision.approvers == ()


def test_members_and_reviewers_match_ignoring_case() -> None:
    decision = evaluate(policy(), _request(), _approved("alice", "bob"), MEMBERS, NOW)
    assert decision.status == "approved" and decision.approvers == ("alice", "bob")


def test_one_person_in_two_cases_is_one_approver() -> None:
    rule = {"approvals": [], "min_approvers": 2, "approver_groups": ["ops-team", "security-team"]}
    decision = evaluate(policy(rule), _request(), _approved("Alice", "ALICE"), MEMBERS, NOW)
    assert decision.status == "pending" and len(decision.approvers) == 1


def test_helpers() -> None:
    assert identity_key("Release-Bot") == identity_key("release-bot")
    assert is_among("RITMO", ["ritmo", "ritmo[bot]"])
    assert not is_among("ritmo-ci", ["ritmo"])
