"""The policy's cross-field checks: duplicate or unknown environments, rules that skip or
repeat, undefined groups, rollback requests no rule judges, signatures without keys.

They read plain data (what a policy file holds, or a dumped Policy), tolerating
malformed parts, so a loader can report them alongside per-field errors: those stop
pydantic before `Policy._coherent` runs. Whatever is malformed here, pydantic reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.policy.fields import Loc, dotted

if TYPE_CHECKING:
    from bot.policy.model import Policy


def _items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def coherence_problems(policy: Policy | Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Every (path, message) problem across fields: duplicate or unknown environments,
    rules that skip or repeat, undefined groups, signatures without keys."""
    data = policy if isinstance(policy, Mapping) else policy.model_dump(by_alias=True)
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
    problems += _group_problems(("policy_changes",), _mapping(data.get("policy_changes")), groups)
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


def _group_problems(
    here: Loc, rule: Mapping[Any, Any], groups: Mapping[Any, Any]
) -> list[tuple[Loc, str]]:
    """The groups a rule names (a promotion rule's, `policy_changes`') must be defined,
    when the policy defines any."""
    if not groups:
        return []
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
    problems += _group_problems(here, rule, groups)
    return problems


def _label(where: Loc, i: int) -> str:
    return dotted((*where, i))
