"""Policy loading: every problem at its file:line:column, valid policies load, fallbacks."""

from __future__ import annotations

from datetime import timedelta
from textwrap import dedent

import pytest
from pydantic import ValidationError

from bot.policy.load import (
    DEFAULT_POLICY_PATH,
    PolicyError,
    PolicyProblem,
    default_policy,
    load_policy,
    load_policy_bytes,
    policy_from_branch,
)
from bot.policy.model import Policy

SOURCE = "policy.yaml"


def problems_of(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        load_policy(dedent(text), SOURCE)
    return caught.value.problems


# (id, policy text, expected "line:column", phrase of the message)
INVALID = [
    (
        "rule-skips-an-environment",
        """\
        environments:
          - name: dev
          - name: staging
          - name: production
        promotion_rules:
          - {from: dev, to: production}
        """,
        "6:21",
        "dev -> production skips an environment (staging)",
    ),
    (
        "unknown-group-kind",
        """\
        environments: [{name: dev}]
        groups:
          ops: {kind: ldap}
        """,
        "3:15",
        "Input should be 'local' or 'github-team', not 'ldap'",
    ),
    (
        "negative-count",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            approvals:
              - group: ops
                count: -1
        """,
        "7:16",
        "approvals[0].count: Input should be greater than or equal to 0",
    ),
    (
        "unknown-environment-in-rule",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - {from: dev, to: qa}
        """,
        "3:21",
        "unknown environment 'qa'; the environments are dev, staging",
    ),
    (
        "unknown-from-environment",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: test
            to: staging
        """,
        "3:11",
        "promotion_rules[0].from: unknown environment 'test'",
    ),
    (
        "duplicate-environment-names",
        """\
        environments:
          - name: dev
          - name: staging
          - name: dev
        """,
        "4:11",
        "environment 'dev' is already defined at environments[0]",
    ),
    (
        "requires-approval-without-approvals",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            requires_approval: true
        """,
        "5:24",
        "needs approvals (per group) or min_approvers",
    ),
    (
        "min-approvers-without-groups",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            min_approvers: 2
        """,
        "5:20",
        "min_approvers: needs approver_groups",
    ),
    (
        "auto-promote-and-requires-approval",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            auto_promote: true
            requires_approval: true
            approvals: [{group: ops}]
        """,
        "5:19",
        "cannot both auto_promote and require approval",
    ),
    (
        "unknown-top-level-key",
        """\
        environments: [{name: dev}]
        colour: blue
        """,
        "2:1",
        "unknown key 'colour'",
    ),
    (
        "unknown-key-in-rule",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            approval: [{group: ops}]
        """,
        "5:5",
        "promotion_rules[0]: unknown key 'approval'",
    ),
    (
        "bad-duration",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            requires_approval: true
            approvals: [{group: ops}]
            approval_timeout: soon
        """,
        "7:23",
        "'soon' is not a duration",
    ),
    (
        "bad-cron",
        """\
        environments:
          - name: dev
            freeze:
              - cron: "0 16 * *"
                duration: 1h
        """,
        "4:15",
        "needs five fields",
    ),
    (
        "bad-cron-weekday",
        """\
        environments:
          - name: dev
            freeze:
              - {cron: "0 16 * * FRY", duration: 1h}
        """,
        "4:16",
        'Invalid weekday name "FRY"',
    ),
    (
        "bad-timezone",
        """\
        environments:
          - name: dev
            freeze:
              - cron: "0 16 * * 5"
                duration: 64h
                timezone: Mars/Olympus
        """,
        "6:19",
        "'Mars/Olympus' is not a time zone",
    ),
    (
        "group-not-defined",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            approvals:
              - {group: ops}
              - {group: secuirty}
        groups:
          ops: {kind: local}
        """,
        "7:17",
        "group 'secuirty' is not defined under groups (defined: ops)",
    ),
    (
        "approver-group-not-defined",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - from: dev
            to: staging
            min_approvers: 1
            approver_groups: [ops, nobody]
        groups:
          ops: {kind: local}
        """,
        "6:28",
        "approver_groups[1]: group 'nobody' is not defined",
    ),
    (
        "github-team-without-team",
        """\
        environments: [{name: dev}]
        groups:
          sec:
            kind: github-team
        """,
        "4:5",
        "groups.sec.team: a github-team group needs team: <org>/<team-slug>",
    ),
    (
        "github-team-with-bad-team",
        """\
        environments: [{name: dev}]
        groups:
          sec: {kind: github-team, team: security}
        """,
        "3:34",
        "needs team: <org>/<team-slug>",
    ),
    (
        "overlay-path-with-dotdot",
        """\
        environments: [{name: dev}]
        apps:
          web:
            overlay: "apps/web/../../etc/{env}.yaml"
        """,
        "4:14",
        "apps.web.overlay: must be a relative path inside the repository",
    ),
    (
        "second-rule-from-same-environment",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - {from: dev, to: staging}
          - {from: dev, to: staging}
        """,
        "4:12",
        "a second rule from dev; promotion_rules[0] already goes from dev",
    ),
    (
        "rule-goes-backwards",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - {from: staging, to: dev}
        """,
        "3:25",
        "staging -> dev does not go to the next environment; rules go from each "
        "environment to the next (staging is the last one)",
    ),
    (
        "app-rule-skips-an-environment",
        """\
        environments: [{name: dev}, {name: staging}, {name: production}]
        apps:
          web:
            promotion_rules:
              - {from: dev, to: production}
        """,
        "5:25",
        "apps.web.promotion_rules[0].to: dev -> production skips an environment",
    ),
    (
        "environments-empty",
        """\
        environments: []
        """,
        "1:15",
        "environments: list at least one environment",
    ),
    (
        "environments-missing",
        """\
        promotion_rules: []
        """,
        "1:1",
        "missing required key 'environments'",
    ),
    (
        "environments-not-a-list",
        """\
        environments: dev
        promotion_rules:
          - {from: dev, to: staging}
        """,
        "1:15",
        "environments: must be a list",
    ),
    (
        "rule-missing-to",
        """\
        environments: [{name: dev}, {name: staging}]
        promotion_rules:
          - {from: dev}
        """,
        "3:5",
        "promotion_rules[0]: missing required key 'to'",
    ),
    (
        "bad-environment-name",
        """\
        environments:
          - name: Staging_1
        """,
        "2:11",
        "'Staging_1' is not a valid name",
    ),
    (
        "signatures-without-keys",
        """\
        environments: [{name: dev}]
        require_artifact_signatures: true
        """,
        "2:30",
        "require_artifact_signatures: needs trusted_keys",
    ),
    (
        "not-a-mapping",
        """\
        - dev
        - staging
        """,
        "1:1",
        "must be a mapping",
    ),
    (
        "yaml-syntax-error",
        """\
        environments:
          - name: dev
           bad: indent
        """,
        "3:4",
        "not valid YAML: expected <block end>",
    ),
    (
        "yaml-duplicate-key",
        """\
        environments: [{name: dev}]
        environments: [{name: staging}]
        """,
        "2:1",
        'found duplicate key "environments"',
    ),
]


class TestInvalidPolicies:
    """Each invalid policy yields one problem, at the offending key or value."""

    @pytest.mark.parametrize(
        ("text", "where", "phrase"),
        [case[1:] for case in INVALID],
        ids=[case[0] for case in INVALID],
    )
    def test_problem_is_placed(self, text: str, where: str, phrase: str) -> None:
        problems = problems_of(text)
        assert [f"{p.line}:{p.column}" for p in problems] == [where], problems
        assert phrase in problems[0].message
        assert str(problems[0]).startswith(f"{SOURCE}:{where}: ")

    def test_three_different_errors_are_all_reported(self) -> None:
        problems = problems_of(
            """\
            environments:
              - {name: dev, auto_promote: true}
              - {name: staging}
              - {name: production}
            promotion_rules:
              - from: dev
                to: production
                requires_approval: true
                approvals:
                  - {group: ops-team, count: -1}
            groups:
              ops-team: {kind: ldap}
            """
        )
        assert [(p.line, p.column) for p in problems] == [(7, 9), (10, 34), (12, 20)]
        assert "skips an environment" in problems[0].message
        assert "greater than or equal to 0" in problems[1].message
        assert "not 'ldap'" in problems[2].message

    def test_cross_field_problems_are_all_reported_together(self) -> None:
        problems = problems_of(
            """\
            environments: [{name: dev}, {name: staging}, {name: dev}]
            promotion_rules:
              - {from: dev, to: qa}
              - {from: dev, to: staging}
            require_artifact_signatures: true
            """
        )
        assert [(p.line, p.column) for p in problems] == [(1, 53), (3, 21), (4, 12), (5, 30)]
        assert [p.message.split(": ", 1)[0] for p in problems] == [
            "environments[2].name",
            "promotion_rules[0].to",
            "promotion_rules[1].from",
            "require_artifact_signatures",
        ]

    def test_error_str_joins_every_problem_in_file_order(self) -> None:
        with pytest.raises(PolicyError) as caught:
            load_policy("colour: blue\nenvironments: []\n", "p.yaml")
        assert str(caught.value).splitlines() == [
            "p.yaml:1:1: unknown key 'colour'; remove it or check the spelling",
            "p.yaml:2:15: environments: list at least one environment, in promotion order",
        ]

    def test_from_env_spelled_by_field_name_is_placed(self) -> None:
        problems = problems_of(
            """\
            environments: [{name: dev}, {name: staging}, {name: production}]
            promotion_rules:
              - {from_env: dev, to_env: production}
            """
        )
        assert [(p.line, p.column) for p in problems] == [(3, 29)]
        assert "skips an environment" in problems[0].message

    def test_problem_str_is_file_line_column_message(self) -> None:
        assert str(PolicyProblem("a.yaml", 3, 7, "boom")) == "a.yaml:3:7: boom"


class TestModelValidation:
    """Policy.model_validate still refuses incoherent policies, with located errors."""

    def test_incoherent_policy_fails_with_every_problem_located(self) -> None:
        data = {
            "environments": [{"name": "dev"}, {"name": "staging"}, {"name": "production"}],
            "promotion_rules": [
                {"from": "dev", "to": "production"},
                {"from": "dev", "to": "staging"},
            ],
        }
        with pytest.raises(ValidationError) as caught:
            Policy.model_validate(data)
        locs = [err["loc"] for err in caught.value.errors()]
        assert locs == [("promotion_rules", 0, "to"), ("promotion_rules", 1, "from")]

    def test_rule_problem_is_located_under_the_rule(self) -> None:
        data = {
            "environments": [{"name": "dev"}, {"name": "staging"}],
            "promotion_rules": [{"from": "dev", "to": "staging", "requires_approval": True}],
        }
        with pytest.raises(ValidationError) as caught:
            Policy.model_validate(data)
        assert [e["loc"] for e in caught.value.errors()] == [
            ("promotion_rules", 0, "requires_approval")
        ]


class TestValidPolicies:
    """Valid policies load into the model the rest of Ritmo reads."""

    def test_shipped_default(self) -> None:
        policy = default_policy()
        assert policy.environment_names == ["dev", "staging", "production"]
        rule = policy.rule("web", "staging", "production")
        assert rule is not None and rule.required_approvers == 2
        assert rule.approval_timeout == timedelta(days=7)
        assert load_policy(DEFAULT_POLICY_PATH.read_text(), "x") == policy

    def test_per_app_overrides_and_helm_target(self) -> None:
        policy = load_policy(
            dedent(
                """\
                environments: [{name: dev, auto_promote: true}, {name: staging}, {name: prod}]
                promotion_rules:
                  - {from: dev, to: staging, auto_promote: true}
                  - {from: staging, to: prod, requires_approval: true, approvals: [{group: ops}]}
                apps:
                  api:
                    overlay: "charts/{app}/values-{env}.yaml"
                    kind: helm
                    key: image.tag
                    promotion_rules:
                      - {from: dev, to: staging}
                      - from: staging
                        to: prod
                        requires_approval: true
                        approvals: [{group: ops, count: 2}]
                """
            ),
            SOURCE,
        )
        target = policy.target("api")
        assert (target.kind, target.key) == ("helm", "image.tag")
        assert target.path("api", "prod") == "charts/api/values-prod.yaml"
        api_rule = policy.rule("api", "staging", "prod")
        assert api_rule is not None and api_rule.required_approvers == 2
        assert policy.rules_for("web") == policy.promotion_rules
        assert policy.target("web").path("web", "dev") == "apps/web/overlays/dev/kustomization.yaml"

    def test_min_approvers_with_approver_groups(self) -> None:
        policy = load_policy(
            dedent(
                """\
                environments: [{name: dev}, {name: production}]
                promotion_rules:
                  - from: dev
                    to: production
                    requires_approval: true
                    min_approvers: 2
                    approver_groups: [ops, sre]
                    approval_timeout: 1d12h
                groups:
                  ops: {kind: github-team, team: acme/ops}
                  sre: {kind: local}
                """
            ),
            SOURCE,
        )
        rule = policy.rule("any", "dev", "production")
        assert rule is not None
        assert (rule.required_approvers, rule.groups) == (2, ("ops", "sre"))
        assert rule.approval_timeout == timedelta(days=1, hours=12)
        assert policy.group("ops").team == "acme/ops"

    def test_freezes(self) -> None:
        policy = load_policy(
            dedent(
                """\
                environments:
                  - name: dev
                  - name: production
                    freeze:
                      - {cron: "0 16 * * FRI", duration: 64h, timezone: Europe/Berlin}
                      - cron: "0 0 24 12 *"
                        duration: 3d
                        reason: holidays
                promotion_rules:
                  - from: dev
                    to: production
                    freeze:
                      - {cron: "30 9 * * 1-5", duration: 30m}
                """
            ),
            SOURCE,
        )
        production = policy.environment("production")
        assert production is not None
        assert [f.duration for f in production.freeze] == [timedelta(hours=64), timedelta(days=3)]
        assert production.freeze[1].reason == "holidays"
        rule = policy.rule("web", "dev", "production")
        assert rule is not None and rule.freeze[0].timezone == "UTC"


class TestPolicyFromBranch:
    """The branch's .ritmo/policy.yaml is in force; absent, the shipped default is."""

    def test_absent_file_falls_back_to_default(self) -> None:
        asked: list[str] = []

        def read(path: str) -> bytes | None:
            asked.append(path)
            return None

        assert policy_from_branch(read) == default_policy()
        assert asked == [".ritmo/policy.yaml"]

    def test_present_file_is_loaded(self) -> None:
        text = b"environments: [{name: qa}, {name: live}]\n"
        policy = policy_from_branch(lambda path: text)
        assert policy.environment_names == ["qa", "live"]

    def test_invalid_file_raises_and_never_falls_back(self) -> None:
        text = b"environments: [{name: qa}]\nkind: ldap\n"
        with pytest.raises(PolicyError) as caught:
            policy_from_branch(lambda path: text)
        assert [str(p) for p in caught.value.problems] == [
            ".ritmo/policy.yaml:2:1: unknown key 'kind'; remove it or check the spelling"
        ]

    def test_non_utf8_file_is_placed_at_the_bad_byte(self) -> None:
        with pytest.raises(PolicyError) as caught:
            load_policy_bytes("environments:\n  - name: é-d".encode() + b"\xe9v\n", "p.yaml")
        (problem,) = caught.value.problems
        assert (problem.line, problem.column) == (2, 14)
        assert "not UTF-8" in problem.message
