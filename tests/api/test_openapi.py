"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document that describes every route."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from bot.api.deployments import DeploymentBody
from bot.api.environments import Environments
from bot.api.openapi import SchemaClash, build_document
from bot.api.openapi_routes import ROUTES, Route
from bot.auth import Scope
from bot.manifests.records import ArtifactSpec
from bot.runtime import Runtime
from tests.helpers import bearer


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    resp = client.get("/api/v1/openapi.json")  # no token: the description is public
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "application/json"
    body: dict[str, Any] = resp.get_json()
    return body


def _rules(app: Flask) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every URL rule the app serves."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add((method.lower(), path))
    return found


def _described(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in document["paths"].items() for method in ops}


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises with the offending part on an invalid document
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert {schemes[k]["name"] for k in ("githubSignature", "argocdToken", "fluxSignature")} == {
        "X-Hub-Signature-256",
        "X-Ritmo-Token",
        "X-Signature",
    }


def _undescribed_api(app: Flask, document: dict[str, Any]) -> list[tuple[str, str]]:
    api = {(m, p) for m, p in _rules(app) if p.startswith("/api/v1")}
    assert api, "no /api/v1 rules found: is the app wired?"
    return sorted(api - _described(document))


def test_every_api_route_is_described(app: Flask, document: dict[str, Any]) -> None:
    served = _rules(app)
    described = _described(document)
    missing = _undescribed_api(app, document)
    assert not missing, f"routes without an entry in bot.api.openapi_routes.ROUTES: {missing}"
    stale = sorted(described - served)
    assert not stale, f"entries in bot.api.openapi_routes.ROUTES the app does not serve: {stale}"
    for path in ("/webhooks/github", "/webhooks/argocd", "/webhooks/flux", "/healthz", "/"):
        assert ("post" if "webhooks" in path else "get", path) in described


def test_a_new_route_without_a_description_is_caught(app: Flask) -> None:
    dropped = next(r for r in ROUTES if r.path == "/api/v1/outbox/{row_id}/retry")
    fewer = tuple(r for r in ROUTES if r is not dropped)
    assert _undescribed_api(app, build_document(fewer)) == [(dropped.method, dropped.path)]


@pytest.mark.parametrize("route", [r for r in ROUTES if r.body], ids=lambda r: r.path)
def test_request_bodies_come_from_the_validating_models(
    route: Route, document: dict[str, Any]
) -> None:
    assert route.body is not None
    op = document["paths"][route.path][route.method]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == f"#/components/schemas/{route.body.__name__}"
    schema = document["components"]["schemas"][route.body.__name__]
    fields = route.body.model_fields
    required = {f.alias or name for name, f in fields.items() if f.is_required()}
    assert set(schema.get("required", ())) == required
    assert set(schema["properties"]) == {f.alias or name for name, f in fields.items()}
    assert schema["additionalProperties"] is False  # extra="forbid", as the API refuses them
    for code in ("413", "415", "422"):
        assert op["responses"][code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


def test_required_fields_of_the_main_bodies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["ArtifactSpec"]["required"]) == {"name", "build_id", "checksum"}
    assert ArtifactSpec.model_fields["checksum"].is_required()
    assert set(schemas["DeploymentBody"]["required"]) == {"artifact_id", "environment"}
    assert DeploymentBody.model_fields["environment"].is_required()
    assert "from" in schemas["PromoteBody"]["properties"]  # the alias the API takes
    deploy = schemas["DeploymentBody"]["properties"]
    assert deploy["status"]["enum"] == ["progressing", "succeeded", "failed", "degraded"]


def test_the_error_body(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    item = error["properties"]["fields"]["items"]
    assert set(item["required"]) == {"field", "message"}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.query], ids=lambda r: r.path)
def test_query_parameters_come_from_the_validating_models(
    route: Route, document: dict[str, Any]
) -> None:
    assert route.query is not None
    params = document["paths"][route.path][route.method]["parameters"]
    query = {p["name"]: p for p in params if p["in"] == "query"}
    assert set(query) == set(route.query.model_fields)
    if route.response is Environments:  # one table, not a paged list
        assert query["app"]["schema"]["pattern"] and "per_page" not in query
        return
    if route.path == "/":  # the anonymous dashboard: fixed pages, no per_page to inflate
        assert query["page"]["schema"]["minimum"] == 1 and "per_page" not in query
        return
    assert query["per_page"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "default": 50,
    }


