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
    Ignored,
    NotADeployment,
    Report,
    _fail,
    _load,
    _message,
    _name,
    _namespace,
    _show,
    _string,
    _token,
)
from bot.statuses import DeploymentStatus

# Flux objects whose events are deployments; any other kind is not Ritmo's business.
FLUX_KINDS = frozenset({"Kustomization", "HelmRelease"})
FLUX_SUCCESS_REASONS = frozenset(
    {"ReconciliationSucceeded", "InstallSucceeded", "UpgradeSucceeded", "TestSucceeded"}
)
# The metadata keys a Kustomization event may carry a commit under, in the order Flux
# itself reads them (eventv1.Event.GetRevision).
FLUX_REVISION_KEYS = ("commit", "originRevision", "revision")
# helm-controller's event metadata (internal/reconcile/release.go): "revision" is the
# chart version, "app-version" the chart's appVersion. Its "token" never reaches a
# Provider, and "oci-digest" names the chart artifact, not what runs.
HELM_VERSION_KEYS = ("revision", "app-version")
READ_KEYS = frozenset({*FLUX_REVISION_KEYS, *HELM_VERSION_KEYS})
UID_LIMIT = 64
UID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]*")
# A 40-hex commit, bare or as Flux writes it: "main@sha1:<sha>", "sha1:<sha>", or the
# pre-2.0 "main/<sha>" (the branch itself may hold slashes).
FLUX_REVISION = re.compile(r"(?:(?:.*@)?sha1:|.*/)?(?P<sha>[0-9a-fA-F]{40})", re.DOTALL)


def parse_flux(body: bytes) -> Report:
    """A notification-controller `Event` about a Kustomization or HelmRelease.

    A Kustomization's event names the git commit it applied; a HelmRelease's names the
    chart version and app version it deployed (helm-controller sends no commit), which the
    deployment service matches against the versions recorded for the app. Raises
    NotADeployment for events about other kinds (sources, image automation), and Ignored
    ("no-revision") for an event that names neither (a dependency not ready, say)."""
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
    uid = _string(involved, "uid", UID_LIMIT, field="involvedObject.uid")
    if uid and not UID.fullmatch(uid):
        _fail("involvedObject.uid", f"{_show(uid)} is not a Kubernetes object uid")
    severity = _string(data, "severity", TOKEN_LIMIT)
    if severity not in ("info", "error", "trace"):
        _fail("severity", f"{_show(severity)} is not a Flux severity (info, error)")
    reason = _token(data, "reason")
    if not reason:
        _fail("reason", "missing: a Flux event names its reason (ReconciliationSucceeded...)")
    metadata = flux_metadata(data.get("metadata"))
    versions: tuple[str, ...] = ()
    if kind == "HelmRelease":
        revision, versions = "", helm_versions(metadata)
    else:
        revision = flux_revision(metadata)
    return Report(
        source="flux",
        name=name,
        revision=revision,
        trigger=reason,
        status=flux_status(severity, reason),
        message=_message(data),
        log_url=None,
        namespace=namespace,
        # The object's uid tells one cluster's web-production from another's.
        instance=uid,
        versions=versions,
    )


def flux_status(severity: str, reason: str) -> DeploymentStatus:
    if severity == "error":
        return (
            DeploymentStatus.DEGRADED if reason == "HealthCheckFailed" else DeploymentStatus.FAILED
        )
    if reason in FLUX_SUCCESS_REASONS:
        return DeploymentStatus.SUCCEEDED
    return DeploymentStatus.PROGRESSING


def flux_metadata(raw: Any) -> dict[str, str]:
    """An event's metadata with the API group prefixes stripped, as notification-controller
    forwards it ("kustomize.toolkit.fluxcd.io/revision" -> "revision"); an event a
    controller posts directly still has them."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _fail("metadata", "must be an object of strings")
    out: dict[str, str] = {}
    for key, value in raw.items():
        short = str(key).rpartition("/")[2]
        if not isinstance(value, str):
            _fail("metadata", f"{_show(str(key))} must be a string, not {type(value).__name__}")
        if short in READ_KEYS and len(value) > REVISION_LIMIT:
            _fail(f"metadata.{short}", f"longer than {REVISION_LIMIT} characters")
        out.setdefault(short, value)
    return out


def flux_revision(metadata: Mapping[str, str]) -> str:
    """The git commit a Kustomization event's metadata names, lowercase.

    "revision" is "main@sha1:<sha>" (or "main/<sha>" before Flux 2.0) for a GitRepository
    source; for an OCIRepository it is "<tag>@sha256:<digest>", and "originRevision" holds
    the commit when the artifact recorded one. Raises Ignored("no-revision") otherwise."""
    values = flux_metadata(metadata)
    for key in FLUX_REVISION_KEYS:
        found = FLUX_REVISION.fullmatch(values.get(key, "").strip())
        if found:
            return found["sha"].lower()
    seen = "; ".join(f"{k}={_show(values[k])}" for k in FLUX_REVISION_KEYS if k in values)
    raise Ignored(
        "no-revision",
        f"no git commit sha in the event's metadata ({seen or 'none'}): Ritmo records "
        "Kustomizations that apply a GitRepository (or an OCI artifact that records its "
        "origin revision)",
    )


def helm_versions(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """What a HelmRelease event says it deployed: the chart version ("revision") and the
    chart's appVersion ("app-version"), as helm-controller's eventMeta sets them. Raises
    Ignored("no-revision") when it names neither (a values error, a dependency not ready)."""
    found = [metadata.get(key, "").strip() for key in HELM_VERSION_KEYS]
    versions = tuple(dict.fromkeys(v for v in found if v and len(v) <= TOKEN_LIMIT))
    if not versions:
        raise Ignored(
            "no-revision",
            "the HelmRelease event names no chart version nor app version; Ritmo records "
            "the install, upgrade and test events, which do",
        )
    return versions
