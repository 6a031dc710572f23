"""GET /api/v1/openapi.json: the REST API as OpenAPI 3.1, built from the request models.

Request bodies and query strings are described by the same pydantic models that validate
them (`Model.model_json_schema()`), so the description cannot drift from the validation.
Each route is one `Route` entry in `ROUTES` (bot/api/openapi_routes.py), the links between
them are in bot/api/openapi_links.py; this module assembles the document from both.

Scopes: a route that accepts any of several scopes lists one security requirement per
scope (OpenAPI's "any of"); `admin` is accepted everywhere a bearer token is.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

import bot
from bot.api.openapi_links import LINKS, Link
from bot.api.openapi_routes import JSON, ROUTES, Route
from bot.telemetry import correlation

blueprint = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
BEARER = "bearer"


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
            "content": {JSON: {"schema": _add_schemas(components, route.body)}},
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
            entry["content"] = {JSON: {"schema": {"$ref": REF.format(model="Error")}}}
        elif route.content_type == JSON and route.response is not None and code == 200:
            schema = _add_schemas(components, route.response, "serialization")
            entry["content"] = {JSON: {"schema": schema}}
        elif route.content_type == JSON:
            entry["content"] = {JSON: {"schema": {"type": "object"}}}
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
