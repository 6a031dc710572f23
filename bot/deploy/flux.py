"""What Flux's notification-controller sends about a Kustomization or HelmRelease (pure).

Its `generic-hmac` Provider (templates/flux/ritmo-alert.yaml) posts the `Event` JSON;
authentication (`check_flux_signature`) and the shared reading of hostile JSON live in
bot/deploy/intake.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.deploy.intake import (
    REVISION_LIMIT,
    TOKEN_LIMIT,
    NotADeployment,
    Report,
    Status,
    _fail,
    _load,
    _message,
    _name,
    _namespace,
    _show,
    _string,
    _token,
)

# Flux objects whose events are deployments; any other kind is not Ritmo's business.
FLUX_KINDS = frozenset({"Kustomization", "HelmRelease"})
FLUX_SUCCESS_REASONS = frozenset(
    {"ReconciliationSucceeded", "InstallSucceeded", "UpgradeSucceeded"}
)
# The metadata keys a Flux event may carry a revision under, in the order Flux itself
# reads them (eventv1.Event.GetRevision). Controllers prefix them with their API group
# ("kustomize.toolkit.fluxcd.io/revision"); notification-controller versions differ on
# whether the prefix survives forwarding, so both spellings are read.
FLUX_REVISION_KEYS = ("commit", "originRevision", "revision")
# A 40-hex commit, bare or as Flux writes it: "main@sha1:<sha>", "sha1:<sha>", or the
# pre-2.0 "main/<sha>" (the branch itself may hold slashes).
FLUX_REVISION = re.compile(r"(?:(?:.*@)?sha1:|.*/)?(?P<sha>[0-9a-fA-F]{40})", re.DOTALL)


def parse_flux(body: bytes) -> Report:
    """A notification-controller `Event` about a Kustomization or HelmRelease.

    Raises NotADeployment for events about other kinds (sources, image automation)."""
    data = _load(body)
    involved = data.get("involvedObject")
    if not isinstance(involved, dict):
        _fail("involvedObject", "missing: send the Flux Event JSON of a generic-hmac Provider")
    kind = _token(involved, "kind", field="involvedObject.kind")
    if not kind:
        _fail("involvedObject.kind", "missing: a Flux event names the kind of its object")
    if kind not in FLUX_KINDS:
        raise NotADeployment(
            "involvedObject.kind",
            f"{_show(kind)} is not a deployment: Ritmo reads Kustomization and HelmRelease "
            "events; narrow the Alert's eventSources to those kinds",
        )
    name = _name(involved, "name", field="involvedObject.name")
    namespace = _namespace(involved, "namespace", field="involvedObject.namespace")
    severity = _string(data, "severity", TOKEN_LIMIT)
    if severity not in ("info", "error", "trace"):
        _fail("severity", f"{_show(severity)} is not a Flux severity (info, error)")
    reason = _token(data, "reason")
    if not reason:
        _fail("reason", "missing: a Flux event names its reason (ReconciliationSucceeded...)")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        _fail("metadata", "must be an object of strings")
    revision = flux_revision(metadata or {})
    return Report(
        source="flux",
        name=name,
        revision=revision,
        trigger=reason,
        status=flux_status(severity, reason),
        message=_message(data),
        log_url=None,
        namespace=namespace,
    )


def flux_status(severity: str, reason: str) -> Status:
    if severity == "error":
        return "degraded" if reason == "HealthCheckFailed" else "failed"
    if reason in FLUX_SUCCESS_REASONS:
        return "succeeded"
    return "progressing"


def flux_revision(metadata: Mapping[str, Any]) -> str:
    """The git commit a Flux event's metadata names, lowercase.

    Kustomizations carry "revision" ("main@sha1:<sha>", or "main/<sha>" before Flux 2.0);
    HelmReleases carry the chart version there and the commit, when the chart came from a
    git or OCI source built from git, as "originRevision"."""
    values: dict[str, list[str]] = {key: [] for key in FLUX_REVISION_KEYS}
    for key, value in metadata.items():
        short = str(key).rpartition("/")[2]
        if short in values and isinstance(value, str):
            values[short].append(value)
    for key in FLUX_REVISION_KEYS:
        for value in values[key]:
            if len(value) > REVISION_LIMIT:
                _fail("metadata.revision", f"longer than {REVISION_LIMIT} characters")
            found = FLUX_REVISION.fullmatch(value.strip())
            if found:
                return found["sha"].lower()
    seen = "; ".join(f"{k}={_show(v)}" for k in FLUX_REVISION_KEYS for v in values[k]) or "none"
    _fail(
        "metadata.revision",
        f"no git commit sha in the event's metadata ({seen}): the Kustomization or "
        "HelmRelease must come from a GitRepository (or an OCI artifact that records its "
        "origin revision)",
    )
