"""What ArgoCD's notifications controller sends about a sync (pure).

ArgoCD has no fixed body: Ritmo ships the notification templates
(templates/argocd/argocd-notifications-cm.yaml), so `parse_argocd` reads exactly what
those templates render. The shared reading of hostile JSON lives in bot/deploy/intake.py.
"""

from __future__ import annotations

from bot.deploy.intake import (
    REVISION_LIMIT,
    SHA,
    TOKEN_LIMIT,
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
    _url,
)

# The triggers the shipped ArgoCD ConfigMap defines, each sending its own template whose
# body names the trigger literally.
ARGOCD_TRIGGERS = frozenset(
    {"on-sync-succeeded", "on-sync-failed", "on-health-degraded", "on-deployed", "on-sync-running"}
)


def parse_argocd(body: bytes) -> Report:
    """The report the shipped `template.ritmo-<trigger>` renders:

    {"trigger": "on-deployed", "app": "web-production", "namespace": "argocd",
     "revision": "<40 hex>", "phase": "Succeeded", "health": "Healthy",
     "message": "successfully synced (all tasks run)",
     "url": "https://argocd.example.com/applications/web-production"}
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
    revision = _string(data, "revision", REVISION_LIMIT)
    if not SHA.fullmatch(revision):
        _fail(
            "revision",
            f"{_show(revision)} is not a 40-hex git commit sha; the Application must sync "
            "a git source (the manifests repository), not a Helm chart or OCI artifact",
        )
    phase = _token(data, "phase")
    health = _token(data, "health")
    return Report(
        source="argocd",
        name=name,
        revision=revision.lower(),
        trigger=trigger,
        status=argocd_status(trigger, phase, health),
        message=_message(data),
        log_url=_url(data, "url"),
        namespace=namespace,
    )


def argocd_status(trigger: str, phase: str, health: str) -> Status:
    """An ArgoCD notification's outcome; the first rule that holds wins."""
    if trigger == "on-sync-failed" or phase in ("Failed", "Error"):
        return "failed"
    if trigger == "on-health-degraded" or health == "Degraded":
        return "degraded"
    if trigger == "on-deployed" or (phase == "Succeeded" and health == "Healthy"):
        return "succeeded"
    # on-sync-running, phase Running, health Progressing/Missing, and anything not yet
    # settled (a sync that succeeded while the app is still rolling out).
    return "progressing"
