"""The promotion policy: environments, rules, approver groups, freezes, per-app targets.

Plain pydantic models, validated once when the policy is loaded. Cross-field checks
(a rule that skips an environment, a group nobody defined; bot/policy/coherence.py) run
in `Policy` so every way of loading a policy gets them. Every problem carries the path of
the key or value at fault (e.g. `("promotion_rules", 1, "to")`), so a loader can point at
its line.

The parts live in their own modules (fields, rules, targets, coherence); the names the
rest of Ritmo imports from here are re-exported below.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import Field, model_validator

from bot.policy.coherence import coherence_problems
from bot.policy.fields import COHERENCE_ERROR, StrictModel, located_error
from bot.policy.integrations import Integration
from bot.policy.rules import (
    POLICY_APP,
    Approval,
    Group,
    PolicyChangeRule,
    PromotionRule,
)
from bot.policy.targets import (
    DEFAULT_OVERLAY,
    AppPolicy,
    AppTarget,
    Environment,
    Rollback,
    is_pattern,
)

# What the rest of Ritmo imports from here besides `Policy`.
__all__ = [
    "DEFAULT_OVERLAY",
    "POLICY_APP",
    "AppTarget",
    "Policy",
    "PromotionRule",
    "is_pattern",
]


class Policy(StrictModel):
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
