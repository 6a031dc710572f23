"""GET /api/v1/openapi.json: the REST API as OpenAPI 3.1, built from the request models.

Request bodies and query strings are described by the same pydantic models that validate
them (`Model.model_json_schema()`), so the description cannot drift from the validation.
Each route is one `Route` entry in `ROUTES`; tests/api/test_openapi.py fails when a URL
rule under /api/v1 has no entry, or an entry names a rule that does not exist.

Scopes: a route that accepts any of several scopes lists one security requirement per
scope (OpenAPI's "any of"); `admin` is accepted everywhere a bearer token is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

import bot
from bot.api.artifacts import ArtifactQuery
from bot.api.audit import AuditPage, AuditQuery
from bot.api.dashboard import DashboardQuery
from bot.api.deployments import DeploymentBody, DeploymentQuery, RollbackBody
from bot.api.environments import Environments, EnvironmentsQuery
from bot.api.openapi_links import LINKS, Link
from bot.api.outbox import OutboxQuery
from bot.api.policy import PolicyBody
from bot.api.promotions import PromoteBody, PromoteByName, PromotionQuery, ReviewBody
from bot.api.tokens import TokenBody
from bot.auth import Scope
from bot.manifests.records import ArtifactSpec
from bot.telemetry import correlation

blueprint = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
BEARER = "bearer"

_JSON = "application/json"


@dataclass(frozen=True)
class Route:
    """One operation. `path` uses OpenAPI's `{name}` for path parameters."""

    method: str
    path: str
    summary: str
    responses: dict[int, str]
    scopes: tuple[Scope, ...] = ()  # empty with no `security`: no authentication
    body: type[BaseModel] | None = None  # a JSON body validated by this model
    query: type[BaseModel] | None = None  # query parameters validated by this model
    security: tuple[str, ...] = ()  # other schemes (webhooks): any one of them
    headers: dict[str, str] = field(default_factory=dict)  # required request headers
    int_params: tuple[str, ...] = ()  # path parameters that are integers
    correlation_id: bool = False  # takes (and echoes) X-Correlation-ID
    tag: str = "api"
    content_type: str = _JSON  # of the successful response
    response: type[BaseModel] | None = None  # the 200 body's model; default: an object


_READ = (Scope.ARTIFACTS_READ,)
_DEPLOY_READ = (Scope.ARTIFACTS_READ, Scope.DEPLOYMENTS_WRITE)

