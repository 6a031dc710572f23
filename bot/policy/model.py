"""The promotion policy: environments, rules, approver groups, freezes, per-app targets.

Plain pydantic models, validated once when the policy is loaded. Cross-field checks
(a rule that skips an environment, a group nobody defined) live in `Policy` so every
way of loading a policy gets them. Every problem carries the path of the key or value
at fault (e.g. `("promotion_rules", 1, "to")`), so a loader can point at its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from bot.policy.integration_fields import Loc, located_error
from bot.policy.integrations import Integration

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
DEFAULT_OVERLAY = "apps/{app}/overlays/{env}/kustomization.yaml"
_GLOB = re.compile(r"[*?\[]")


def is_pattern(name: str) -> bool:
    """An `apps` key with glob characters (`*`, `?`, `[...]`) declares every app it matches."""
    return bool(_GLOB.search(name))


COHERENCE_ERROR = "policy_coherence"
"""The pydantic error type of the problems `Policy` finds across fields."""


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
            raise located_error(
                "Group", [(("team",), "a github-team group needs team: <org>/<team-slug>")]
            )
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


class Rollback(_Model):
    """What Ritmo does when a deployment into the environment fails or degrades."""

    on_failure: Literal["automatic", "manual"] = "manual"
    strategy: Literal["previous_version"] = "previous_version"
    requires_approval: bool = Field(
        default=False,
        description="A manual rollback opens a request judged by the rule into the environment.",
    )


class Environment(_Model):
    name: str = Field(pattern=_SLUG)
    auto_promote: bool = Field(
        default=False, description="On the first environment: pin every new artifact here."
    )
    freeze: tuple[Freeze, ...] = ()
    rollback: Rollback = Field(default_factory=Rollback)


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
        problems: list[tuple[Loc, str]] = []
        needs = bool(self.approvals) or self.min_approvers > 0
        if self.requires_approval and not needs:
            problems.append(
                (
                    ("requires_approval",),
                    "requires_approval: true needs approvals (per group) or min_approvers "
                    "with approver_groups",
                )
            )
        if self.min_approvers and not self.approver_groups:
            problems.append(
                (("min_approvers",), "needs approver_groups to draw the approvers from")
            )
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


class PolicyChangeRule(_Model):
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
        problems: list[tuple[Loc, str]] = []
        if self.requires_approval and not (self.approvals or self.min_approvers):
            problems.append(
                (
                    ("requires_approval",),
                    "requires_approval: true needs approvals (per group) or min_approvers "
                    "with approver_groups",
                )
            )
        if self.min_approvers and not self.approver_groups:
            problems.append(
                (("min_approvers",), "needs approver_groups to draw the approvers from")
            )
        if problems:
            raise located_error("PolicyChangeRule", problems)
        return self

    def as_rule(self) -> PromotionRule:
        """The promotion rule into the pseudo target `POLICY_APP` that evaluation judges."""
        return PromotionRule.model_validate(
            {"from": POLICY_APP, "to": POLICY_APP, **self.model_dump()}
        )


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
            raise ValueError(
                "must be a relative path inside the repository, using only {app} and {env} "
                "placeholders"
            )
        return value

    def path(self, app: str, env: str) -> str:
        return self.overlay.replace("{app}", app).replace("{env}", env)


class AppPolicy(AppTarget):
    promotion_rules: tuple[PromotionRule, ...] | None = Field(
        default=None, description="Replaces the top-level rules for this app."
    )
    deploy_name: str = Field(
        default="{app}-{env}",
        description="The ArgoCD Application or Flux object that deploys the app in {env}.",
    )
    rollback: dict[str, Rollback] = Field(
        default_factory=dict, description="environment -> rollback, over the environment's."
    )
    repository: str | None = Field(
        default=None,
        description="owner/name of the app's source repository: where GitHub Deployments go.",
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and (not _REPOSITORY.match(value) or value.endswith(("/.", "/.."))):
            raise ValueError(
                f"{value!r} is not a GitHub repository; write owner/name, e.g. acme/web"
            )
        return value

    @field_validator("deploy_name")
    @classmethod
    def _deploy_name(cls, value: str) -> str:
        probe = value.replace("{app}", "a").replace("{env}", "e")
        if "{" in probe or "}" in probe or "{env}" not in value:
            raise ValueError("must name the environment with {env}, e.g. {app}-{env}")
        return value


class Policy(_Model):
    environments: tuple[Environment, ...] = Field(min_length=1)
    promotion_rules: tuple[PromotionRule, ...] = ()
    groups: dict[str, Group] = Field(default_factory=dict)
    apps: dict[str, AppPolicy] = Field(
        default_factory=dict,
        description="The apps artifacts may be registered for: names, or glob patterns "
        '(`"*"`, `"team-*"`); a name wins over a pattern, patterns match in order.',
    )
    require_artifact_signatures: bool = False
    trusted_keys: tuple[str, ...] = ()
    integrations: tuple[Integration, ...] = ()
    policy_changes: PolicyChangeRule | None = Field(
        default=None,
        description="Approvals a change to this policy needs; absent: every approval any "
        "promotion rule needs.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        problems = coherence_problems(self)
        if problems:
            raise located_error("Policy", problems, COHERENCE_ERROR)
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

    def app(self, name: str) -> AppPolicy | None:
        """What the policy says about app `name`: its own entry, else the first pattern
        that matches it, else None (not declared)."""
        own = self.apps.get(name)
        if own is not None:
            return own
        return next(
            (v for k, v in self.apps.items() if is_pattern(k) and fnmatchcase(name, k)), None
        )

    def declares(self, name: str) -> bool:
        """Whether artifacts of app `name` may be registered."""
        return self.app(name) is not None

    @property
    def app_names(self) -> tuple[str, ...]:
        """The apps declared by name (patterns left out)."""
        return tuple(k for k in self.apps if not is_pattern(k))

    def declared_apps(self) -> str:
        """The declared apps and patterns, for an error message."""
        return ", ".join(self.apps) if self.apps else "none"

    def rules_for(self, app: str) -> tuple[PromotionRule, ...]:
        own = self.app(app)
        if own is not None and own.promotion_rules is not None:
            return own.promotion_rules
        return self.promotion_rules

    def rule(self, app: str, from_env: str, to_env: str) -> PromotionRule | None:
        if app == POLICY_APP:
            return self.change_rule if (from_env, to_env) == (POLICY_APP, POLICY_APP) else None
        return next(
            (r for r in self.rules_for(app) if (r.from_env, r.to_env) == (from_env, to_env)),
            None,
        )

    @property
    def change_rule(self) -> PromotionRule:
        """The rule a change to this policy is judged by: `policy_changes`, or else the
        union of every promotion rule's approvals (the most each group is asked for), so
        weakening production takes production's approvers."""
        if self.policy_changes is not None:
            return self.policy_changes.as_rule()
        rules = [r for r in self.promotion_rules if r.requires_approval]
        for own in self.apps.values():
            rules += [r for r in own.promotion_rules or () if r.requires_approval]
        counts: dict[str, int] = {}
        for rule in rules:
            for approval in rule.approvals:
                counts[approval.group] = max(counts.get(approval.group, 0), approval.count)
        pool = [g for r in rules for g in r.approver_groups]
        least = max((r.min_approvers for r in rules), default=0)
        return PolicyChangeRule(
            requires_approval=bool(rules),
            approvals=tuple(Approval(group=g, count=n) for g, n in counts.items()),
            min_approvers=least,
            approver_groups=tuple(dict.fromkeys(pool)) if least else (),
        ).as_rule()

    def target(self, app: str) -> AppTarget:
        own = self.app(app)
        if own is None:
            return AppTarget()
        return AppTarget(
            **own.model_dump(exclude={"promotion_rules", "deploy_name", "rollback", "repository"})
        )

    def deploy_name(self, app: str, env: str) -> str:
        """The CD object (ArgoCD Application, Flux Kustomization) for `app` in `env`."""
        own = self.app(app)
        pattern = own.deploy_name if own else "{app}-{env}"
        return pattern.replace("{app}", app).replace("{env}", env)

    def repository(self, app: str) -> str | None:
        """The app's source repository (owner/name) as the policy names it, if it does."""
        own = self.app(app)
        return own.repository if own else None

    def rollback(self, app: str, env: str) -> Rollback:
        own = self.app(app)
        if own is not None and env in own.rollback:
            return own.rollback[env]
        found = self.environment(env)
        return found.rollback if found else Rollback()

    def group(self, name: str) -> Group:
        """A group named in a rule; undeclared names are local groups."""
        return self.groups.get(name, Group())