def test_the_environments_response_is_described(
    client: FlaskClient, runtime: Runtime, document: dict[str, Any]
) -> None:
    """The 200 body has a schema (not just "object"), and the API's answer fits it."""
    ok = document["paths"]["/api/v1/environments"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Environments"
    }
    schemas = document["components"]["schemas"]
    cell = schemas["EnvironmentCell"]
    assert {"version", "commit", "recorded", "health"} <= set(cell["required"])
    assert cell["properties"]["recorded"]["type"] == "boolean"
    assert cell["additionalProperties"] is False
    token = runtime.tokens.create("viewer", [Scope.ARTIFACTS_READ])
    resp = client.get("/api/v1/environments", headers=bearer(token))
    assert resp.status_code == 200
    Environments.model_validate(resp.get_json())


def test_the_webhooks_name_their_headers(document: dict[str, Any]) -> None:
    github = document["paths"]["/webhooks/github"]["post"]
    assert github["security"] == [{"githubSignature": []}]
    headers = {p["name"] for p in github["parameters"] if p["in"] == "header" and p["required"]}
    assert headers == {"X-GitHub-Event", "X-GitHub-Delivery"}
    assert document["paths"]["/webhooks/argocd"]["post"]["security"] == [{"argocdToken": []}]
    assert document["paths"]["/webhooks/flux"]["post"]["security"] == [{"fluxSignature": []}]
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []


def _call(client: FlaskClient, route: Route, headers: dict[str, str]) -> int:
    path = route.path
    for name in re.findall(r"\{([a-z_]+)\}", path):
        path = path.replace(f"{{{name}}}", "1" if name in route.int_params else "x")
    if route.method in ("get", "delete"):
        return client.open(path, method=route.method.upper(), headers=headers).status_code
    return client.open(path, method=route.method.upper(), json={}, headers=headers).status_code


@pytest.mark.parametrize("route", [r for r in ROUTES if r.scopes], ids=lambda r: r.path)
def test_described_scopes_are_the_enforced_ones(
    route: Route, client: FlaskClient, runtime: Runtime, document: dict[str, Any]
) -> None:
    op = document["paths"][route.path][route.method]
    assert op["security"] == [{"bearer": [s.value]} for s in route.scopes]
    assert _call(client, route, {}) == 401
    others = [s for s in Scope if s not in route.scopes and s is not Scope.ADMIN]
    if others:
        token = runtime.tokens.create("other-scopes", others)
        assert _call(client, route, bearer(token)) == 403
    for scope in route.scopes:
        token = runtime.tokens.create(f"with-{scope.value.replace(':', '-')}", [scope])
        assert _call(client, route, bearer(token)) not in (401, 403), scope


def test_clashing_component_names_are_refused() -> None:
    from pydantic import BaseModel

    class Inner(BaseModel):
        a: int

    class One(BaseModel):
        inner: Inner

    class Two(BaseModel):
        inner: Inner

    Two.model_rebuild()
    clash = type("Inner", (BaseModel,), {"__annotations__": {"b": str}})
    Three = type("Three", (BaseModel,), {"__annotations__": {"inner": clash}})
    routes = (
        Route("post", "/a", "a", {200: "ok"}, body=One),
        Route("post", "/b", "b", {200: "ok"}, body=Two),  # the same Inner: fine
    )
    validate(build_document(routes))
    with pytest.raises(SchemaClash, match="Inner"):
        build_document((*routes, Route("post", "/c", "c", {200: "ok"}, body=Three)))


