"""Deployment-gated auto-promotion: an artifact that runs well in an environment moves on
to the next one, when the rule out of it auto-promotes on a deployment.

Whether the deployment lets it go (gate.py) and whether a freeze holds it are pure
decisions; this module reads the indexes and promotes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.deploy.gate import deployment_gate
from bot.deploy.records import AUTOMATIC
from bot.manifests.writer import Conflict
from bot.policy.model import Policy
from bot.promotions.service import PromotionInput, PromotionRefused, PromotionService, frozen
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import Deployment
from bot.store.deployments import DeploymentIndex
from bot.store.index import ArtifactIndex

log = logging.getLogger(__name__)


class Gating:
    def __init__(
        self,
        *,
        artifacts: ArtifactIndex,
        deployments: DeploymentIndex,
        promotions: PromotionService,
        policy: Callable[[], Policy],
        clock: Callable[[], datetime],
    ) -> None:
        self._artifacts = artifacts
        self._deployments = deployments
        self._promotions = promotions
        self._policy = policy
        self._clock = clock

    def promote_after(self, record: Deployment, correlation_id: str) -> list[dict[str, Any]]:
        """Auto-promote the artifact out of an environment where it now runs well, when
        the next rule auto-promotes on a deployment (and its soak is over)."""
        done: list[dict[str, Any]] = []
        policy = self._policy()
        app, env = record.app, record.environment
        nxt = policy.next_environment(env) if env in policy.environment_names else None
        rule = policy.rule(app, env, nxt) if nxt else None
        if rule is None or not rule.auto_promote or not rule.gated_on_deployment:
            return done
        if record.superseded:
            return done  # a report about an older revision is history, not a gate
        artifact = self._artifacts.get(record.artifact_id)
        if artifact is None or artifact.promotion_status != env or record.rolled_back_by:
            return done
        if self._artifacts.held(artifact.record.id, rule.to_env):
            log.info("%s is held out of %s by a rollback", artifact.record.id, rule.to_env)
            return done
        now = self._clock()
        label = f"{app} {artifact.record.version}"
        if deployment_gate(rule, label, record, now) or frozen(policy, rule, now):
            return done  # the scheduler tries again
        try:
            done.append(
                self._promotions.promote(
                    artifact,
                    PromotionInput(env, rule.to_env),
                    AUTOMATIC,
                    correlation_id,
                    auto=True,
                )  # fmt: skip
            )
        except (PromotionRefused, Conflict) as exc:
            log.info("no auto-promotion of %s: %s", label, exc)
        return done

    def promote_due(self, correlation_id: str) -> int:
        """The scheduler's pass: promotions whose soak or freeze ended since the report."""
        seen: set[tuple[str, str]] = set()
        promoted = 0
        for record in self._deployments.search(status=DeploymentStatus.SUCCEEDED, limit=1000)[0]:
            where = (record.app, record.environment)
            if where in seen or record.superseded:
                continue
            seen.add(where)
            promoted += len(self.promote_after(record, correlation_id))
        return promoted