# -- cross-field checks -------------------------------------------------------------
# They read plain data (what a policy file holds, or a dumped Policy), tolerating
# malformed parts, so a loader can report them alongside per-field errors: those stop
# pydantic before `Policy._coherent` runs. Whatever is malformed here, pydantic reports.


def _items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def coherence_problems(policy: Policy | Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Every (path, message) problem across fields: duplicate or unknown environments,
    rules that skip or repeat, undefined groups, signatures without keys."""
    data = policy.model_dump(by_alias=True) if isinstance(policy, Policy) else policy
    problems: list[tuple[Loc, str]] = []
    index: dict[str, int] = {}
    for i, env in enumerate(_items(data.get("environments"))):
        name = _mapping(env).get("name")
        if not isinstance(name, str):
            continue
        if name in index:
            problems.append(
                (
                    ("environments", i, "name"),
                    f"environment {name!r} is already defined at environments[{index[name]}]; "
                    "names must be unique",
                )
            )
        else:
            index[name] = i
    rule_sets: list[tuple[Loc, object]] = [(("promotion_rules",), data.get("promotion_rules"))]
    for app, own in _mapping(data.get("apps")).items():
        rules = _mapping(own).get("promotion_rules")
        if rules is not None:
            rule_sets.append((("apps", app, "promotion_rules"), rules))
    groups = _mapping(data.get("groups"))
    for where, rules in rule_sets:
        first_from: dict[str, int] = {}
        for i, rule in enumerate(_items(rules)):
            problems += _rule_problems(where, i, _mapping(rule), list(index), groups, first_from)
    problems += _rollback_problems(data, list(index))
    problems += _change_problems(_mapping(data.get("policy_changes")), groups)
    if data.get("require_artifact_signatures") is True and not _items(data.get("trusted_keys")):
        problems.append(
            (
                ("require_artifact_signatures",),
                "needs trusted_keys: the fingerprints of the keys CI signs artifacts with",
            )
        )
    return problems


def _rollback_problems(data: Mapping[str, Any], names: list[str]) -> list[tuple[Loc, str]]:
    """A rollback request is judged by the rule into its environment: there must be one
    that asks for approval. Per-app rollbacks name environments that exist."""
    problems: list[tuple[Loc, str]] = []
    rules = [_mapping(r) for r in _items(data.get("promotion_rules"))]
    for i, env in enumerate(_items(data.get("environments"))):
        env = _mapping(env)
        if _mapping(env.get("rollback")).get("requires_approval") is not True:
            continue
        loc: Loc = ("environments", i, "rollback", "requires_approval")
        into = [r for r in rules if r.get("to", r.get("to_env")) == env.get("name")]
        if i == 0:
            problems.append(
                (
                    loc,
                    "the first environment has no rule into it to judge a "
                    "rollback request; remove requires_approval here",
                )
            )
        elif not any(r.get("requires_approval") is True for r in into):
            problems.append(
                (
                    loc,
                    f"needs a promotion rule into {env.get('name')} with "
                    "requires_approval: true, whose approvals judge the request",
                )
            )
    for app, own in _mapping(data.get("apps")).items():
        for env_name in _mapping(_mapping(own).get("rollback")):
            if names and env_name not in names:
                problems.append((("apps", app, "rollback", env_name),
                                 f"unknown environment {env_name!r}; the environments are "
                                 + ", ".join(names)))  # fmt: skip
    return problems


def _change_problems(rule: Mapping[Any, Any], groups: Mapping[Any, Any]) -> list[tuple[Loc, str]]:
    """The groups `policy_changes` names must be defined, as a promotion rule's must."""
    if not groups:
        return []
    here: Loc = ("policy_changes",)
    refs: list[tuple[Loc, object]] = [
        ((*here, "approvals", j, "group"), _mapping(a).get("group"))
        for j, a in enumerate(_items(rule.get("approvals")))
    ]
    refs += [
        ((*here, "approver_groups", j), g)
        for j, g in enumerate(_items(rule.get("approver_groups")))
    ]
    return [
        (loc, f"group {group!r} is not defined under groups "
              f"(defined: {', '.join(str(g) for g in groups)})")
        for loc, group in refs
        if isinstance(group, str) and group not in groups
    ]  # fmt: skip


def _rule_problems(
    where: Loc,
    i: int,
    rule: Mapping[Any, Any],
    names: list[str],
    groups: Mapping[Any, Any],
    first_from: dict[str, int],
) -> list[tuple[Loc, str]]:
    here = (*where, i)
    problems: list[tuple[Loc, str]] = []
    ends: dict[str, str] = {}
    for alias, name in (("from", "from_env"), ("to", "to_env")):
        key = name if alias not in rule and name in rule else alias
        env = rule.get(key)
        if not isinstance(env, str):
            continue  # missing or not a string: pydantic says so
        if not names:
            continue  # no valid environments at all: pydantic says so
        if env not in names:
            problems.append(
                (
                    (*here, key),
                    f"unknown environment {env!r}; the environments are " + ", ".join(names),
                )
            )
        else:
            ends[alias] = env
        if alias == "from":
            if env in first_from:
                problems.append(
                    (
                        (*here, key),
                        f"a second rule from {env}; "
                        f"{_label(where, first_from[env])} already goes from {env}",
                    )
                )
            else:
                first_from[env] = i
    if len(ends) == 2:
        src, dst = names.index(ends["from"]), names.index(ends["to"])
        if dst != src + 1:
            to_key = "to_env" if "to" not in rule and "to_env" in rule else "to"
            step = f"{ends['from']} -> {ends['to']}"
            if dst > src + 1:
                how = f"skips an environment ({', '.join(names[src + 1 : dst])})"
            else:
                how = "does not go to the next environment"
            fix = (
                f"here: {ends['from']} -> {names[src + 1]}"
                if src + 1 < len(names)
                else f"{ends['from']} is the last one"
            )
            problems.append(
                (
                    (*here, to_key),
                    f"{step} {how}; rules go from each environment to the next ({fix})",
                )
            )
    if groups:
        refs: list[tuple[Loc, object]] = [
            ((*here, "approvals", j, "group"), _mapping(a).get("group"))
            for j, a in enumerate(_items(rule.get("approvals")))
        ]
        refs += [
            ((*here, "approver_groups", j), g)
            for j, g in enumerate(_items(rule.get("approver_groups")))
        ]
        for loc, group in refs:
            if isinstance(group, str) and group not in groups:
                problems.append(
                    (
                        loc,
                        f"group {group!r} is not defined under groups "
                        f"(defined: {', '.join(str(g) for g in groups)})",
                    )
                )
    return problems


def _label(where: Loc, i: int) -> str:
    return dotted((*where, i))


def dotted(loc: Loc) -> str:
    """("promotion_rules", 1, "to") -> "promotion_rules[1].to"."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