def test_audit_events_are_described_field_by_field(document: dict[str, Any]) -> None:
    """A rolled_back row's `version` (rolled back) and `restored_version` are in the schema."""
    from dataclasses import fields

    from bot.audit.history import AuditEvent

    ok = document["paths"]["/api/v1/audit"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AuditPage"}
    schemas = document["components"]["schemas"]
    event = schemas["AuditEvent"]["properties"]
    assert set(event) == {f.name for f in fields(AuditEvent)}
    assert {"version", "restored_version", "restored_artifact_id"} <= set(event)
    assert "restored_version" in schemas["AuditPage"]["description"]


PROMOTE_BODIES = [
    {},
    {"from": "staging"},
    {"to": "production"},
    {"from_environment": "staging"},
    {"from": "staging", "to": "production"},
    {"from_environment": "staging", "to_environment": "production"},
    {"from": "staging", "to_environment": "production", "notes": "soaked"},
    {"from": "staging", "from_environment": "staging", "to": "production"},
    {"to": "production", "to_environment": "production", "approval_ticket": "CHG-1"},
    {"from": "staging", "to": "production", "colour": "blue"},
    {"from": "Not A Name", "to": "production"},
]


@pytest.mark.parametrize("body", PROMOTE_BODIES, ids=lambda b: ",".join(b) or "empty")
def test_the_promote_schema_is_as_strict_as_its_validation(
    body: dict[str, Any], document: dict[str, Any]
) -> None:
    """What the schema admits the API takes (schemathesis: 'mostly rejected generated
    data' when the schema left from/to optional); only the agreement of two names for
    one environment is beyond JSON Schema, and the description says it."""
    from jsonschema import Draft202012Validator
    from pydantic import ValidationError

    from bot.api.promotions import PromoteBody, _BodyProblem

    schema = document["components"]["schemas"]["PromoteBody"]
    admitted = Draft202012Validator(schema).is_valid(body)
    try:
        PromoteBody.model_validate(body)
        taken = True
    except (ValidationError, _BodyProblem):  # the API's 422 either way
        taken = False
    assert admitted == taken, (body, admitted, taken)
    description = schema["description"]
    for said in ("`from` (or `from_environment`) and `to` (or `to_environment`) are required",
                 "only if they agree", "the one the artifact is in now", "409",
                 "404"):  # fmt: skip
        assert said in description


def _targets(document: dict[str, Any]) -> set[str]:
    ids = {op["operationId"]: f"{m} {p}" for p, ops in document["paths"].items()
           for m, op in ops.items()}  # fmt: skip
    return {
        ids[link["operationId"]]
        for ops in document["paths"].values()
        for op in ops.values()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    }


def test_every_operation_that_takes_an_id_is_reached_by_a_link(
    document: dict[str, Any],
) -> None:
    """Stateful clients (schemathesis' stateful phase) call an operation that takes an id
    only through a link from one that gave the id; so does PUT /api/v1/policy, which
    is no entry point (not a POST, not a GET)."""
    from bot.api.openapi_links import LINKS

    routes = {f"{r.method} {r.path}" for r in ROUTES}
    assert {x.source for x in LINKS} | {x.target for x in LINKS} <= routes
    need = {
        f"{r.method} {r.path}" for r in ROUTES
        if not r.path.startswith("/webhooks/") and ("{" in r.path or r.method in ("put", "delete"))
    }  # fmt: skip
    assert len(need) >= 10
    assert need - _targets(document) == set()
    for expected in ("get /api/v1/deployments/{deployment_id}",
                     "post /api/v1/deployments/{deployment_id}/rollback",
                     "get /api/v1/outbox/{row_id}", "post /api/v1/outbox/{row_id}/retry",
                     "post /api/v1/promotions/{request_id}/approvals"):  # fmt: skip
        assert expected in _targets(document)
    created = document["paths"]["/api/v1/deployments"]["post"]["responses"]["201"]["links"]
    assert created["RollBack"] == {
        "operationId": document["paths"]["/api/v1/deployments/{deployment_id}/rollback"]["post"][
            "operationId"
        ],
        "parameters": {"deployment_id": "$response.body#/id"},
    }


def test_a_link_that_names_nothing_is_refused() -> None:
    from bot.api.openapi_links import Link

    get = Route("get", "/a/{x}", "a", {200: "ok"})
    post = Route("post", "/a", "b", {201: "made"})
    ok = Link("GetA", "post /a", (201,), "get /a/{x}", {"x": "$response.body#/id"})
    validate(build_document((get, post), (ok,)))
    for bad, said in (
        (Link("GetA", "post /a", (201,), "get /a/{x}", {"y": "$response.body#/id"}), "'y'"),
        (Link("GetA", "post /a", (200,), "get /a/{x}"), "never answers 200"),
        (Link("GetB", "post /a", (201,), "get /b"), "no such operation"),
    ):
        with pytest.raises(ValueError, match=said):
            build_document((get, post), (bad,))
