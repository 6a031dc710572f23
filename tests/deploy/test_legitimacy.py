"""Which versions a rollback may restore (pure): arrivals by trusted commits only."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.deploy.gate import deployment_gate
from bot.deploy.legitimacy import Entry, arrivals, choose_target
from bot.deploy.records import Observation, Placement, observe
from bot.policy.model import PromotionRule


def _promote(sha: str, art: str, hop: str, trusted: bool = True, **more: str) -> Entry:
    trailers = {"Ritmo-Promotion": [hop], "Ritmo-Artifact": [art]}
    trailers.update({k: [v] for k, v in more.items()})
    return Entry(sha, trusted, trailers)


def _rollback(sha: str, env: str, restored: str, failed: str, trusted: bool = True) -> Entry:
    return Entry(sha, trusted, {"Ritmo-Rollback": [env], "Ritmo-Artifact": [restored],
                                "Ritmo-Rolled-Back": [failed]})  # fmt: skip


def test_only_trusted_policy_held_promotions_arrive() -> None:
    found = arrivals(
        [
            _promote("c1", "art-a", "registered -> dev"),
            _promote("c2", "art-a", "dev -> production"),
            _promote("c3", "art-b", "dev -> production", trusted=False),  # forged trailers
            _promote("c4", "art-c", "dev -> production", **{"Ritmo-Policy-Held": "no"}),
            _promote("c5", "art-d", "dev -> production", **{"Ritmo-Policy-Held": "yes"}),
        ]
    )
    assert found.arrived == {"dev": ["art-a"], "production": ["art-a", "art-d"]}
    assert found.illegitimate == []


def test_a_rollback_is_a_way_in_only_for_what_arrived_and_is_not_held() -> None:
    found = arrivals(
        [
            _promote("c1", "art-a", "dev -> production"),
            _promote("c2", "art-b", "dev -> production"),
            _rollback("c3", "production", "art-a", "art-b"),  # legitimate: a came in before
            _rollback("c4", "production", "art-x", "art-a"),  # x never arrived
            _rollback("c5", "production", "art-b", "art-a"),  # b is held by c3
            _rollback("c6", "production", "art-z", "art-a", trusted=False),  # not Ritmo's
        ]
    )
    assert [(i.sha, i.restored) for i in found.illegitimate] == [
        ("c4", "art-x"),
        ("c5", "art-b"),
    ]
    assert found.held_by("production", "art-b") == "c3"
    assert found.held_by("production", "art-a") == "c5"
    assert not found.legitimate("production", "art-x")


def test_a_promotion_someone_asked_for_releases_the_hold_an_automatic_one_does_not() -> None:
    history = [
        _promote("c1", "art-a", "dev -> staging"),
        _promote("c2", "art-b", "dev -> staging"),
        _rollback("c3", "staging", "art-a", "art-b"),
        _promote("c4", "art-b", "dev -> staging", **{"Ritmo-Automatic": "policy"}),
    ]
    assert arrivals(history).held_by("staging", "art-b") == "c3"
    history.append(_promote("c5", "art-b", "dev -> staging"))
    assert arrivals(history).held_by("staging", "art-b") is None


def test_the_target_is_the_newest_that_ran_well_then_the_newest_arrival() -> None:
    found = arrivals(
        [
            _promote("c1", "art-a", "dev -> production"),
            _promote("c2", "art-b", "dev -> production"),
            _promote("c3", "art-c", "dev -> production"),
        ]
    )
    # a ran well last (b never reported): a wins over the newer arrival b.
    assert choose_target(found, "production", "art-c", ["art-a"], frozenset()) == ("art-a", [])
    assert choose_target(found, "production", "art-c", [], frozenset()) == ("art-b", [])
    # b failed there: a, then nothing.
    assert choose_target(found, "production", "art-c", [], frozenset({"art-b"})) == ("art-a", [])
    chosen, why = choose_target(
        found, "production", "art-c", ["art-hand"], frozenset({"art-a", "art-b"})
    )
    assert chosen is None
    assert why == [
        "art-hand never arrived in production by a promotion or an approved request Ritmo "
        "signed (a hand pin)",
        "art-b failed in production",
        "art-a failed in production",
    ]
    # Another app's arrivals are never a target.
    assert choose_target(
        found, "production", "art-c", [], frozenset(), mine=lambda a: a == "art-a"
    ) == ("art-a", [])


def _seen(status: str, revision: str, superseded: bool = False) -> Observation:
    return Observation(status, "api", f"api:{status}", revision, "2026-12-01T00:00:00Z",
                       superseded=superseded)  # fmt: skip


def test_a_superseded_report_is_history_only() -> None:
    place = Placement("web", "dev", "art-a", "1.0.0", "p1", "r1", "apps/web/x.yaml")
    record = observe(None, place, _seen("degraded", "r1"))
    assert record is not None and record.superseded is False
    later = observe(record, place, _seen("succeeded", "r1", superseded=True))
    assert later is not None
    assert later.status == "degraded" and later.history[-1]["superseded"] is True
    fresh = observe(None, place, _seen("succeeded", "r0", superseded=True))
    assert fresh is not None and fresh.superseded is True and fresh.succeeded_at is None
    rule = PromotionRule.model_validate(
        {"from": "dev", "to": "staging", "requires_deployment": True}
    )
    now = datetime(2026, 12, 2, tzinfo=UTC)
    why = deployment_gate(rule, "web 1.0.0", fresh, now)
    assert why is not None and "history only" in why
