"""POST /webhooks/argocd and /webhooks/flux: the CD engines report syncs and health.

ArgoCD's notifications webhook cannot sign, so it sends a shared token (X-Ritmo-Token);
Flux's generic-hmac provider signs the body (X-Signature: sha256=<hex>). An endpoint
whose secret is not set answers 404: it is off, and says which setting turns it on.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request

from bot.api.artifacts import correlation_id
from bot.api.errors import ApiError
from bot.config import Settings
from bot.deploy.flux import parse_flux
from bot.deploy.intake import (
    IntakeError,
    NotADeployment,
    Report,
    check_flux_signature,
    check_token,
    parse_argocd,
)
from bot.deploy.service import DeploymentRefused, DeploymentService
from bot.manifests.writer import WriteUnavailable

blueprint = Blueprint("cd", __name__, url_prefix="/webhooks")


def _settings() -> Settings:
    settings: Settings = current_app.extensions["ritmo"].settings
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
    return _take(parse_argocd)


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
    return _take(parse_flux)


def _take(parse: Callable[[bytes], Report]) -> tuple[Response, int]:
    cid = correlation_id()
    try:
        report = parse(request.get_data(cache=True))
    except NotADeployment as exc:
        return jsonify({"ignored": exc.message}), 202
    except IntakeError as exc:
        raise ApiError(422, f"invalid report: {exc.message}", [_field(exc)]) from None
    service: DeploymentService = current_app.extensions["ritmo"].deployments
    try:
        outcome = service.report(report, cid)
    except DeploymentRefused as exc:
        fields = [{"field": exc.field, "message": exc.message}] if exc.field else None
        raise ApiError(exc.status, exc.message, fields) from None
    except WriteUnavailable as exc:  # the engine retries
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    response = jsonify(outcome.as_json())
    response.headers["X-Correlation-ID"] = cid
    return response, 200 if outcome.duplicate else 201


def _field(exc: IntakeError) -> dict[str, str]:
    return {"field": exc.field, "message": exc.message}
