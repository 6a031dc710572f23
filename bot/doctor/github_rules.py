"""Pure judgements over GitHub's answers: do the branch's rules let Ritmo push, is the App's
webhook set. Ritmo pins and merges by pushing signed commits straight to the default branch,
so every rule that would stop a direct push must let Ritmo's App bypass it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.github_app.manifest import WEBHOOK_PATH

# Rule types (GET /repos/{o}/{r}/rules/branches/{branch}) that refuse Ritmo's direct pushes.
BLOCKING_RULES = {
    "pull_request": "a pull request",
    "required_signatures": "signed commits GitHub can verify (it cannot verify Ritmo's key)",
    "required_status_checks": "status checks",
    "required_linear_history": "linear history (Ritmo's merges are merge commits)",
    "required_deployments": "deployments",
    "update": "no updates",
    "merge_queue": "a merge queue",
}
_BYPASSING = frozenset({"always", "exempt"})


def blocking_rulesets(rules: Sequence[Mapping[str, Any]]) -> dict[int, list[str]]:
    """Ruleset id -> what its active rules on the branch require of a direct push."""
    out: dict[int, list[str]] = {}
    for rule in rules:
        what = BLOCKING_RULES.get(str(rule.get("type")))
        ruleset = rule.get("ruleset_id")
        if what is not None and isinstance(ruleset, int) and what not in out.get(ruleset, []):
            out.setdefault(ruleset, []).append(what)
    return out


def ruleset_lets_app_push(ruleset: Mapping[str, Any], app_id: int) -> bool:
    """Whether the App bypasses `ruleset` (GET /repos/{o}/{r}/rulesets/{id}, read with the
    App's own token, so current_user_can_bypass speaks of the App)."""
    if ruleset.get("enforcement") != "active":
        return True  # disabled or evaluate: GitHub only reports
    if ruleset.get("current_user_can_bypass") in _BYPASSING:
        return True
    for actor in ruleset.get("bypass_actors") or []:
        if (
            actor.get("actor_type") == "Integration"
            and actor.get("actor_id") == app_id
            and actor.get("bypass_mode") in _BYPASSING
        ):
            return True
    return False


def classic_protection_problems(protection: Mapping[str, Any], app_slug: str) -> list[str]:
    """What classic branch protection (GET .../branches/{branch}/protection) refuses Ritmo."""
    problems = []
    reviews = protection.get("required_pull_request_reviews")
    if reviews:
        allowed = (reviews.get("bypass_pull_request_allowances") or {}).get("apps") or []
        if app_slug not in {str(a.get("slug")) for a in allowed}:
            problems.append(
                f'requires pull request reviews: add the App {app_slug} to "Allow specified '
                'actors to bypass required pull requests"'
            )
    if (protection.get("required_signatures") or {}).get("enabled"):
        problems.append(
            "requires signed commits GitHub verifies, which Ritmo's key is not: turn it off "
            "and require `ritmo verify` as a check instead"
        )
    checks = protection.get("required_status_checks") or {}
    if checks.get("contexts") or checks.get("checks"):
        problems.append(
            "requires status checks, which Ritmo's direct pushes do not have: move them to a "
            "ruleset with the App on its bypass list"
        )
    if (protection.get("required_linear_history") or {}).get("enabled"):
        problems.append("requires linear history, and Ritmo's merges are merge commits")
    if (protection.get("lock_branch") or {}).get("enabled"):
        problems.append("is locked (read-only)")
    restrictions = protection.get("restrictions")
    if restrictions:
        apps = {str(a.get("slug")) for a in restrictions.get("apps") or []}
        if app_slug not in apps:
            problems.append(f"restricts who can push: add the App {app_slug} to that list")
    return problems


def hook_problems(
    config: Mapping[str, Any], app_events: Sequence[str], needed_events: Sequence[str]
) -> list[str]:
    """What is wrong with the App's webhook (GET /app/hook/config, GET /app's events)."""
    problems = []
    url = str(config.get("url") or "")
    if not url:
        problems.append(f"no webhook URL: set it to https://<ritmo>{WEBHOOK_PATH}")
    elif not url.rstrip("/").endswith(WEBHOOK_PATH):
        problems.append(f"the webhook URL {url} is not Ritmo's: it must end in {WEBHOOK_PATH}")
    if not config.get("secret"):
        problems.append("no webhook secret: set the same one as forge.github.webhook_secret")
    if config.get("content_type") not in (None, "json"):
        problems.append("the content type must be application/json")
    if str(config.get("insecure_ssl", "0")) != "0":
        problems.append("SSL verification is off: turn it on")
    missing = [e for e in needed_events if e not in set(app_events)]
    if missing:
        problems.append("subscribe the App to " + ", ".join(missing))
    return problems


def delivery_problem(
    deliveries: Sequence[Mapping[str, Any]], installation_id: int | None
) -> str | None:
    """What the newest delivery to this installation says (GET /app/hook/deliveries, newest
    first): the one check of the webhook secret GitHub allows, since it never shows it."""
    for delivery in deliveries:
        if delivery.get("installation_id") not in (None, installation_id):
            continue
        code = delivery.get("status_code")
        event = f"{delivery.get('event')} delivery {delivery.get('guid')}"
        if code == 401:
            return (
                f"Ritmo answered 401 to the latest {event}: the App's webhook secret is not "
                "forge.github.webhook_secret; set the same secret on both"
            )
        if code == 404:
            return (
                f"the webhook URL answered 404 to the latest {event}: is forge.kind github "
                "on the Ritmo behind it?"
            )
        if not isinstance(code, int) or code == 0 or code >= 500:
            return f"the latest {event} failed ({delivery.get('status')}): is Ritmo reachable?"
        return None
    return None
