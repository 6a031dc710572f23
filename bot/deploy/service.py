"""DeploymentService: record what the CD engines report, and act on it.

A report is placed (which artifact the environment runs at the revision), recorded as a
signed commit on the ledger branch, mirrored to the forge, and followed up: a failure
rolls back when policy says so, a success lets deployment-gated auto-promotion go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.deploy.forge_target import NotMirrored, forge_target
from bot.deploy.gating import Gating
from bot.deploy.intake import Ignored, Report
from bot.deploy.legitimacy import Arrivals
from bot.deploy.placement import PlacementError, app_environment, pin_of_version, place
from bot.deploy.records import (
    FAILED,
    Observation,
    Placement,
    deployment_path,
    observe,
    parse_deployment,
    render_deployment,
)
from bot.deploy.rollbacks import Rollbacks
from bot.errors import Invalid, NotFound, Refused, Unavailable
from bot.forge import DeploymentView, Forge
from bot.manifests.mirror import Mirror
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.writer import ManifestWriter
from bot.policy.model import Policy
from bot.promotions.requests import RequestService
from bot.promotions.service import PromotionService
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import Deployment
from bot.store.deployments import DeploymentIndex
from bot.store.index import ArtifactIndex, IndexedArtifact
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.templates import Templates
from bot.timestamps import stamp

log = logging.getLogger(__name__)


class Emit(Protocol):
    """Hand an event to the outbox (bot/notify): never raises for a delivery problem."""

    def __call__(
        self,
        event: str,
        record: dict[str, Any],
        environment: str | None,
        correlation_id: str,
        extra: dict[str, Any],
    ) -> None: ...


@dataclass
class Outcome:
    record: Deployment
    created: bool = False
    duplicate: bool = False
    rollback: dict[str, Any] | None = None
    promoted: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out = self.record.to_dict()
        if self.duplicate:
            out["duplicate"] = True
        if self.rollback is not None:
            out["rollback"] = self.rollback
        if self.promoted:
            out["promoted"] = self.promoted
        return out


@dataclass(frozen=True)
class _Observe:
    """Add one observation to a deployment's ledger file (re-planned after a rebase)."""

    place: Placement
    seen: Observation
    message: Callable[[Deployment], str]

    def plan(self, read: Reader) -> Edit | Unchanged:
        path = deployment_path(self.place.app, self.place.environment, self.place.deployment_id)
        data = read(path)
        updated = observe(parse_deployment(data) if data else None, self.place, self.seen)
        if updated is None:
            return Unchanged()
        return Edit({path: render_deployment(updated)}, self.message(updated))


