"""Rollbacks: pin an earlier version of an app again, as a signed commit, and mark the
deployment rolled back on the ledger.

Which version to restore (legitimacy.py) and whether the overlay still pins the failure
(rollback.py) are pure decisions; this module does the reading and writing around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.deploy.legitimacy import Arrivals, choose_target
from bot.deploy.records import (
    AUTOMATIC,
    FAILED,
    Observation,
    deployment_path,
    mark_rolled_back,
    parse_deployment,
    render_deployment,
)
from bot.deploy.rollback import RollbackChange, RollbackRefused
from bot.errors import Forbidden, NotFound
from bot.manifests.mirror import Mirror
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.segments import WriteResult
from bot.manifests.writer import Conflict, ManifestWriter, WriteUnavailable
from bot.policy.model import Policy
from bot.promotions.request_view import RollbackAsk
from bot.promotions.requests import RequestService
from bot.promotions.service import PromotionInput, PromotionRefused
from bot.statuses import DeploymentStatus, RequestStatus
from bot.store.deployment_record import Deployment
from bot.store.deployments import DeploymentIndex
from bot.store.facts import RollbackFact
from bot.store.index import ArtifactIndex, IndexedArtifact
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.templates import Templates
from bot.timestamps import stamp

log = logging.getLogger(__name__)

# What keeps an automatic rollback from happening now; the scheduler tries again.
_NO_ROLLBACK = (RollbackRefused, NotFound, Forbidden, WriteUnavailable)


@dataclass(frozen=True)
class _MarkRolledBack:
    record: Deployment
    commit: str
    at: str
    message: str

    def plan(self, read: Reader) -> Edit | Unchanged:
        path = deployment_path(self.record.app, self.record.environment, self.record.id)
        data = read(path)
        if data is None:
            raise Conflict(f"no deployment record at {path}")
        current = parse_deployment(data)
        if current.rolled_back_by:
            return Unchanged()
        updated = mark_rolled_back(current, self.commit, self.at)
        return Edit({path: render_deployment(updated)}, self.message)


def _answer(env: str, failed: IndexedArtifact, restored: IndexedArtifact) -> dict[str, Any]:
    """What a rollback's answer says it rolls back, asked for (pending) or done."""
    return {
        "environment": env,
        "failed_artifact": failed.record.id,
        "restored_artifact": restored.record.id,
        "restored_version": restored.record.version,
    }


