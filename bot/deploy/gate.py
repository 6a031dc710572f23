"""Whether an artifact's deployment in the source environment lets it move on (pure)."""

from __future__ import annotations

from datetime import datetime

from bot.policy.model import PromotionRule
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import Deployment
from bot.timestamps import parse, stamp


def deployment_gate(
    rule: PromotionRule, label: str, latest: Deployment | None, now: datetime
) -> str | None:
    """Why `rule` does not let the artifact (`label`, e.g. "web 1.2.3") go yet, or None.

    `latest` is the artifact's newest deployment in the rule's source environment.
    """
    if not rule.gated_on_deployment:
        return None
    source = rule.from_env
    if latest is None:
        return (
            f"{label} has no deployment in {source} yet, and {source} -> {rule.to_env} needs "
            f"a succeeded one; wait until ArgoCD or Flux reports it"
        )
    if latest.superseded:
        return (
            f"{label}'s deployment in {source} was reported about a revision older than "
            f"{source}'s pin at the time (history only), and {source} -> {rule.to_env} needs "
            "a succeeded deployment of the current pin"
        )
    if latest.status != DeploymentStatus.SUCCEEDED:
        return (
            f"{label}'s deployment in {source} is {latest.status}, and {source} -> "
            f"{rule.to_env} needs a succeeded one"
        )
    if rule.soak is not None and latest.succeeded_at:
        until = parse(str(latest.succeeded_at)) + rule.soak
        if now < until:
            return (
                f"{label} soaks in {source} until {stamp(until)} "
                f"(policy soak {rule.soak}); promote it after that"
            )
    return None
