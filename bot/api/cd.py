"""POST /webhooks/argocd and /webhooks/flux: the CD engines report syncs and health.

ArgoCD's notifications webhook cannot sign, so it sends a shared token (X-Ritmo-Token);
Flux's generic-hmac provider signs the body (X-Signature: sha256=<hex>). An endpoint
whose secret is not set answers 404: it is off, and says which setting turns it on.

Neither engine retries a 4xx (notifications-engine marks a oncePer notification sent even
when the send failed; Flux retries connection errors, 429 and 5xx only), so an authentic
report Ritmo cannot use is answered 202 {"status": "ignored", "reason": ...} and counted
by reason (ritmo_cd_ignored); 401 is for bad credentials, 422 for a body the engine's
shipped template never renders, 503 for a remote that is down (the engine retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, jsonify, request

from bot.api.artifacts import correlation_id
from bot.api.context import current_runtime
from bot.api.errors import ApiError
from bot.config import Settings
from bot.deploy.argocd import parse_argocd
from bot.deploy.flux import parse_flux
from bot.deploy.intake import (
    Ignored,
    IntakeError,
    Report,
    check_flux_signature,
    check_token,
)
from bot.deploy.service import DeploymentService

if TYPE_CHECKING:
    from bot.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

blueprint = Blueprint("cd", __name__, url_prefix="/webhooks")


def _settings() -> Settings:
    settings: Settings = current_runtime().settings
    return settings


@blueprint.post("/argocd")
def argocd() -> tuple[Response, int]:
    token = _settings().cd.argocd_token
    if not token:
        raise ApiError(
            404, "the ArgoCD endpoint is off; set cd.argocd_token (RITMO_CD__ARGOCD_TOKEN)"
        )
    if not check_token(request.headers.get("X-Ritmo-Token"), token):
        raise ApiError(401, "X-Ritmo-Token does not match cd.argocd_token; check the ArgoCD secret")
    return _take("argocd", parse_argocd)


@blueprint.post("/flux")
def flux() -> tuple[Response, int]:
    secret = _settings().cd.flux_secret
    if not secret:
        raise ApiError(404, "the Flux endpoint is off; set cd.flux_secret (RITMO_CD__FLUX_SECRET)")
    body = request.get_data(cache=True)
    if not check_flux_signature(body, request.headers.get("X-Signature"), secret):
        raise ApiError(
            401,
            "X-Signature is not sha256=HMAC(body) under cd.flux_secret; check the Provider's "
            "secret",
        )
    return _take("flux", parse_flux)


def _take(source: str, parse: Callable[[bytes], Report]) -> tuple[Response, int]:
    cid = correlation_id()
    service: DeploymentService = current_runtime().deployments
    try:
        outcome = service.report(parse(request.get_data(cache=True)), cid)
    except Ignored as exc:
        return _ignored(source, exc, cid)
    except IntakeError as exc:
        raise ApiError(422, f"invalid report: {exc.message}", [_field(exc)]) from None
    response = jsonify(outcome.as_json())
    response.headers["X-Correlation-ID"] = cid
    return response, 200 if outcome.duplicate else 201


def _ignored(source: str, exc: Ignored, cid: str) -> tuple[Response, int]:
    metrics: Metrics | None = current_app.extensions.get("ritmo.metrics")
    if metrics is not None:
        metrics.cd_ignored.labels(source, exc.reason).inc()
    log.info("%s report ignored (%s): %s", source, exc.reason, exc.message)
    response = jsonify({"status": "ignored", "reason": exc.reason, "message": exc.message})
    response.headers["X-Correlation-ID"] = cid
    return response, 202


def _field(exc: IntakeError) -> dict[str, str]:
    return {"field": exc.field, "message": exc.message}
