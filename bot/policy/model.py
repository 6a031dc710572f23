"""The promotion policy: environments, rules, approver groups, freezes, per-app targets.

Plain pydantic models, validated once when the policy is loaded. Cross-field checks
(a rule that skips an environment, a group nobody defined) live in `Policy` so every
way of loading a policy gets them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
DEFAULT_OVERLAY = "apps/{app}/overlays/{env}/kustomization.yaml"


def parse_duration(value: object) -> timedelta:
    """'7d', '64h', '1d12h', '30m', '90s' -> timedelta; numbers are seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) and value else None
    if not match or not any(match.groupdict().values()):
        raise ValueError(f"{value!r} is not a duration; write e.g. 7d, 64h, 1d12h or 30m")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Group(_Model):
    """Who may approve: a GitHub team, or users whose local tokens carry the group."""

    kind: Literal["local", "github-team"] = "local"
    team: str | None = Field(default=None, description="org/team-slug, for kind github-team")

    @model_validator(mode="after")
    def _team_for_github(self) -> Group:
        if self.kind == "github-team" and not (
            self.team and re.match(r"^[^/\s]+/[^/\s]+$", self.team)
        ):
            raise ValueError("a github-team group needs team: <org>/<team-slug>")
        return self


class Approval(_Model):
    """`count` distinct approvers from `group`."""

    group: str
    count: int = Field(default=1, ge=0)


class Freeze(_Model):
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


class Environment(_Model):
    name: str = Field(pattern=_SLUG)
    auto_promote: bool = Field(
        default=False, description="On the first environment: pin every new artifact here."
    )
    freeze: tuple[Freeze, ...] = ()


class PromotionRule(_Model):
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

    _timeout = field_validator("approval_timeout", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @model_validator(mode="after")
    def _consistent(self) -> PromotionRule:
        needs = bool(self.approvals) or self.min_approvers > 0
        if self.requires_approval and not needs:
            raise ValueError(
                "requires_approval needs approvals (per group) or min_approvers with "
                "approver_groups"
            )
        if self.min_approvers and not self.approver_groups:
            raise ValueError("min_approvers needs approver_groups to draw approvers from")
        if self.auto_promote and self.requires_approval:
            raise ValueError("a rule cannot both auto_promote and require approval")
        return self

    @property
    def groups(self) -> tuple[str, ...]:
        """Every group whose members may approve under this rule."""
        names = [a.group for a in self.approvals] + list(self.approver_groups)
        return tuple(dict.fromkeys(names))

    @property
    def required_approvers(self) -> int:
        return max(sum(a.count for a in self.approvals), self.min_approvers)


class AppTarget(_Model):
    """Where and how an app's version is pinned in an environment."""

    overlay: str = DEFAULT_OVERLAY
    kind: Literal["kustomize", "helm"] = "kustomize"
    image: str | None = Field(
        default=None, description="kustomize images[].name; default: the artifact image's repo"
    )
    field: Literal["newTag", "digest"] | None = Field(
        default=None, description="kustomize: default newTag, or digest for @sha256 images"
    )
    key: str = Field(default="image.tag", description="helm: the dotted key to set")

    @field_validator("overlay")
    @classmethod
    def _overlay(cls, value: str) -> str:
        probe = value.replace("{app}", "a").replace("{env}", "e")
        if "{" in probe or probe.startswith("/") or ".." in probe.split("/"):
            raise ValueError("a relative path using only {app} and {env} placeholders")
        return value

    def path(self, app: str, env: str) -> str:
        return self.overlay.replace("{app}", app).replace("{env}", env)


class AppPolicy(AppTarget):
    promotion_rules: tuple[PromotionRule, ...] | None = Field(
        default=None, description="Replaces the top-level rules for this app."
    )


class Policy(_Model):
    environments: tuple[Environment, ...] = Field(min_length=1)
    promotion_rules: tuple[PromotionRule, ...] = ()
    groups: dict[str, Group] = Field(default_factory=dict)
    apps: dict[str, AppPolicy] = Field(default_factory=dict)
    require_artifact_signatures: bool = False
    trusted_keys: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        names = [e.name for e in self.environments]
        if len(set(names)) != len(names):
            raise ValueError("environment names must be unique")
        rule_sets = [("promotion_rules", self.promotion_rules)] + [
            (f"apps.{app}.promotion_rules", p.promotion_rules)
            for app, p in self.apps.items()
            if p.promotion_rules is not None
        ]
        for where, rules in rule_sets:
            seen = set()
            for i, rule in enumerate(rules):
                here = f"{where}[{i}]"
                for env in (rule.from_env, rule.to_env):
                    if env not in names:
                        raise ValueError(f"{here}: unknown environment {env!r}")
                if names.index(rule.to_env) != names.index(rule.from_env) + 1:
                    raise ValueError(
                        f"{here}: {rule.from_env} -> {rule.to_env} skips an environment; "
                        "rules go from each environment to the next"
                    )
                if rule.from_env in seen:
                    raise ValueError(f"{here}: a second rule from {rule.from_env}")
                seen.add(rule.from_env)
                for group in rule.groups:
                    if self.groups and group not in self.groups:
                        raise ValueError(f"{here}: group {group!r} is not defined under groups")
        if self.require_artifact_signatures and not self.trusted_keys:
            raise ValueError("require_artifact_signatures needs trusted_keys (fingerprints)")
        return self

    # -- questions the rest of Ritmo asks --------------------------------------
    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.environments]

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def next_environment(self, name: str) -> str | None:
        names = self.environment_names
        i = names.index(name)
        return names[i + 1] if i + 1 < len(names) else None

    def rules_for(self, app: str) -> tuple[PromotionRule, ...]:
        own = self.apps.get(app)
        if own is not None and own.promotion_rules is not None:
            return own.promotion_rules
        return self.promotion_rules

    def rule(self, app: str, from_env: str, to_env: str) -> PromotionRule | None:
        return next(
            (r for r in self.rules_for(app) if (r.from_env, r.to_env) == (from_env, to_env)),
            None,
        )

    def target(self, app: str) -> AppTarget:
        own = self.apps.get(app)
        return AppTarget(**own.model_dump(exclude={"promotion_rules"})) if own else AppTarget()

    def group(self, name: str) -> Group:
        """A group named in a rule; undeclared names are local groups."""
        return self.groups.get(name, Group())
