"""The pure parts: events from trailers, and verify's rules over made-up histories."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.audit.history import Window, audit_events, events_of, parse_when, select
from bot.audit.verify import RecordFact, VerifyCommit, verify
from bot.manifests.trailers import Commit, parse_trailers
from bot.trust.drift import PinMove

ART = "art-00000000000000000001"
OLD = "art-00000000000000000002"
NAMES = {ART: ("web", "2.0.0"), OLD: ("web", "1.0.0")}


def _commit(sha: str, trailers: str, when: int = 1_700_000_000, parents: int = 1) -> Commit:
    message = f"Subject\n\nBody.\n\n{trailers}\n"
    return Commit(sha, tuple(f"p{i}" for i in range(parents)), when, parse_trailers(message))


class TestEvents:
    def test_registration(self) -> None:
        commit = _commit(
            "a" * 40,
            f"Ritmo-Artifact: {ART}\nRitmo-Build: b-7\nRitmo-Registered-By: ci\n"
            "Ritmo-Correlation-Id: build-7",
        )
        (event,) = events_of(commit, NAMES.get)
        assert (event.kind, event.app, event.version, event.actor) == (
            "registered", "web", "2.0.0", "ci",
        )  # fmt: skip
        assert event.correlation_id == "build-7" and event.environment is None
        assert event.at == "2023-11-14T22:13:20Z" and event.detail == "build b-7"

    def test_merged_request_names_each_approver(self) -> None:
        commit = _commit(
            "b" * 40,
            f"Ritmo-Promotion: staging -> production\nRitmo-Artifact: {ART}\n"
            "Ritmo-Request: req-1\nRitmo-Promoted-By: release-bot\n"
            "Ritmo-Approved-By: alice, bob\nRitmo-Approval-Ticket: CHG-42\n"
            "Ritmo-Correlation-Id: c-1",
            parents=2,
        )
        events = events_of(commit, NAMES.get)
        assert [(e.kind, e.actor) for e in events] == [
            ("promoted", "release-bot"), ("approved", "alice"), ("approved", "bob"),
        ]  # fmt: skip
        assert {(e.environment, e.ticket, e.request_id) for e in events} == {
            ("production", "CHG-42", "req-1")
        }
        # Newest first: within a commit the approvals come before the merge they made.
        assert [e.actor for e in audit_events([commit], NAMES.get)] == [
            "bob", "alice", "release-bot",
        ]  # fmt: skip

    def test_forge_merge_without_policy(self) -> None:
        commit = _commit(
            "c" * 40,
            f"Ritmo-Promotion: staging -> production\nRitmo-Artifact: {ART}\n"
            "Ritmo-Request: req-2\nRitmo-Promoted-By: release-bot\nRitmo-Merged-By: mallory\n"
            f"Ritmo-Merge-Commit: {'d' * 40}\nRitmo-Policy-Held: no\nRitmo-Correlation-Id: req-2",
        )
        events = events_of(commit, NAMES.get)
        assert [(e.kind, e.actor) for e in events] == [
            ("promoted", "release-bot"), ("merged_outside_policy", "mallory"),
        ]  # fmt: skip
        assert events[0].detail == "merged by mallory on the forge"

    def test_rollback_and_closed_request(self) -> None:
        rolled = _commit(
            "e" * 40,
            f"Ritmo-Rollback: staging\nRitmo-Artifact: {OLD}\nRitmo-Rolled-Back: {ART}\n"
            "Ritmo-Returned-To: dev\nRitmo-Deployment: dep-1\n"
            "Ritmo-Rolled-Back-By: ritmo (automatic)\nRitmo-Correlation-Id: c-2",
        )
        (event,) = events_of(rolled, NAMES.get)
        # The row is about the version rolled back; the restored one has its own fields.
        assert (event.kind, event.environment, event.version) == ("rolled_back", "staging", "2.0.0")
        assert (event.artifact_id, event.rolled_back_artifact_id) == (ART, ART)
        assert (event.restored_version, event.restored_artifact_id) == ("1.0.0", OLD)
        assert event.deployment_id == "dep-1"
        assert event.automatic and event.actor == "ritmo (automatic)"
        assert event.detail == "restores 1.0.0; 2.0.0 stands in dev again"
        closed = _commit(
            "f" * 40,
            "Ritmo-Request: req-3\nRitmo-Request-Closed: expired\nRitmo-Request-Head: abc\n"
            f"Ritmo-Promotion-Request: staging -> production\nRitmo-Artifact: {ART}\n"
            "Ritmo-Requested-By: release-bot",
        )
        (event,) = events_of(closed, NAMES.get)
        assert (event.kind, event.environment, event.request_id) == (
            "request_closed", "production", "req-3",
        )  # fmt: skip
        assert event.detail == "expired (requested by release-bot)"

    def test_commits_without_events(self) -> None:
        review = _commit("1" * 40, "Ritmo-Request: req-1\nRitmo-Review: approved")
        assert events_of(review, NAMES.get) == []
        assert events_of(_commit("2" * 40, "Signed-off-by: someone"), NAMES.get) == []

    def test_window(self) -> None:
        early = _commit("a" * 40, f"Ritmo-Artifact: {ART}\nRitmo-Registered-By: ci", 1_700_000_000)
        late = _commit(
            "b" * 40,
            f"Ritmo-Promotion: registered -> dev\nRitmo-Artifact: {ART}\n"
            "Ritmo-Promoted-By: ci\nRitmo-Automatic: policy",
            1_800_000_000,
        )
        events = audit_events([late, early], NAMES.get)
        assert events[0].automatic
        assert select(events, Window(env="dev")) == [events[0]]
        assert select(events, Window(app="api")) == []
        assert select(events, Window(since=parse_when("2024-01-01"))) == [events[0]]
        assert select(events, Window(until=parse_when("2023-11-14", end=True))) == [events[1]]
        assert select(events, Window(until=parse_when("2023-11-13", end=True))) == []
        assert parse_when("main~2") is None
        assert parse_when("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)


def _record(version: str, ident: str) -> RecordFact:
    return RecordFact(ident, "web", version, frozenset({version}))


ENVS = ("dev", "staging", "production")


def _vc(sha: str, trailers: str = "", **kw: object) -> VerifyCommit:
    fields: dict[str, object] = {"parents": ("p",), "environments": ENVS, **kw}
    return VerifyCommit(sha, trailers=parse_trailers(f"S\n\n{trailers}"), **fields)  # type: ignore[arg-type]


def _pin(env: str, after: str | None, before: str | None = "0.1.0") -> PinMove:
    return PinMove("web", env, f"apps/web/overlays/{env}/kustomization.yaml", before, after)


class TestVerifyRules:
    def test_clean_history(self) -> None:
        history = [
            _vc("seed", pins=(_pin("dev", "0.1.0", None),), parents=()),
            _vc("reg", "Ritmo-Artifact: a1", signature="G", records=(_record("1.0.0", "a1"),)),
            _vc("dev", "Ritmo-Promotion: registered -> dev", signature="G",
                pins=(_pin("dev", "1.0.0"),)),
            _vc("stg", "Ritmo-Promotion: dev -> staging", signature="U",
                pins=(_pin("staging", "1.0.0"),)),
            _vc("prd", "Ritmo-Promotion: staging -> production", signature="G",
                parents=("stg", "req"), pins=(_pin("production", "1.0.0"),)),
            _vc("req", "Ritmo-Promotion-Request: staging -> production", signature="G",
                first_parent=False),
            _vc("edit"),  # a person's commit that pins nothing
        ]  # fmt: skip
        assert verify(history) == []

    def test_each_rule(self) -> None:
        history = [
            _vc("reg", "Ritmo-Artifact: a1", signature="G", records=(_record("1.0.0", "a1"),)),
            _vc("reg2", "Ritmo-Artifact: a2", signature="G", records=(_record("2.0.0", "a2"),)),
            _vc("dev", "Ritmo-Promotion: registered -> dev", signature="G",
                pins=(_pin("dev", "2.0.0"),)),
            _vc("forged", "Ritmo-Promotion: dev -> staging", signature="N"),
            _vc("bogus", pins=(_pin("dev", "9.9.9", "2.0.0"),)),
            _vc("skip", pins=(_pin("production", "2.0.0"),), signature="G"),
            _vc("merge", parents=("skip", "x"), signature="E", signer="ABC",
                pins=(_pin("dev", "1.0.0", "9.9.9"),)),
            _vc("held", "Ritmo-Policy-Held: no\nRitmo-Merged-By: mallory\n"
                "Ritmo-Request: req-9\nRitmo-Merge-Commit: recorded", signature="G"),
            _vc("recorded", parents=("held", "y"), pins=(_pin("production", "1.0.0", "2.0.0"),)),
        ]  # fmt: skip
        found = [(p.sha, p.kind) for p in verify(history)]
        assert found == [
            ("forged", "untrusted-signature"),
            ("bogus", "unsigned-pin"),
            ("bogus", "unknown-version"),
            ("skip", "skipped-environment"),
            ("merge", "unrecorded-merge"),
            ("held", "policy-not-held"),
            ("recorded", "skipped-environment"),
        ]

    def test_out_of_range_history_counts_but_is_not_judged(self) -> None:
        history = [
            _vc("reg", "Ritmo-Artifact: a1", in_range=False, records=(_record("1.0.0", "a1"),)),
            _vc("stg", pins=(_pin("staging", "1.0.0"),), in_range=False),
            _vc("prd", "Ritmo-Promotion: staging -> production", signature="G",
                pins=(_pin("production", "1.0.0"),)),
        ]  # fmt: skip
        assert verify(history) == []

    def test_apps_without_records_are_not_checked(self) -> None:
        assert verify([_vc("seed", pins=(_pin("production", "0.1.0"),))]) == []


def _policy(prod_approval: bool) -> object:
    from bot.policy.load import load_policy

    approval = "true\n    approvals: [{group: ops, count: 1}]" if prod_approval else "false"
    return load_policy(
        "environments: [{name: dev}, {name: staging}, {name: production}]\n"
        "promotion_rules:\n  - {from: dev, to: staging}\n"
        f"  - from: staging\n    to: production\n    requires_approval: {approval}\n",
        "policy.yaml",
    )


class TestPolicyTrustRules:
    """Issue 13: untrusted policy changes, direct pins the trusted policy did not allow."""

    def test_untrusted_policy_change_is_named(self) -> None:
        history = [
            _vc("adopt", "Ritmo-Policy-Adopted: yes\nRitmo-Policy: b0", signature="G",
                adopts_policy=True),
            _vc("eve", untrusted_policy="is not signed"),
        ]  # fmt: skip
        assert [(p.sha, p.kind) for p in verify(history)] == [("eve", "untrusted-policy")]
        assert "is not signed" in str(verify(history)[0])

    def test_direct_pin_the_trusted_policy_required_approval_for(self) -> None:
        strict, open_ = _policy(True), _policy(False)
        base = [
            _vc("reg", "Ritmo-Artifact: a1", signature="G", records=(_record("1.0.0", "a1"),)),
            _vc("dev", "Ritmo-Promotion: registered -> dev\nRitmo-Artifact: a1", signature="G",
                pins=(_pin("dev", "1.0.0"),), policy=strict),
            _vc("stg", "Ritmo-Promotion: dev -> staging\nRitmo-Artifact: a1", signature="G",
                pins=(_pin("staging", "1.0.0"),), policy=strict),
        ]  # fmt: skip
        direct = "Ritmo-Promotion: staging -> production\nRitmo-Artifact: a1"
        pinned = {"signature": "G", "pins": (_pin("production", "1.0.0"),)}
        found = verify([*base, _vc("prd", direct, policy=strict, **pinned)])
        assert [(p.sha, p.kind) for p in found] == [("prd", "policy-not-held")]
        assert "required approval" in found[0].message
        # Allowed by the trusted policy then; through a request; or before any adoption.
        assert verify([*base, _vc("prd", direct, policy=open_, **pinned)]) == []
        merged = direct + "\nRitmo-Request: req-1"
        assert verify([*base, _vc("prd", merged, policy=strict, **pinned)]) == []
        assert verify([*base, _vc("prd", direct, policy=None, **pinned)]) == []

    def test_commits_before_adoption_are_not_judged(self) -> None:
        history = [
            _vc("forged", "Ritmo-Promotion: dev -> staging", before_adoption=True),
            _vc("adopt", "Ritmo-Policy-Adopted: yes\nRitmo-Policy: b0", signature="G"),
            _vc("forged2", "Ritmo-Promotion: dev -> staging"),
        ]
        assert [(p.sha, p.kind) for p in verify(history)] == [("forged2", "untrusted-signature")]

    def test_a_policy_key_signature_is_not_ritmo_s(self) -> None:
        lead = _vc("lead", "Ritmo-Promotion: dev -> staging", signature="G", policy_key=True)
        assert [(p.sha, p.kind) for p in verify([lead])] == [("lead", "untrusted-signature")]