# The registry: adding a route to the API is one entry here.
ROUTES: tuple[Route, ...] = (
    Route("get", "/healthz", "Liveness", {200: "The server is up"}, tag="health"),
    Route("get", "/api/v1/openapi.json", "This document", {200: "OpenAPI 3.1"}, tag="meta"),
    Route(
        "get",
        "/",
        "Read-only dashboard (HTML); apps 50 to a page",
        {
            200: "The dashboard page",
            400: "page is not a whole number >= 1",
            404: "past the last page",
        },
        query=DashboardQuery,
        tag="meta",
        content_type="text/html",
    ),
    Route(
        "post",
        "/api/v1/artifacts",
        "Register an artifact",
        {
            201: "Recorded and pushed",
            200: "Already recorded with the same content",
            409: "Name and version taken by other content",
            503: "The remote is unavailable; retry",
        },
        (Scope.ARTIFACTS_WRITE,),
        body=ArtifactSpec,
        correlation_id=True,
        tag="artifacts",
    ),
    Route(
        "get",
        "/api/v1/artifacts",
        "List artifacts, newest first",
        {200: "A page of artifacts; Link rel=next when there is more"},
        _READ,
        query=ArtifactQuery,
        tag="artifacts",
    ),
    Route(
        "get",
        "/api/v1/artifacts/{artifact_id}",
        "One artifact",
        {200: "The record, its commit and promotion status", 404: "No such artifact"},
        _READ,
        tag="artifacts",
    ),
    Route(
        "post",
        "/api/v1/artifacts/{artifact_id}/promote",
        "Promote an artifact",
        {
            201: "Promoted (pushed)",
            202: "A promotion request was opened; approvals pending",
            404: "No such artifact",
            409: "Refused by policy or a conflict",
            503: "The remote is unavailable; retry",
        },
        (Scope.PROMOTIONS_WRITE,),
        body=PromoteBody,
        correlation_id=True,
        tag="promotions",
    ),
    Route(
        "post",
        "/api/v1/promotions",
        "Promote an artifact named by app and version",
        {
            201: "Promoted (pushed)",
            202: "A promotion request was opened; approvals pending",
            404: "No artifact with this app and version",
            409: "Refused by policy or a conflict",
            503: "The remote is unavailable; retry",
        },
        (Scope.PROMOTIONS_WRITE,),
        body=PromoteByName,
        correlation_id=True,
        tag="promotions",
    ),
    Route(
        "get",
        "/api/v1/promotions",
        "List promotions and promotion requests",
        {200: "A page of promotions"},
        _READ,
        query=PromotionQuery,
        tag="promotions",
    ),
    Route(
        "get",
        "/api/v1/promotions/{promotion_id}",
        "One promotion or request",
        {200: "The promotion or request", 404: "No such promotion"},
        _READ,
        tag="promotions",
    ),
    Route(
        "post",
        "/api/v1/promotions/{request_id}/approvals",
        "Review a request (local forge)",
        {
            201: "Review recorded; the request as it stands",
            404: "No such request",
            409: "Refused or a conflict",
            503: "The remote is unavailable; retry",
        },
        (Scope.PROMOTIONS_APPROVE,),
        body=ReviewBody,
        tag="promotions",
    ),
    Route(
        "post",
        "/api/v1/deployments",
        "Report a deployment",
        {
            201: "Recorded",
            200: "Already recorded",
            404: "Unknown artifact or environment",
            409: "Conflicts with what is recorded",
            503: "The remote is unavailable; retry",
        },
        (Scope.DEPLOYMENTS_WRITE,),
        body=DeploymentBody,
        correlation_id=True,
        tag="deployments",
    ),
    Route(
        "get",
        "/api/v1/deployments",
        "List deployments, newest first",
        {200: "A page of deployments"},
        _DEPLOY_READ,
        query=DeploymentQuery,
        tag="deployments",
    ),
    Route(
        "get",
        "/api/v1/deployments/{deployment_id}",
        "One deployment",
        {200: "The deployment", 404: "No such deployment"},
        _DEPLOY_READ,
        tag="deployments",
    ),
    Route(
        "post",
        "/api/v1/deployments/{deployment_id}/rollback",
        "Roll a deployment back",
        {
            201: "Rolled back (pushed)",
            202: "A rollback request was opened",
            403: "A deployment that did not fail: rolling it back needs promotions:write",
            404: "No such deployment",
            409: "Nothing legitimate to roll back to (the reason names what was passed over)",
            503: "The remote is unavailable; retry",
        },
        (Scope.DEPLOYMENTS_WRITE, Scope.PROMOTIONS_WRITE),
        body=RollbackBody,
        correlation_id=True,
        tag="deployments",
    ),
    Route(
        "get",
        "/api/v1/outbox",
        "List notifications",
        {200: "A page of notifications; Link rel=next when there is more"},
        (Scope.ADMIN,),
        query=OutboxQuery,
        tag="outbox",
    ),
    Route(
        "get",
        "/api/v1/outbox/{row_id}",
        "One notification",
        {200: "The notification", 404: "No such notification"},
        (Scope.ADMIN,),
        int_params=("row_id",),
        tag="outbox",
    ),
    Route(
        "post",
        "/api/v1/outbox/{row_id}/retry",
        "Retry a dead letter",
        {200: "Requeued", 404: "No such notification", 409: "Not a dead letter"},
        (Scope.ADMIN,),
        int_params=("row_id",),
        tag="outbox",
    ),
    Route(
        "get",
        "/api/v1/tokens",
        "List API tokens (never their secrets)",
        {200: "Every token: name, scopes, groups, created_at, last_used_at"},
        (Scope.ADMIN,),
        tag="tokens",
    ),
    Route(
        "post",
        "/api/v1/tokens",
        "Create an API token; its secret is in this answer only",
        {
            201: "Created: the token's fields and `token`, its secret",
            409: "The name is taken (names ignore case)",
            422: "Invalid or reserved name, unknown scope, bad group; `fields` names it",
        },
        (Scope.ADMIN,),
        body=TokenBody,
        tag="tokens",
    ),
    Route(
        "delete",
        "/api/v1/tokens/{name}",
        "Revoke an API token: its next request is refused, on every replica",
        {200: "Revoked: the token's fields", 404: "No token of that name"},
        (Scope.ADMIN,),
        tag="tokens",
    ),
    Route(
        "get",
        "/api/v1/audit",
        "Audit events from the default branch's commit trailers, newest first",
        {
            200: "A page of events; Link rel=next when there is more. Each event has "
            "`trusted`: false when its commit is not signed by Ritmo's key",
            400: "A malformed filter, or since/until is neither a date nor a commit",
            422: "since or until is a commit off the default branch's first-parent line "
            "(a request branch's, say)",
            503: "The manifests remote is unavailable; retry",
        },
        _READ,
        query=AuditQuery,
        tag="audit",
        response=AuditPage,
    ),
    Route(
        "put",
        "/api/v1/policy",
        "Change the policy in force, judged by its policy_changes rule",
        {
            201: "Changed: one signed commit with Ritmo-Policy trailers",
            200: "Unchanged: the text is the policy in force",
            202: "A request was opened; approvals pending (approve it like a promotion)",
            409: "The policy changed meanwhile; send it again",
            422: "Invalid policy: each problem as line:column: message; nothing written",
            503: "The remote is unavailable; retry",
        },
        (Scope.ADMIN,),
        body=PolicyBody,
        correlation_id=True,
        tag="policy",
    ),
    Route(
        "get",
        "/api/v1/environments",
        "What runs where: apps x environments as the default branch pins them",
        {
            200: "Per app and environment: the pinned version, its commit, whether Ritmo "
            "recorded it, deployment health",
            503: "The policy or the manifests mirror cannot be read yet; retry",
        },
        _READ,
        query=EnvironmentsQuery,
        tag="environments",
        response=Environments,
    ),
    Route(
        "post",
        "/webhooks/github",
        "GitHub App webhook",
        {
            200: "Ping answered or a duplicate delivery",
            202: "Queued or ignored",
            400: "Missing event headers or not JSON",
            401: "Bad signature",
            404: "Off: forge.kind is not github or no webhook_secret",
        },
        security=("githubSignature",),
        headers={
            "X-GitHub-Event": "The event name",
            "X-GitHub-Delivery": "The delivery id (at most 128 characters)",
        },
        tag="webhooks",
    ),
    Route(
        "post",
        "/webhooks/argocd",
        "ArgoCD notifications webhook",
        {
            201: "Deployment recorded",
            200: "Already recorded",
            202: "Authentic but not usable: ignored, with the reason",
            401: "Wrong token",
            404: "Off: set cd.argocd_token",
            422: "A body the shipped template never renders",
            503: "The remote is unavailable; retry",
        },
        security=("argocdToken",),
        correlation_id=True,
        tag="webhooks",
    ),
    Route(
        "post",
        "/webhooks/flux",
        "Flux notification-controller webhook",
        {
            201: "Deployment recorded",
            200: "Already recorded",
            202: "Authentic but not usable: ignored, with the reason",
            401: "Bad signature",
            404: "Off: set cd.flux_secret",
            422: "A body the shipped template never renders",
            503: "The remote is unavailable; retry",
        },
        security=("fluxSignature",),
        correlation_id=True,
        tag="webhooks",
    ),
)

_SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "A Ritmo token (`ritmo token create`). Its scopes are listed per "
        "operation; any one of them will do, and `admin` does for every one.",
    },
    "githubSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature-256",
        "description": "sha256=<hex HMAC-SHA256 of the body under forge.github.webhook_secret>",
    },
    "argocdToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Ritmo-Token",
        "description": "The shared token cd.argocd_token (ArgoCD's webhook cannot sign)",
    },
    "fluxSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "sha256=<hex HMAC-SHA256 of the body under cd.flux_secret> "
        "(Flux's generic-hmac provider)",
    },
}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every refusal: what is wrong and, for bad input, each field and its fix.",
    "properties": {
        "error": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["error"],
}

_DEFAULT_ERRORS = {
    400: "Bad query parameters or headers",
    401: "No token, or an unknown one",
    403: "The token lacks the scope",
    413: "The body is larger than max_body_bytes",
    415: "The body is not JSON",
    422: "Invalid fields; `fields` names each one and the fix",
}

# gunicorn (`ritmo serve`) answers this itself, as HTML, for a request line past 4094 bytes.
_URI_TOO_LONG = "The request line (path and query) is too long for the HTTP server"

_PARAM = re.compile(r"\{([^}]+)\}")


class SchemaClash(ValueError):
    """Two models define a component of the same name differently."""


