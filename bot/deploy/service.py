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
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.deploy.forge_target import NotMirrored, forge_target
from bot.deploy.gate import deployment_gate
from bot.deploy.intake import Ignored, Report
from bot.deploy.legitimacy import Arrivals, choose_target
from bot.deploy.placement import PlacementError, app_environment, pin_of_version, place
from bot.deploy.records import (
    FAILED,
    Observation,
    Placement,
    deployment_path,
    mark_rolled_back,
    observe,
    parse_deployment,
    render_deployment,
)
from bot.deploy.rollback import RollbackChange, RollbackRefused
from bot.errors import Forbidden, Invalid, NotFound, Refused, Unavailable
from bot.forge import DeploymentView, Forge
from bot.manifests.mirror import Mirror
from bot.manifests.writer import (
    Conflict,
    Edit,
    ManifestWriter,
    Reader,
    Unchanged,
    WriteResult,
    WriteUnavailable,
)
from bot.policy.model import Policy
from bot.promotions.requests import RequestService, RollbackAsk
from bot.promotions.service import PromotionInput, PromotionRefused, PromotionService, frozen
from bot.store.deployments import DeploymentIndex
from bot.store.index import ArtifactIndex, IndexedArtifact, RollbackFact
from bot.telemetry.events import event
from bot.telemetry.tracing import traced
from bot.templates import Templates
from bot.timestamps import stamp

log = logging.getLogger(__name__)

AUTOMATIC = "ritmo (automatic)"

# What keeps an automatic rollback from happening now; the scheduler tries again.
_NO_ROLLBACK = (RollbackRefused, NotFound, Forbidden, WriteUnavailable)


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
    record: dict[str, Any]
    created: bool = False
    duplicate: bool = False
    rollback: dict[str, Any] | None = None
    promoted: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.record}
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
    message: Callable[[dict[str, Any]], str]

    def plan(self, read: Reader) -> Edit | Unchanged:
        path = deployment_path(self.place.app, self.place.environment, self.place.deployment_id)
        data = read(path)
        updated = observe(parse_deployment(data) if data else None, self.place, self.seen)
        if updated is None:
            return Unchanged()
        return Edit({path: render_deployment(updated)}, self.message(updated))


@dataclass(frozen=True)
class _MarkRolledBack:
    record: dict[str, Any]
    commit: str
    at: str
    message: str

    def plan(self, read: Reader) -> Edit | Unchanged:
        path = deployment_path(self.record["app"], self.record["environment"], self.record["id"])
        data = read(path)
        if data is None:
            raise Conflict(f"no deployment record at {path}")
        current = parse_deployment(data)
        if current.get("rolled_back_by"):
            return Unchanged()
        updated = mark_rolled_back(current, self.commit, self.at)
        return Edit({path: render_deployment(updated)}, self.message)


