"""Deployment records: what the CD engines said about a pin, kept on the ledger branch (pure).

A deployment is one pin of an app's overlay (the commit on the default branch that set
the version an environment runs) as the CD engine realised it. Its id comes from
(app, environment, pin commit), so ArgoCD's retries, Flux's re-sends and a CD system's
own `POST /api/v1/deployments` all land on the same record.

Records live on a branch of their own (LEDGER_BRANCH) rather than the default branch: a
commit on the default branch makes ArgoCD and Flux sync again, and a sync reported back
would write again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from bot import bounded_yaml
from bot.manifests.records import API_VERSION, render_record
from bot.statuses import DeploymentStatus
from bot.store.deployment_record import Deployment

LEDGER_BRANCH = "ritmo/deployments"
DEPLOYMENTS_DIR = "deployments"
FAILED = frozenset({DeploymentStatus.FAILED, DeploymentStatus.DEGRADED})
SUCCEEDED, PROGRESSING = DeploymentStatus.SUCCEEDED, DeploymentStatus.PROGRESSING
HISTORY_LIMIT = 50  # a flapping app must not grow its record without bound
# The actor Ritmo's own rollbacks and deployment-gated promotions are recorded as.
AUTOMATIC = "ritmo (automatic)"


def deployment_id(app: str, environment: str, pin_commit: str) -> str:
    return "dep-" + hashlib.sha256(f"{app}\0{environment}\0{pin_commit}".encode()).hexdigest()[:20]


def deployment_path(app: str, environment: str, dep_id: str) -> str:
    return f"{DEPLOYMENTS_DIR}/{app}/{environment}/{dep_id}.yaml"


@dataclass(frozen=True)
class Placement:
    """What an environment runs at a revision: the pinned artifact and the commit that pinned it."""

    app: str
    environment: str
    artifact_id: str
    version: str
    pin_commit: str
    revision: str
    path: str  # the overlay

    @property
    def deployment_id(self) -> str:
        return deployment_id(self.app, self.environment, self.pin_commit)


@dataclass(frozen=True)
class Observation:
    """One report: a CD engine's event, or a CD system's API call."""

    status: DeploymentStatus
    source: str  # argocd, flux, api
    trigger: str
    revision: str
    at: str  # UTC, 2026-11-26T01:02:03Z
    message: str = ""
    deployed_by: str | None = None
    log_url: str | None = None
    target_type: str | None = None
    target_url: str | None = None
    # About a revision older than the environment's current pin: history only.
    superseded: bool = False


def new_record(place: Placement, seen: Observation) -> Deployment:
    return Deployment(
        api_version=API_VERSION,
        id=place.deployment_id,
        app=place.app,
        environment=place.environment,
        artifact_id=place.artifact_id,
        version=place.version,
        pin_commit=place.pin_commit,
        overlay=place.path,
        status=seen.status,
        revision=seen.revision,
        deployed_by=seen.deployed_by or seen.source,
        target_type=seen.target_type,
        target_url=seen.target_url,
        log_url=seen.log_url,
        created_at=seen.at,
        updated_at=seen.at,
        succeeded_at=seen.at if seen.status == SUCCEEDED and not seen.superseded else None,
        superseded=seen.superseded,
    )


def observe(record: Deployment | None, place: Placement, seen: Observation) -> Deployment | None:
    """The record after `seen`, or None when it adds nothing (a re-sent report, or the
    outcome the record already has at that revision).

    Once a deployment has an outcome, a late `progressing` does not take it back: ArgoCD
    and Flux retry, so reports arrive out of order. Outcomes replace each other, as often
    as they change (a succeeded deployment can degrade, a degraded one recover, and
    degrade again). A superseded report (about
    a revision older than the environment's current pin) is kept in the history only: it
    changes no status, and a record it creates is marked `superseded`.
    """
    # History entries hold the status as plain text, as YAML knows no enums.
    entry: dict[str, Any] = {
        "at": seen.at,
        "status": str(seen.status),
        "source": seen.source,
        "trigger": seen.trigger,
        "revision": seen.revision,
    }
    if seen.message:
        entry["message"] = seen.message
    if seen.superseded:
        entry["superseded"] = True
    if record is None:
        return replace(new_record(place, seen), history=(entry,))
    if _adds_nothing(record, seen, entry):
        return None
    changes: dict[str, Any] = {"history": (*record.history, entry)[-HISTORY_LIMIT:]}
    if seen.superseded:
        return replace(record, **changes)
    if not (seen.status == PROGRESSING and record.status != PROGRESSING):
        changes.update(status=seen.status, revision=seen.revision, updated_at=seen.at)
        if seen.status == SUCCEEDED and not record.succeeded_at:
            changes["succeeded_at"] = seen.at
    for key in ("log_url", "target_type", "target_url"):
        value = getattr(seen, key)
        if value:
            changes[key] = value
    if seen.deployed_by:
        changes["deployed_by"] = seen.deployed_by
    return replace(record, **changes)


def _adds_nothing(record: Deployment, seen: Observation, entry: dict[str, Any]) -> bool:
    if any(
        getattr(seen, key) and getattr(seen, key) != getattr(record, key)
        for key in ("log_url", "target_type", "target_url")
    ):
        return False  # a new link
    history = record.history
    last = {k: v for k, v in history[-1].items() if k != "at"} if history else None
    if last == {k: v for k, v in entry.items() if k != "at"}:
        return True  # the newest report, sent again
    # Flux says ReconciliationSucceeded again on every interval, with a new duration in
    # the message: the same outcome at the same revision is not news.
    same = seen.status == record.status and seen.revision == record.revision
    return same and not seen.superseded


def mark_rolled_back(record: Deployment, commit: str, at: str) -> Deployment:
    return replace(record, rolled_back_by=commit, updated_at=at)


def render_deployment(record: Deployment) -> bytes:
    return render_record(record.to_dict())


def parse_deployment(data: bytes, source: str = "deployment record") -> Deployment:
    """Raises ValueError for YAML that is not a deployment record."""
    loaded = bounded_yaml.load(data, source)
    if not isinstance(loaded, dict):
        raise ValueError("not a Deployment record")
    return Deployment.from_dict(loaded)