def report_key(report: Report) -> str:
    """Who reported about what: (source, cluster or instance, namespace, name, revision).
    The outcome is compared apart (`report`): the same outcome again is a re-send, another
    one is news, in either direction. A HelmRelease's revision is the pin of its version."""
    parts = (report.source, report.instance, report.namespace or "", report.name, report.revision)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class DeploymentService:
    """Takes deployment reports. What follows from them is its parts': `rollbacks`
    (rollbacks.py) rolls back on a failure or when asked, `gating` (gating.py) promotes
    on out of an environment where a deployment succeeded."""

    def __init__(
        self,
        mirror: Mirror,
        writer: ManifestWriter,
        ledger: ManifestWriter,
        artifacts: ArtifactIndex,
        deployments: DeploymentIndex,
        promotions: PromotionService,
        requests: RequestService,
        templates: Templates,
        policy: Callable[[], Policy],
        forge: Forge,
        emit: Emit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        log_url: Callable[[str], str | None] = lambda name: None,
        arrivals: Callable[[str], Arrivals] | None = None,
    ) -> None:
        self._mirror = mirror
        self._ledger = ledger
        self._artifacts = artifacts
        self.records = deployments  # the ledger's deployments, indexed
        self._templates = templates
        self._policy = policy
        self._forge = forge
        self._emit = emit
        self._clock = clock
        self._log_url = log_url
        self.rollbacks = Rollbacks(
            mirror=mirror, writer=writer, ledger=ledger, artifacts=artifacts,
            deployments=deployments, requests=requests, templates=templates, policy=policy,
            clock=clock, arrivals=arrivals,
        )  # fmt: skip
        self.gating = Gating(
            artifacts=artifacts, deployments=deployments, promotions=promotions, policy=policy,
            clock=clock,
        )  # fmt: skip

    # -- intake -------------------------------------------------------------------
    @traced("ritmo.deploy")
    def report(self, report: Report, correlation_id: str) -> Outcome:
        """A CD engine's report. The outcome its reporter sent last, again, is a duplicate
        that changes nothing; another outcome for the same revision updates the deployment
        (degraded to succeeded, or back), though a late `progressing` never undoes one.

        Raises Ignored for a report Ritmo cannot use (an unknown app, a revision that is
        not the manifests repository's), PlacementError's reason saying why."""
        policy = self._policy()
        try:
            app, env = app_environment(policy, report.name, self._apps())
            if not report.revision:  # a HelmRelease: the pin of the version it names
                with self._mirror.locked():
                    revision = pin_of_version(
                        self._mirror, policy, app, env, report.versions, self._artifacts_of
                    )
                report = dataclasses.replace(report, revision=revision)
        except PlacementError as exc:  # the engine cannot fix it by sending it again
            raise Ignored(exc.reason, exc.message) from None
        key = report_key(report)
        known = self.records.last_report(key)
        if known is not None and known[1] == report.status:
            if (record := self.records.get(known[0])) is not None:
                return Outcome(record, duplicate=True)
        seen = Observation(
            status=report.status,
            source=report.source,
            trigger=report.trigger,
            revision=report.revision,
            at=stamp(self._clock()),
            message=report.message,
            deployed_by=report.source,
            log_url=report.log_url or self._log_url(report.name),
        )
        try:
            outcome = self._observe(app, env, report.revision, seen, correlation_id)
        except PlacementError as exc:
            raise Ignored(exc.reason, exc.message) from None
        self.records.remember_report(key, outcome.record.id, report.status)
        return outcome

    @traced("ritmo.deploy")
    def create(
        self,
        artifact_id: str,
        environment: str,
        seen: Observation,
        correlation_id: str,
    ) -> Outcome:
        """`POST /api/v1/deployments`: a CD system says it deployed the artifact."""
        artifact = self._artifacts.get(artifact_id)
        if artifact is None:
            raise NotFound(f"no artifact {artifact_id!r}", field="artifact_id")
        if environment not in self._policy().environment_names:
            names = ", ".join(self._policy().environment_names)
            raise Invalid(
                f"unknown environment {environment!r}; environments: {names}", field="environment"
            )
        revision = seen.revision
        if not revision:
            with self._mirror.locked():
                revision = self._mirror.fetch() or ""
            seen = dataclasses.replace(seen, revision=revision)
        try:
            return self._observe(
                artifact.record.name, environment, revision, seen, correlation_id, artifact_id
            )
        except PlacementError as exc:
            raise Invalid(exc.message, field=exc.field) from None

    def _observe(
        self,
        app: str,
        env: str,
        revision: str,
        seen: Observation,
        correlation_id: str,
        expected: str | None = None,
    ) -> Outcome:
        policy = self._policy()
        with self._mirror.locked():
            placed = place(
                self._mirror, policy, app, env, revision, self._artifacts.get, self._artifacts_of
            )
            if self._superseded(placed):
                seen = dataclasses.replace(seen, superseded=True)
        if expected is not None and placed.artifact_id != expected:
            raise Refused(
                f"{env} runs {app} {placed.version} ({placed.artifact_id}) at {revision[:12]}, "
                f"not {expected}; promote it to {env} first",
                field="artifact_id",
            )
        before = self.records.get(placed.deployment_id)

        def message(record: Deployment) -> str:
            return self._templates.render(
                "commit/deployment.txt", record=record, seen=seen, correlation_id=correlation_id
            )

        result = self._ledger.write(_Observe(placed, seen, message))
        record = self.records.get(placed.deployment_id)
        if record is None:  # the ledger already said so (another process wrote it)
            raise Unavailable("the deployment ledger is behind; retry")
        outcome = Outcome(record, created=before is None, duplicate=result.commit is None)
        if not outcome.duplicate:
            event(
                "deployment",
                f"deployment {record.id}: {app} {placed.version} in {env} {record.status}",
                deployment_id=record.id,
                artifact_id=placed.artifact_id,
                app=app,
                version=placed.version,
                environment=env,
                status=record.status,
                correlation_id=correlation_id,
            )
        if seen.superseded:
            log.info("%s: a report about %s, older than %s's current pin; kept as history",
                     record.id, revision[:12], env)  # fmt: skip
            return outcome
        if outcome.duplicate or (before is not None and before.status == record.status):
            return outcome
        self._mirror_to_forge(record)
        self._follow_up(outcome, correlation_id)
        return outcome

    def _superseded(self, placed: Placement) -> bool:
        """Whether the report's revision is older than the environment's current pin (it
        does not contain the pin's commit). The caller holds the mirror's lock."""
        tip = self._mirror.tip()
        if tip is None:
            return False
        current = self._mirror.log("-1", "--first-parent", "--format=%H", tip, "--", placed.path)
        pin = current.strip()
        return bool(pin) and not self._mirror.is_ancestor(pin, placed.revision)

    def _apps(self) -> list[str]:
        return self._artifacts.names()

    def _artifacts_of(self, app: str) -> list[IndexedArtifact]:
        return self._artifacts.search(name=app, limit=10_000)[0]

    # -- what follows a new status ----------------------------------------------------
    def _follow_up(self, outcome: Outcome, correlation_id: str) -> None:
        record = outcome.record
        artifact = self._artifacts.get(record.artifact_id)
        data = artifact.record.to_dict() if artifact else {"id": record.artifact_id}
        extra = {"deployment_id": record.id, "status": str(record.status)}
        if record.status == DeploymentStatus.SUCCEEDED:
            self._notify("deployed", data, record.environment, correlation_id, extra)
            outcome.promoted = self.gating.promote_after(record, correlation_id)
        elif record.status in FAILED:
            self._notify("deployment_failed", data, record.environment, correlation_id, extra)
            # When it cannot happen now, the scheduler tries again (rollback_due).
            outcome.rollback = self.rollbacks.automatic(record, correlation_id)
            if outcome.rollback is not None:
                outcome.record = self.records.get(record.id) or record

    def _notify(
        self,
        event: str,
        record: dict[str, Any],
        env: str | None,
        correlation_id: str,
        extra: dict[str, Any],
    ) -> None:
        if self._emit is not None:
            self._emit(event, record, env, correlation_id, extra)

    def _mirror_to_forge(self, record: Deployment) -> None:
        artifact = self._artifacts.get(record.artifact_id)
        meta = dict(artifact.record.metadata or {}) if artifact else {}
        target = forge_target(record.app, self._policy().repository(record.app), meta)
        if isinstance(target, NotMirrored):
            if self._forge.kind != "local":  # the local forge mirrors nothing anyway
                level = logging.INFO if target.expected else logging.WARNING
                log.log(level, "deployment %s is not mirrored to %s: %s",
                        record.id, self._forge.kind, target.reason)  # fmt: skip
            return
        view = DeploymentView(
            id=record.id,
            repository=target.repository,
            environment=record.environment,
            ref=target.ref,
            status=DeploymentStatus.FAILED if record.rolled_back_by else record.status,
            description=f"{record.app} {record.version} in {record.environment}: {record.status}",
            log_url=record.log_url,
            forge_ref=self.records.forge_ref(record.id),
            mirrored_before=len(record.history) > 1,
        )
        try:
            ref = self._forge.deployed(view)
        except Exception as exc:  # mirroring is best effort: the ledger is the record
            log.warning("could not mirror %s to the forge: %s", record.id, exc)
            return
        if ref:
            self.records.set_forge_ref(record.id, ref)

    def current(self, app: str, env: str) -> Deployment | None:
        """The newest deployment of the app in the environment (superseded reports are
        history, not what runs)."""
        return next(self.records.current_records(app=app, env=env), None)
