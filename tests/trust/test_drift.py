"""The drift rules and the drift commit's trailers (pure), and the audit events they give."""

from __future__ import annotations

from bot.audit.history import KINDS, events_of
from bot.manifests.trailers import Commit, parse_trailers
from bot.notify.render import EventContext, variables
from bot.policy.integration_fields import EVENTS
from bot.policy.model import Policy
from bot.trust.drift import (
    Drift,
    NewCommit,
    PinMove,
    alert_line,
    classify,
    drift_message,
    facts_of,
    forge_text,
    overlay_of,
    recorded_drift,
)

SHA = "a" * 40
AUTHOR = "Mallory <mallory@example.com>"
PIN = PinMove("web", "production", "apps/web/overlays/production/kustomization.yaml", "1.0", "9.9")


def test_ritmos_commits_and_merged_requests_are_not_drift() -> None:
    assert classify(NewCommit(SHA, AUTHOR, (PIN,), by_ritmo=True)) == []
    assert classify(NewCommit(SHA, AUTHOR, (PIN,), merges_request=True)) == []
    assert classify(NewCommit(SHA, AUTHOR)) == []  # touched neither


def test_a_policy_change_the_policy_in_force_does_not_obey_is_drift_even_from_ritmo() -> None:
    # `policy_change` is set only for a change the policy in force does not obey: here
    # Ritmo's signed merge of a branch that carried a policy edit, with no Ritmo-Policy.
    policy = (None, "b" * 40)
    (drift,) = classify(NewCommit(SHA, AUTHOR, (PIN,), policy, by_ritmo=True))
    assert drift.kind == "policy"


def test_a_pin_by_anyone_else_is_drift_even_with_a_policy_key() -> None:
    (drift,) = classify(NewCommit(SHA, AUTHOR, (PIN,), by_policy_key=True))
    assert (drift.kind, drift.commit, drift.audit_kind) == ("pin", SHA, "pinned_outside_ritmo")
    assert drift.detail == (
        "pins web 9.9 in production (apps/web/overlays/production/kustomization.yaml, "
        "was 1.0) without a Ritmo promotion; by Mallory <mallory@example.com>"
    )


def test_a_policy_change_is_drift_unless_a_policy_key_signed_it() -> None:
    change = ("c" * 40, "d" * 40)
    (drift,) = classify(NewCommit(SHA, AUTHOR, policy_change=change))
    assert drift.kind == "policy" and drift.audit_kind == "policy_changed_outside_ritmo"
    assert ".ritmo/policy.yaml (cccccccccccc -> dddddddddddd)" in drift.detail
    assert classify(NewCommit(SHA, AUTHOR, policy_change=change, by_policy_key=True)) == []
    both = classify(NewCommit(SHA, AUTHOR, (PIN,), change))
    assert [d.kind for d in both] == ["pin", "policy"]


def test_the_detail_is_one_line_whatever_the_author_is_called() -> None:
    (drift,) = classify(NewCommit(SHA, "Eve\nRitmo-Drift: policy <e@x>", (PIN,)))
    assert "\n" not in drift.detail
    trailers = parse_trailers(drift_message(drift))
    assert trailers["Ritmo-Drift"] == ["pin"]  # the name cannot add a trailer


def test_the_message_round_trips_and_names_the_facts() -> None:
    (drift,) = classify(NewCommit(SHA, AUTHOR, (PIN,)))
    message = drift_message(drift)
    assert message.startswith(f"Drift: {SHA[:12]} pinned outside Ritmo\n\n")
    trailers = parse_trailers(message)
    assert recorded_drift(trailers) == drift
    facts = facts_of(drift)
    assert (facts.author, facts.app, facts.env, facts.version) == (
        AUTHOR, "web", "production", "9.9",
    )  # fmt: skip
    two = classify(NewCommit(SHA, AUTHOR, (PIN, PinMove("api", "dev", "p", None, "2"))))[0]
    assert facts_of(two).app is None and facts_of(two).author == AUTHOR
    assert alert_line(drift).startswith(f"ALERT pinned outside Ritmo (pin): commit {SHA} pins")
    assert forge_text(drift).startswith("this commit pins web 9.9 in production")


def test_other_trailers_are_not_a_drift() -> None:
    assert recorded_drift({"Ritmo-Drift": ["other"], "Ritmo-Drift-Commit": [SHA]}) is None
    assert recorded_drift({"Ritmo-Drift": ["pin"]}) is None
    assert recorded_drift({"Ritmo-Promotion": ["dev -> staging"]}) is None


def test_overlay_paths_under_the_policy() -> None:
    policy = Policy.model_validate(
        {
            "environments": [{"name": "dev"}, {"name": "production"}],
            "apps": {
                "api": {
                    "overlay": "deploy/{env}/api-values.yaml",
                    "kind": "helm",
                    "key": "image.tag",
                }
            },
        }  # fmt: skip
    )
    hit = overlay_of(policy, "apps/web/overlays/production/kustomization.yaml")
    assert hit is not None and hit[:2] == ("web", "production")
    helm = overlay_of(policy, "deploy/dev/api-values.yaml")
    assert helm is not None and helm[:2] == ("api", "dev") and helm[2].kind == "helm"
    assert overlay_of(policy, "apps/web/overlays/qa/kustomization.yaml") is None  # no such env
    assert overlay_of(policy, "apps/web/base/deployment.yaml") is None


def test_audit_events_of_a_drift_commit() -> None:
    (pin,) = classify(NewCommit(SHA, AUTHOR, (PIN,)))
    (policy,) = classify(NewCommit(SHA, AUTHOR, policy_change=(None, "d" * 40)))
    for drift, kind in ((pin, "pinned_outside_ritmo"), (policy, "policy_changed_outside_ritmo")):
        assert kind in KINDS
        commit = Commit("e" * 40, (SHA,), 1_700_000_000, parse_trailers(drift_message(drift)))
        (event,) = events_of(commit, lambda _id: None)
        assert (event.kind, event.commit, event.offending_commit) == (kind, "e" * 40, SHA)
        assert event.detail == drift.detail and event.actor == AUTHOR
    assert (
        events_of(
            Commit("e" * 40, (SHA,), 0, parse_trailers(drift_message(pin))), lambda _id: None
        )[0].environment
        == "production"
    )


def test_drift_is_an_event_targets_can_subscribe_to() -> None:
    assert "drift" in EVENTS
    drift = Drift("pin", SHA, "pins web 9.9 in production (p, was 1.0); by x")
    context = EventContext(SHA, "web", {}, "production", extra={"message": alert_line(drift)})
    assert variables("drift", context)["MESSAGE"] == alert_line(drift)
    promoted = EventContext("c1", "web", {"version": "1.2.3"}, "staging")
    assert variables("promoted", promoted)["MESSAGE"] == "web 1.2.3: promoted in staging"
