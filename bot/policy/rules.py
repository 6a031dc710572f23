"""The policy's promotion rules: who approves (groups, approvals), when nothing may move
(freezes), and the rule a change to the policy itself is judged by."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.policy.fields import Loc, StrictModel, located_error, parse_duration


class Group(StrictModel):
    """Who may approve: a GitHub team, or users whose local tokens carry the group."""

    kind: Literal["local", "github-team"] = "local"
    team: str | None = Field(default=None, description="org/team-slug, for kind github-team")

    @model_validator(mode="after")
    def _team_for_github(self) -> Group:
        if self.kind == "github-team" and not (
            self.team and re.match(r"^[^/\s]+/[^/\s]+$", self.team)
        ):
            raise located_error(
                "Group", [(("team",), "a github-team group needs team: <org>/<team-slug>")]
            )
        return self


class Approval(StrictModel):
    """`count` distinct approvers from `group`."""

    group: str
    count: int = Field(default=1, ge=0)


class Freeze(StrictModel):
    """No promotions into the environment from each cron start for `duration`."""

    cron: str
    duration: timedelta
    timezone: str = "UTC"
    reason: str = ""

    _duration = field_validator("duration", mode="before")(parse_duration)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone; use e.g. Europe/Berlin") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from bot.policy.freeze import cron_trigger

        cron_trigger(value, "UTC")  # raises ValueError naming the problem
        return value


class PromotionRule(StrictModel):
    from_env: str = Field(alias="from")
    to_env: str = Field(alias="to")
    auto_promote: bool = False
    requires_approval: bool = False
    approvals: tuple[Approval, ...] = Field(
        default=(), description="Per-group counts: all must be met, by distinct people."
    )
    min_approvers: int = Field(default=0, ge=0, description="N distinct approvers ...")
    approver_groups: tuple[str, ...] = Field(default=(), description="... from any of these.")
    approval_timeout: timedelta | None = None
    freeze: tuple[Freeze, ...] = ()
    requires_deployment: bool = Field(
        default=False,
        description="The artifact must have a succeeded deployment in the source environment.",
    )
    soak: timedelta | None = Field(
        default=None, description="... that succeeded at least this long ago (implies it)."
    )

    _timeout = field_validator("approval_timeout", "soak", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @property
    def gated_on_deployment(self) -> bool:
        return self.requires_deployment or self.soak is not None

    @model_validator(mode="after")
    def _consistent(self) -> PromotionRule:
        problems = _approval_problems(self)
        if self.auto_promote and self.requires_approval:
            problems.append(
                (("auto_promote",), "a rule cannot both auto_promote and require approval")
            )
        if problems:
            raise located_error("PromotionRule", problems)
        return self

    @property
    def groups(self) -> tuple[str, ...]:
        """Every group whose members may approve under this rule."""
        names = [a.group for a in self.approvals] + list(self.approver_groups)
        return tuple(dict.fromkeys(names))

    @property
    def required_approvers(self) -> int:
        return max(sum(a.count for a in self.approvals), self.min_approvers)


POLICY_APP = "_policy"
"""The pseudo app (and environment) a policy change request targets: not a valid app or
environment name, so it never meets a real one. `Policy.rule` answers for it with the
`policy_changes` rule, so a policy change is evaluated like any promotion request."""


class PolicyChangeRule(StrictModel):
    """Who must approve a change to the policy itself (`PUT /api/v1/policy`, a policy PR).

    The approval fields of a promotion rule. Absent from a policy, a change needs every
    approval any promotion rule needs (see `Policy.change_rule`)."""

    requires_approval: bool = False
    approvals: tuple[Approval, ...] = ()
    min_approvers: int = Field(default=0, ge=0)
    approver_groups: tuple[str, ...] = ()
    approval_timeout: timedelta | None = None

    _timeout = field_validator("approval_timeout", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @model_validator(mode="after")
    def _consistent(self) -> PolicyChangeRule:
        problems = _approval_problems(self)
        if problems:
            raise located_error("PolicyChangeRule", problems)
        return self

    def as_rule(self) -> PromotionRule:
        """The promotion rule into the pseudo target `POLICY_APP` that evaluation judges."""
        return PromotionRule.model_validate(
            {"from": POLICY_APP, "to": POLICY_APP, **self.model_dump()}
        )


def _approval_problems(rule: PromotionRule | PolicyChangeRule) -> list[tuple[Loc, str]]:
    """What a rule's approval fields get wrong together (a promotion rule's, or
    `policy_changes`')."""
    problems: list[tuple[Loc, str]] = []
    if rule.requires_approval and not (rule.approvals or rule.min_approvers > 0):
        problems.append(
            (
                ("requires_approval",),
                "requires_approval: true needs approvals (per group) or min_approvers "
                "with approver_groups",
            )
        )
    if rule.min_approvers and not rule.approver_groups:
        problems.append((("min_approvers",), "needs approver_groups to draw the approvers from"))
    return problems
