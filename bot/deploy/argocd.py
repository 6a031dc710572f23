"""What ArgoCD's notifications controller sends about a sync (pure).

ArgoCD has no fixed body: Ritmo ships the notification templates
(templates/argocd/argocd-notifications-cm.yaml), so `parse_argocd` reads exactly what
those templates render. The shared reading of hostile JSON lives in bot/deploy/intake.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bot.deploy.intake import (
    REVISION_LIMIT,
    SHA,
    TOKEN_LIMIT,
    Ignored,
    Report,
    _fail,
    _load,
    _message,
    _name,
    _namespace,
    _show,
    _string,
    _token,
    _url,
)
from bot.statuses import DeploymentStatus
from bot.timestamps import parse

REVISIONS_LIMIT = 64  # sources in one multi-source Application
TIMESTAMP_LIMIT = 64
ZONE = re.compile(r"(?:[Zz]|[+-][0-9:.]+)$")  # after the date: Z, +01:00, -0500

# The triggers the shipped ArgoCD ConfigMap defines, each sending its own template whose
# body names the trigger literally.
ARGOCD_TRIGGERS = frozenset(
    {"on-sync-succeeded", "on-sync-failed", "on-health-degraded", "on-deployed", "on-sync-running"}
)


def parse_argocd(body: bytes) -> Report:
    """The report the shipped `template.ritmo-<trigger>` renders:

    {"trigger": "on-deployed", "app": "web-production", "namespace": "argocd",
     "revision": "<40 hex or empty>", "revisions": ["<one per source>"],
     "phase": "Succeeded", "startedAt": "2026-12-03T10:05:00Z",
     "health": "Healthy", "healthChangedAt": "2026-12-03T10:06:10Z",
     "message": "successfully synced (all tasks run)",
     "url": "https://argocd.example.com/applications/web-production"}

    Raises Ignored when neither `revision` nor `revisions` holds a 40-hex commit (a Helm
    chart or OCI source alone, or a sync that failed before resolving one).
    """
    data = _load(body)
    trigger = _string(data, "trigger", TOKEN_LIMIT)
    if trigger not in ARGOCD_TRIGGERS:
        _fail(
            "trigger",
            f"unknown trigger {trigger!r}: expected one of {', '.join(sorted(ARGOCD_TRIGGERS))}; "
            "install Ritmo's argocd-notifications-cm templates unchanged",
        )
    name = _name(data, "app")
    namespace = _namespace(data, "namespace")
    revision = argocd_revision(data)
    phase = _token(data, "phase")
    health = _token(data, "health")
    started = _timestamp(data, "startedAt")
    health_changed = _timestamp(data, "healthChangedAt")
    fresh = started is not None and health_changed is not None and health_changed > started
    log_url = _url(data, "url")
    return Report(
        source="argocd",
        name=name,
        revision=revision,
        trigger=trigger,
        status=argocd_status(trigger, phase, health, health_since_sync=fresh),
        message=_message(data),
        log_url=log_url,
        namespace=namespace,
        # The ArgoCD instance the link points at: one app name in two instances is two apps.
        instance=urlsplit(log_url).netloc.lower() if log_url else "",
    )


def argocd_revision(data: Mapping[str, Any]) -> str:
    """The synced commit, lowercase: `revision` when it is a 40-hex sha, else the first
    sha in `revisions` (a multi-source Application: one revision per source, a chart
    version for a Helm source)."""
    revision = _string(data, "revision", REVISION_LIMIT)
    revisions = data.get("revisions")
    if revisions is None:
        revisions = []
    if not isinstance(revisions, list) or len(revisions) > REVISIONS_LIMIT:
        _fail("revisions", f"must be a list of at most {REVISIONS_LIMIT} strings")
    for index, value in enumerate(revisions):
        if not isinstance(value, str) or len(value) > REVISION_LIMIT:
            _fail(f"revisions[{index}]", f"must be a string of at most {REVISION_LIMIT} characters")
    candidates: list[str] = [revision, *revisions]
    for candidate in candidates:
        if SHA.fullmatch(candidate):
            return candidate.lower()
    seen = ", ".join(_show(v) for v in candidates[:4] if v) or "none"
    raise Ignored(
        "no-revision",
        f"no 40-hex git commit in revision or revisions ({seen}): Ritmo records syncs of a "
        "git source (the manifests repository); a Helm chart or OCI source alone has none",
    )


def argocd_status(
    trigger: str, phase: str, health: str, *, health_since_sync: bool = False
) -> DeploymentStatus:
    """An ArgoCD notification's outcome; the first rule that holds wins.

    A Healthy status is only a success when on-deployed says so, or when it changed after
    the sync started (`health_since_sync`): on-sync-succeeded fires as the sync ends,
    while the health it carries may still be the previous version's (argo-cd #9070)."""
    if trigger == "on-sync-failed" or phase in ("Failed", "Error"):
        return DeploymentStatus.FAILED
    if trigger == "on-health-degraded" or health == "Degraded":
        return DeploymentStatus.DEGRADED
    if trigger == "on-deployed" or (
        phase == "Succeeded" and health == "Healthy" and health_since_sync
    ):
        return DeploymentStatus.SUCCEEDED
    # on-sync-running, phase Running, health Progressing/Missing, and anything not yet
    # settled (a sync that succeeded while the app is still rolling out, or whose health
    # predates it).
    return DeploymentStatus.PROGRESSING


def _timestamp(data: Mapping[str, Any], key: str) -> datetime | None:
    """A Kubernetes metav1.Time (RFC 3339, "2026-12-03T10:05:00Z"), or None when absent or
    empty (an Application that never synced, or an ArgoCD before 2.14 without
    status.health.lastTransitionTime)."""
    value = _string(data, key, TIMESTAMP_LIMIT)
    if not value:
        return None
    try:
        parsed = parse(value)
    except ValueError:
        _fail(key, f"{_show(value)} is not an RFC 3339 time such as 2026-12-03T10:05:00Z")
    # parse takes a time without a zone as UTC; a metav1.Time always has one, so a time
    # without is a template's mistake.
    if not ZONE.search(value.strip()[10:]):
        _fail(key, f"{_show(value)} has no time zone; Kubernetes writes UTC with a Z")
    return parsed