def _add_schemas(
    components: dict[str, Any], model: type[BaseModel], mode: JsonSchemaMode = "validation"
) -> dict[str, Any]:
    """Put the model (and its $defs) into components; return a $ref to it."""
    schema = model.model_json_schema(ref_template=REF, by_alias=True, mode=mode)
    defs = schema.pop("$defs", {})
    for name, sub in [*defs.items(), (model.__name__, schema)]:
        known = components.setdefault(name, sub)
        if known != sub:
            raise SchemaClash(f"two schemas named {name!r}; rename one of the models")
    return {"$ref": REF.format(model=model.__name__)}


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: drop the `null` branch and default."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" in prop and len(branches) == 1:
        del prop["anyOf"]
        prop = {**branches[0], **prop}
    elif "anyOf" in prop:
        prop["anyOf"] = branches
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF, by_alias=True, mode="validation")
    if "$defs" in schema:
        raise SchemaClash(f"{model.__name__}: a query model must use plain fields only")
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        param["schema"] = prop
        params.append(param)
    return params


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method}_{route.path}".replace("/", "_").strip("_"),
        "tags": [route.tag],
    }
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if name in route.int_params else "string"},
        }
        for name in _PARAM.findall(route.path)
    ]
    for name, text in route.headers.items():
        params.append(
            {"name": name, "in": "header", "required": True, "description": text,
             "schema": {"type": "string"}}
        )  # fmt: skip
    if route.correlation_id:
        params.append(
            {"name": "X-Correlation-ID", "in": "header", "required": False,
             "description": "Carried into commit trailers and echoed back; default: a new "
             "UUID", "schema": {"type": "string", "pattern": correlation.ID.pattern}}
        )  # fmt: skip
    if route.query is not None:
        params += _query_parameters(route.query)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _add_schemas(components, route.body)}},
        }
    if route.scopes:
        op["security"] = [{BEARER: [s.value]} for s in route.scopes]
    elif route.security:
        op["security"] = [{name: []} for name in route.security]
    else:
        op["security"] = []  # no authentication

    codes = dict(route.responses)
    if route.scopes:
        codes.setdefault(401, _DEFAULT_ERRORS[401])
        codes.setdefault(403, _DEFAULT_ERRORS[403])
    if route.query is not None:
        codes.setdefault(400, _DEFAULT_ERRORS[400])
    if route.correlation_id:
        codes.setdefault(400, "Bad X-Correlation-ID header")
    if route.body is not None:
        bad_json = "the body is not valid JSON"
        codes[400] = f"{codes[400]}, or {bad_json}" if 400 in codes else bad_json.capitalize()
        for code in (413, 415, 422):
            codes.setdefault(code, _DEFAULT_ERRORS[code])
    codes.setdefault(414, _URI_TOO_LONG)  # any URL can be made too long
    responses: dict[str, Any] = {}
    for code in sorted(codes):
        entry: dict[str, Any] = {"description": codes[code]}
        if code == 414:  # from the HTTP server, before the app: its HTML page
            entry["content"] = {"text/html": {"schema": {"type": "string"}}}
        elif code >= 400:
            entry["content"] = {_JSON: {"schema": {"$ref": REF.format(model="Error")}}}
        elif route.content_type == _JSON and route.response is not None and code == 200:
            schema = _add_schemas(components, route.response, "serialization")
            entry["content"] = {_JSON: {"schema": schema}}
        elif route.content_type == _JSON:
            entry["content"] = {_JSON: {"schema": {"type": "object"}}}
        else:
            entry["content"] = {route.content_type: {"schema": {"type": "string"}}}
        responses[str(code)] = entry
    op["responses"] = responses
    return op


def _add_links(paths: dict[str, dict[str, Any]], links: tuple[Link, ...]) -> None:
    """Each link on its source's responses; a link naming nothing is refused."""

    def operation(name: str) -> dict[str, Any]:
        method, _, path = name.partition(" ")
        found: dict[str, Any] | None = paths.get(path, {}).get(method)
        if found is None:
            raise ValueError(f"link to or from {name!r}: no such operation")
        return found

    for link in links:
        source, target = operation(link.source), operation(link.target)
        takes = {p["name"] for p in target.get("parameters", ())}
        unknown = sorted(set(link.parameters) - takes)
        if unknown:
            raise ValueError(f"link {link.name} to {link.target}: no parameters {unknown}")
        entry: dict[str, Any] = {"operationId": target["operationId"]}
        if link.parameters:
            entry["parameters"] = dict(link.parameters)
        if link.request_body is not None:
            if "requestBody" not in target:
                raise ValueError(f"link {link.name}: {link.target} takes no body")
            entry["requestBody"] = dict(link.request_body)
        if link.description:
            entry["description"] = link.description
        for code in link.codes:
            response = source["responses"].get(str(code))
            if response is None:
                raise ValueError(f"link {link.name}: {link.source} never answers {code}")
            response.setdefault("links", {})[link.name] = entry


def build_document(
    routes: tuple[Route, ...] = ROUTES, links: tuple[Link, ...] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `routes` and the `links` between them (pure); by
    default the LINKS between the routes given (tests/api/test_openapi.py checks that
    each of LINKS names routes of ROUTES)."""
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        ops = paths.setdefault(route.path, {})
        if route.method in ops:
            raise ValueError(f"{route.method.upper()} {route.path} is described twice")
        ops[route.method] = _operation(route, components)
    if links is None:
        described = {f"{r.method} {r.path}" for r in routes}
        links = tuple(x for x in LINKS if {x.source, x.target} <= described)
    _add_links(paths, links)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ritmo",
            "version": bot.__version__,
            "description": "GitOps promotion bot: CI registers artifacts, Ritmo records them "
            "as signed commits in a Kubernetes manifests repository, promotes and tracks "
            "deployments.",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
    }


@cache
def _document() -> dict[str, Any]:
    return build_document()


@blueprint.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    response = jsonify(_document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
