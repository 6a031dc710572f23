"""policy_changes: validated at its line and column; absent, the union of every approval."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.policy.load import PolicyError, default_policy, load_policy
from bot.policy.rules import POLICY_APP

BASE = """\
environments:
  - {name: dev}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, requires_approval: true, approvals: [{group: qa, count: 2}]}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops, count: 1}, {group: qa, count: 1}]
groups:
  qa: {kind: local}
  ops: {kind: local}
  admins: {kind: local}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def test_absent_rule_takes_every_group_at_its_highest_count() -> None:
    policy = load_policy(BASE, "p.yaml")
    rule = policy.change_rule
    assert rule.requires_approval
    assert [(a.group, a.count) for a in rule.approvals] == [("qa", 2), ("ops", 1)]
    assert policy.rule(POLICY_APP, POLICY_APP, POLICY_APP) == rule
    assert policy.rule(POLICY_APP, "dev", "staging") is None


def test_per_app_rules_and_min_approvers_count_too() -> None:
    text = BASE + (
        "apps:\n  api:\n    promotion_rules:\n"
        "      - {from: dev, to: staging, requires_approval: true, min_approvers: 3,"
        " approver_groups: [admins]}\n"
    )
    rule = load_policy(text, "p.yaml").change_rule
    assert rule.min_approvers == 3 and rule.approver_groups == ("admins",)
    assert rule.required_approvers == 3


def test_no_approvals_anywhere_means_none_for_policy_changes() -> None:
    text = "environments: [{name: dev}, {name: prod}]\npromotion_rules: [{from: dev, to: prod}]\n"
    assert load_policy(text, "p.yaml").change_rule.requires_approval is False


def test_the_shipped_default_needs_production_approvers() -> None:
    assert default_policy().change_rule.groups == ("ops-team", "security-team")


def test_explicit_rule_replaces_the_fallback() -> None:
    text = BASE + (
        "policy_changes:\n  requires_approval: true\n"
        "  approvals: [{group: admins, count: 2}]\n  approval_timeout: 2d\n"
    )
    rule = load_policy(text, "p.yaml").change_rule
    assert [(a.group, a.count) for a in rule.approvals] == [("admins", 2)]
    assert rule.approval_timeout == timedelta(days=2)
    assert rule.from_env == rule.to_env == POLICY_APP


def test_problems_are_placed_at_line_and_column() -> None:
    found = problems(
        BASE + "policy_changes:\n  requires_approval: true\n  approvals: [{group: sre}]\n"
    )
    assert found == [
        "p.yaml:17:23: policy_changes.approvals[0].group: group 'sre' is not defined under "
        "groups (defined: qa, ops, admins)"
    ]
    found = problems(BASE + "policy_changes:\n  requires_approval: true\n")
    assert found == [
        "p.yaml:16:22: policy_changes.requires_approval: requires_approval: true needs "
        "approvals (per group) or min_approvers with approver_groups"
    ]
    found = problems(BASE + "policy_changes: {approval_timeout: soon, freeze: []}\n")
    assert found == [
        "p.yaml:15:36: policy_changes.approval_timeout: 'soon' is not a duration; write e.g. "
        "7d, 64h, 1d12h or 30m",
        "p.yaml:15:42: policy_changes: unknown key 'freeze'; remove it or check the spelling",
    ]