class Rollbacks:
    def __init__(
        self,
        *,
        mirror: Mirror,
        writer: ManifestWriter,
        ledger: ManifestWriter,
        artifacts: ArtifactIndex,
        deployments: DeploymentIndex,
        requests: RequestService,
        templates: Templates,
        policy: Callable[[], Policy],
        clock: Callable[[], datetime],
        arrivals: Callable[[str], Arrivals] | None,
    ) -> None:
        self._mirror = mirror
        self._writer = writer
        self._ledger = ledger
        self._artifacts = artifacts
        self._deployments = deployments
        self._requests = requests
        self._templates = templates
        self._policy = policy
        self._clock = clock
        # How versions arrived in environments, read from git at a tip (provenance.py).
        self._arrivals = arrivals

    @traced("ritmo.rollback")
    def rollback(
        self,
        deployment_id: str,
        by: str,
        correlation_id: str,
        reason: str | None,
        automatic: bool = False,
        healthy_too: bool = True,
    ) -> dict[str, Any]:
        """Pin an earlier version again, as a signed commit; a hold keeps the rolled-back
        artifact out of the environment's auto-promotion. Only a version that arrived in
        the environment legitimately (legitimacy.py) is restored.

        `healthy_too`: the caller may roll back a deployment that did not fail (it has
        `promotions:write`); a `deployments:write` caller may not (Forbidden). A request
        opens instead (status "pending"), judged by the rule into the environment, for a
        failed deployment where `rollback.requires_approval` is true, and for a healthy
        one where the rule into the environment requires approval, unless the
        environment's `rollback.requires_approval` is explicitly false."""
        record = self._deployments.get(deployment_id)
        if record is None:
            raise NotFound(f"no deployment {deployment_id!r}")
        status = record.status
        healthy = status not in FAILED
        if healthy and not healthy_too:
            raise Forbidden(
                f"{deployment_id} is {status}: a deployments:write token rolls back only a "
                "failed or degraded deployment; rolling back another needs promotions:write",
                field="scope",
            )
        if record.rolled_back_by:
            raise RollbackRefused(
                f"{deployment_id} was rolled back already by {record.rolled_back_by}"
            )
        if record.superseded:
            raise RollbackRefused(
                f"{deployment_id} is a report about a revision older than the current pin of "
                f"{record.environment} (history only); roll back the current deployment"
            )
        failed = self._artifacts.get(record.artifact_id)
        if failed is None:
            raise RollbackRefused(f"no artifact {record.artifact_id} is recorded")
        restored = self._previous(record)
        policy = self._policy()
        app, env = record.app, record.environment
        names = policy.environment_names
        position = names.index(env) if env in names else 0
        returned_to = names[position - 1] if position > 0 else None
        rule = policy.rule(app, returned_to, env) if returned_to else None
        asks = policy.rollback(app, env)
        if automatic:
            wanted = False
        elif healthy:
            # Unless the environment says explicitly that rollbacks need no approval.
            waived = "requires_approval" in asks.model_fields_set and not asks.requires_approval
            wanted = rule is not None and rule.requires_approval and not waived
        else:
            wanted = asks.requires_approval
        if wanted:
            if rule is None or not rule.requires_approval:
                raise RollbackRefused(
                    f"rollback.requires_approval in {env} needs a promotion rule into {env} "
                    "that requires approval; fix the policy"
                )
            why = reason or f"Rollback of {failed.record.version} asked for by {by}"
            ask = PromotionInput(returned_to or env, env, notes=why)
            asked = RollbackAsk(failed.record.id, deployment_id, returned_to)
            try:
                opened = self._requests.open(restored, ask, rule, by, correlation_id, asked)
            except PromotionRefused as exc:
                raise RollbackRefused(str(exc)) from None
            return {
                "status": RequestStatus.PENDING,
                "request": opened,
                **_answer(env, failed, restored),
            }
        target = policy.target(app)
        path = target.path(app, env)
        why = f"{status} in {env}" if status in FAILED else f"is rolled back in {env} by {by}"
        message = self._templates.render(
            "commit/rollback.txt",
            app=app,
            environment=env,
            failed=failed.record,
            restored=restored.record,
            why=why,
            path=path,
            returned_to=returned_to,
            reason=reason,
            deployment_id=deployment_id,
            rolled_back_by=by,
            correlation_id=correlation_id,
        )
        change = RollbackChange(target, path, env, failed.record, restored.record, message)
        try:
            result = self._writer.write(change)
        except Conflict as exc:
            raise RollbackRefused(str(exc)) from None
        commit = result.commit or result.tip
        at = stamp(self._clock())
        # The main writer's hook queues the same mark (rolled_back_on_main); waiting here
        # lets the answer show it. The second of the two finds it done and writes nothing.
        self._mark(record, commit, at, by, correlation_id).result(timeout=300)
        done = {
            "status": "rolled-back",
            "commit": commit,
            **_answer(env, failed, restored),
            "held": True,
            "returned_to": returned_to,
            "rolled_back_by": by,
        }
        event(
            "rollback",
            f"rolled back {app} in {env} to {restored.record.version} "
            f"({commit}); {failed.record.id} is held out",
            app=app,
            environment=env,
            failed_artifact=failed.record.id,
            restored_artifact=restored.record.id,
            commit=commit,
            rolled_back_by=by,
            correlation_id=correlation_id,
        )
        return done

    def automatic(self, record: Deployment, correlation_id: str) -> dict[str, Any] | None:
        """Roll back the failed deployment `record` when its environment's policy says
        so (`rollback.on_failure: automatic`). None when it does not, or when the
        rollback cannot happen now: an alert is logged and the scheduler tries again."""
        rule = self._policy().rollback(record.app, record.environment)
        if rule.on_failure != "automatic" or record.rolled_back_by:
            return None
        try:
            return self.rollback(record.id, AUTOMATIC, correlation_id, None, automatic=True)
        except _NO_ROLLBACK as exc:
            log.warning("ALERT no automatic rollback of %s: %s", record.id, exc)
            return None

    def rollback_due(self, correlation_id: str) -> int:
        """The scheduler's pass: automatic rollbacks that did not happen when the failure
        was reported (the remote was down, say). Only an environment's newest deployment
        counts, and the rollback change itself refuses once the overlay moved on."""
        rolled = 0
        for app in self._artifacts.names():
            for env in self._policy().environment_names:
                latest = next(self._deployments.current_records(app=app, env=env), None)
                if latest is None or latest.status not in FAILED:
                    continue
                if self.automatic(latest, correlation_id) is not None:
                    rolled += 1
        return rolled

    def rolled_back_on_main(self, facts: list[RollbackFact]) -> None:
        """Mark deployments rolled back by commits that reached main another way (a merged
        rollback request). Runs in the main writer's thread: it only queues the writes."""
        for fact in facts:
            record = self._deployments.get(fact.deployment_id) if fact.deployment_id else None
            if record is None or record.rolled_back_by:
                continue
            at = fact.rolled_back_at or stamp(self._clock())
            by, cid = fact.rolled_back_by, fact.correlation_id or fact.commit
            self._mark(record, fact.commit, at, by, cid)

    def _mark(
        self, record: Deployment, commit: str, at: str, by: str, correlation_id: str
    ) -> Future[WriteResult]:
        """Queue the ledger commit that marks `record` rolled back by `commit`."""
        seen = Observation(
            status=record.status, source="ritmo", trigger="rollback", revision=commit,
            at=at, deployed_by=by,
        )  # fmt: skip
        message = self._templates.render(
            "commit/deployment.txt",
            record={**record.to_dict(), "status": "rolled-back"},
            seen=seen,
            correlation_id=correlation_id,
        )
        return self._ledger.submit(_MarkRolledBack(record, commit, at, message))

    def _previous(self, record: Deployment) -> IndexedArtifact:
        """The version to restore: the newest that ran well in the environment, else the
        newest that arrived there, of those that arrived legitimately and are neither
        held nor failed there. When there is none, RollbackRefused says why."""
        app, env = record.app, record.environment
        if self._arrivals is None:
            raise RollbackRefused("Ritmo cannot read how versions arrived; nothing restored")
        with self._mirror.locked():
            tip = self._mirror.tip()
            if tip is None:
                raise RollbackRefused(f"the default branch is empty; nothing to restore in {env}")
            found = self._arrivals(tip)
        ran_well: list[str] = []
        failed_here: set[str] = set()
        seen: set[str] = set()
        for dep in self._deployments.current_records(app=app, env=env):
            artifact_id = dep.artifact_id
            if artifact_id in seen:
                continue  # an artifact's newest deployment there says how it did
            seen.add(artifact_id)
            if dep.status in FAILED:
                failed_here.add(artifact_id)
            elif dep.status == DeploymentStatus.SUCCEEDED and not dep.rolled_back_by:
                ran_well.append(artifact_id)

        def label(artifact_id: str) -> str:
            known = self._artifacts.get(artifact_id)
            return f"{app} {known.record.version}" if known else artifact_id

        def mine(artifact_id: str) -> bool:
            known = self._artifacts.get(artifact_id)
            return known is not None and known.record.name == app

        chosen, why = choose_target(
            found, env, record.artifact_id, ran_well, frozenset(failed_here), label, mine
        )
        restored = self._artifacts.get(chosen) if chosen else None
        if restored is None:
            passed = f" ({'; '.join(why)})" if why else ""
            raise RollbackRefused(
                f"no version of {app} that arrived in {env} by a promotion the policy held "
                f"can be restored{passed}; promote a fixed version instead"
            )
        return restored