def report_key(report: Report) -> str:
    """Who reported about what: (source, cluster or instance, namespace, name, revision).
    The outcome is compared apart (`report`): the same outcome again is a re-send, another
    one is news, in either direction. A HelmRelease's revision is the pin of its version."""
    parts = (report.source, report.instance, report.namespace or "", report.name, report.revision)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class DeploymentService:
    def __init__(
        self,
        mirror: Mirror,
        writer: ManifestWriter,
        ledger: ManifestWriter,
        index: ArtifactIndex,
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
        self._writer = writer
        self._ledger = ledger
        self._index = index
        self.index = deployments
        self._promotions = promotions
        self._requests = requests
        self._templates = templates
        self._policy = policy
        self._forge = forge
        self._emit = emit
        self._clock = clock
        self._log_url = log_url
        # How versions arrived in environments, read from git at a tip (provenance.py).
        self._arrivals = arrivals

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
        known = self.index.last_report(key)
        if known is not None and known[1] == report.status:
            if (record := self.index.get(known[0])) is not None:
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
        self.index.remember_report(key, outcome.record["id"], report.status)
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
        artifact = self._index.get(artifact_id)
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
                artifact.record["name"], environment, revision, seen, correlation_id, artifact_id
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
                self._mirror, policy, app, env, revision, self._index.get, self._artifacts_of
            )
            if self._superseded(placed):
                seen = dataclasses.replace(seen, superseded=True)
        if expected is not None and placed.artifact_id != expected:
            raise Refused(
                f"{env} runs {app} {placed.version} ({placed.artifact_id}) at {revision[:12]}, "
                f"not {expected}; promote it to {env} first",
                field="artifact_id",
            )
        before = self.index.get(placed.deployment_id)

        def message(record: dict[str, Any]) -> str:
            return self._templates.render(
                "commit/deployment.txt", record=record, seen=seen, correlation_id=correlation_id
            )

        result = self._ledger.write(_Observe(placed, seen, message))
        record = self.index.get(placed.deployment_id)
        if record is None:  # the ledger already said so (another process wrote it)
            raise Unavailable("the deployment ledger is behind; retry")
        outcome = Outcome(record, created=before is None, duplicate=result.commit is None)
        if not outcome.duplicate:
            event(
                "deployment",
                f"deployment {record['id']}: {app} {placed.version} in {env} {record['status']}",
                deployment_id=record["id"],
                artifact_id=placed.artifact_id,
                app=app,
                version=placed.version,
                environment=env,
                status=record["status"],
                correlation_id=correlation_id,
            )
        if seen.superseded:
            log.info("%s: a report about %s, older than %s's current pin; kept as history",
                     record["id"], revision[:12], env)  # fmt: skip
            return outcome
        if outcome.duplicate or (before is not None and before["status"] == record["status"]):
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
        return self._index.names()

    def _artifacts_of(self, app: str) -> list[IndexedArtifact]:
        return self._index.search(name=app, limit=10_000)[0]

    # -- what follows a new status ----------------------------------------------------
    def _follow_up(self, outcome: Outcome, correlation_id: str) -> None:
        record = outcome.record
        artifact = self._index.get(record["artifact_id"])
        data = artifact.record if artifact else {"id": record["artifact_id"]}
        extra = {"deployment_id": record["id"], "status": record["status"]}
        if record["status"] == "succeeded":
            self._notify("deployed", data, record["environment"], correlation_id, extra)
            outcome.promoted = self.promote_after(record, correlation_id)
        elif record["status"] in FAILED:
            self._notify("deployment_failed", data, record["environment"], correlation_id, extra)
            rule = self._policy().rollback(record["app"], record["environment"])
            if rule.on_failure == "automatic" and not record.get("rolled_back_by"):
                try:
                    outcome.rollback = self.rollback(
                        record["id"], AUTOMATIC, correlation_id, reason=None, automatic=True
                    )
                    outcome.record = self.index.get(record["id"]) or record
                except _NO_ROLLBACK as exc:
                    # The scheduler tries again (rollback_due).
                    log.warning("ALERT no automatic rollback of %s: %s", record["id"], exc)

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

    def _mirror_to_forge(self, record: dict[str, Any]) -> None:
        artifact = self._index.get(record["artifact_id"])
        meta = dict(artifact.record.get("metadata") or {}) if artifact else {}
        target = forge_target(record["app"], self._policy().repository(record["app"]), meta)
        if isinstance(target, NotMirrored):
            if self._forge.kind != "local":  # the local forge mirrors nothing anyway
                level = logging.INFO if target.expected else logging.WARNING
                log.log(level, "deployment %s is not mirrored to %s: %s",
                        record["id"], self._forge.kind, target.reason)  # fmt: skip
            return
        view = DeploymentView(
            id=record["id"],
            repository=target.repository,
            environment=record["environment"],
            ref=target.ref,
            status="failed" if record.get("rolled_back_by") else record["status"],
            description=f"{record['app']} {record['version']} in {record['environment']}: "
            f"{record['status']}",
            log_url=record.get("log_url"),
            forge_ref=self.index.forge_ref(record["id"]),
            mirrored_before=len(record.get("history") or []) > 1,
        )
        try:
            ref = self._forge.deployed(view)
        except Exception as exc:  # mirroring is best effort: the ledger is the record
            log.warning("could not mirror %s to the forge: %s", record["id"], exc)
            return
        if ref:
            self.index.set_forge_ref(record["id"], ref)

    def current(self, app: str, env: str) -> dict[str, Any] | None:
        """The newest deployment of the app in the environment (superseded reports are
        history, not what runs)."""
        return next(self.index.current_records(app=app, env=env), None)

    # -- rollback -----------------------------------------------------------------
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
        `promotions:write`); a `deployments:write` caller may not (403). A request opens
        instead (status "pending"), judged by the rule into the environment, for a
        failed deployment where `rollback.requires_approval` is true, and for a healthy
        one where the rule into the environment requires approval, unless the
        environment's `rollback.requires_approval` is explicitly false."""
        record = self.index.get(deployment_id)
        if record is None:
            raise NotFound(f"no deployment {deployment_id!r}")
        status = record["status"]
        healthy = status not in FAILED
        if healthy and not healthy_too:
            raise Forbidden(
                f"{deployment_id} is {status}: a deployments:write token rolls back only a "
                "failed or degraded deployment; rolling back another needs promotions:write",
                field="scope",
            )
        if record.get("rolled_back_by"):
            raise RollbackRefused(
                f"{deployment_id} was rolled back already by {record['rolled_back_by']}"
            )
        if record.get("superseded"):
            raise RollbackRefused(
                f"{deployment_id} is a report about a revision older than the current pin of "
                f"{record['environment']} (history only); roll back the current deployment"
            )
        failed = self._index.get(record["artifact_id"])
        if failed is None:
            raise RollbackRefused(f"no artifact {record['artifact_id']} is recorded")
        restored = self._previous(record)
        policy = self._policy()
        app, env = record["app"], record["environment"]
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
            why = reason or f"Rollback of {failed.record['version']} asked for by {by}"
            ask = PromotionInput(returned_to or env, env, notes=why)
            asked = RollbackAsk(failed.record["id"], deployment_id, returned_to)
            try:
                opened = self._requests.open(restored, ask, rule, by, correlation_id, asked)
            except PromotionRefused as exc:
                raise RollbackRefused(str(exc)) from None
            return {
                "status": "pending",
                "request": opened,
                "environment": env,
                "failed_artifact": failed.record["id"],
                "restored_artifact": restored.record["id"],
                "restored_version": restored.record["version"],
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
            "environment": env,
            "failed_artifact": failed.record["id"],
            "restored_artifact": restored.record["id"],
            "restored_version": restored.record["version"],
            "held": True,
            "returned_to": returned_to,
            "rolled_back_by": by,
        }
        event(
            "rollback",
            f"rolled back {app} in {env} to {restored.record['version']} "
            f"({commit}); {failed.record['id']} is held out",
            app=app,
            environment=env,
            failed_artifact=failed.record["id"],
            restored_artifact=restored.record["id"],
            commit=commit,
            rolled_back_by=by,
            correlation_id=correlation_id,
        )
        return done

    def rolled_back_on_main(self, facts: list[RollbackFact]) -> None:
        """Mark deployments rolled back by commits that reached main another way (a merged
        rollback request). Runs in the main writer's thread: it only queues the writes."""
        for fact in facts:
            record = self.index.get(fact.deployment_id) if fact.deployment_id else None
            if record is None or record.get("rolled_back_by"):
                continue
            at = fact.rolled_back_at or stamp(self._clock())
            by, cid = fact.rolled_back_by, fact.correlation_id or fact.commit
            self._mark(record, fact.commit, at, by, cid)

    def _mark(
        self, record: dict[str, Any], commit: str, at: str, by: str, correlation_id: str
    ) -> Future[WriteResult]:
        """Queue the ledger commit that marks `record` rolled back by `commit`."""
        seen = Observation(
            status=record["status"], source="ritmo", trigger="rollback", revision=commit,
            at=at, deployed_by=by,
        )  # fmt: skip
        message = self._templates.render(
            "commit/deployment.txt",
            record={**record, "status": "rolled-back"},
            seen=seen,
            correlation_id=correlation_id,
        )
        return self._ledger.submit(_MarkRolledBack(record, commit, at, message))

    def _previous(self, record: dict[str, Any]) -> IndexedArtifact:
        """The version to restore: the newest that ran well in the environment, else the
        newest that arrived there, of those that arrived legitimately and are neither
        held nor failed there. When there is none, RollbackRefused (409) says why."""
        app, env = record["app"], record["environment"]
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
        for dep in self.index.current_records(app=app, env=env):
            artifact_id = dep["artifact_id"]
            if artifact_id in seen:
                continue  # an artifact's newest deployment there says how it did
            seen.add(artifact_id)
            if dep["status"] in FAILED:
                failed_here.add(artifact_id)
            elif dep["status"] == "succeeded" and not dep.get("rolled_back_by"):
                ran_well.append(artifact_id)

        def label(artifact_id: str) -> str:
            known = self._index.get(artifact_id)
            return f"{app} {known.record['version']}" if known else artifact_id

        def mine(artifact_id: str) -> bool:
            known = self._index.get(artifact_id)
            return known is not None and known.record["name"] == app

        chosen, why = choose_target(
            found, env, record["artifact_id"], ran_well, frozenset(failed_here), label, mine
        )
        restored = self._index.get(chosen) if chosen else None
        if restored is None:
            passed = f" ({'; '.join(why)})" if why else ""
            raise RollbackRefused(
                f"no version of {app} that arrived in {env} by a promotion the policy held "
                f"can be restored{passed}; promote a fixed version instead"
            )
        return restored

    # -- deployment-gated auto-promotion ------------------------------------------------
    def promote_after(self, record: dict[str, Any], correlation_id: str) -> list[dict[str, Any]]:
        """Auto-promote the artifact out of an environment where it now runs well, when
        the next rule auto-promotes on a deployment (and its soak is over)."""
        done: list[dict[str, Any]] = []
        policy = self._policy()
        app, env = record["app"], record["environment"]
        nxt = policy.next_environment(env) if env in policy.environment_names else None
        rule = policy.rule(app, env, nxt) if nxt else None
        if rule is None or not rule.auto_promote or not rule.gated_on_deployment:
            return done
        if record.get("superseded"):
            return done  # a report about an older revision is history, not a gate
        artifact = self._index.get(record["artifact_id"])
        if artifact is None or artifact.promotion_status != env or record.get("rolled_back_by"):
            return done
        if self._index.held(artifact.record["id"], rule.to_env):
            log.info("%s is held out of %s by a rollback", artifact.record["id"], rule.to_env)
            return done
        now = self._clock()
        label = f"{app} {artifact.record['version']}"
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
        for record in self.index.search(status="succeeded", limit=1000)[0]:
            where = (record["app"], record["environment"])
            if where in seen or record.get("superseded"):
                continue
            seen.add(where)
            promoted += len(self.promote_after(record, correlation_id))
        return promoted

    def rollback_due(self, correlation_id: str) -> int:
        """The scheduler's pass: automatic rollbacks that did not happen when the failure
        was reported (the remote was down, say). Only an environment's newest deployment
        counts, and the rollback change itself refuses once the overlay moved on."""
        rolled = 0
        for app in self._apps():
            for env in self._policy().environment_names:
                latest = self.current(app, env)
                if latest is None or latest["status"] not in FAILED:
                    continue
                if latest.get("rolled_back_by"):
                    continue
                if self._policy().rollback(app, env).on_failure != "automatic":
                    continue
                try:
                    self.rollback(latest["id"], AUTOMATIC, correlation_id, None, automatic=True)
                    rolled += 1
                except _NO_ROLLBACK as exc:
                    log.warning("ALERT no automatic rollback of %s: %s", latest["id"], exc)
        return rolled
