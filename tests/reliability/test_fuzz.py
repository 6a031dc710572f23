"""Fuzz the served OpenAPI description with schemathesis (issue 8).

The schema is loaded from GET /api/v1/openapi.json of a real app (the conftest fixtures:
a bare remote, a signing key, a SQLite index) through WSGI, so no port is opened. Every
generated request (the examples, coverage and fuzzing phases; positive and negative
data) must get an answer that is not a 5xx and that matches the description: status
code, content type and body schema.

Bounded for CI: FUZZ_EXAMPLES (default 25) examples per operation in the fuzzing phase,
derandomized, no shrinking. A longer run: `FUZZ_EXAMPLES=1000 .venv/bin/pytest
tests/reliability/test_fuzz.py`. The /webhooks/* operations are left out: they need
HMAC signatures or shared secrets the generator cannot produce, and are off unless
configured; tests/webhooks covers them.
"""

from __future__ import annotations

import os
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.store.outbox import NewDelivery
from tests.helpers import artifact_body, bearer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SCENARIOS = int(os.environ.get("FUZZ_SCENARIOS", "15"))  # stateful: scenarios per run
ROUNDS = 30  # stateful: at most this many runs until every operation is seen (stops early)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _config(
    headers: dict[str, str] | None, stateful: bool = False, seed: int = 20260408
) -> SchemathesisConfig:
    project: dict[str, Any] = {
        "seed": seed,
        "phases": {
            "examples": {"enabled": not stateful},
            "coverage": {"enabled": not stateful},
            "fuzzing": {"enabled": not stateful},
            # Only the links the document states: schemathesis' own inference off.
            "stateful": {"enabled": stateful, "max-steps": 8, "inference": {"algorithms": []}},
        },
        "generation": {
            "mode": "all",  # positive and negative data
            "max-examples": SCENARIOS if stateful else EXAMPLES,
            "deterministic": True,
            "no-shrink": True,
            "database": "none",
        },
    }
    if headers:
        project["headers"] = headers
    if stateful:
        project["checks"] = {"enabled": False, **{c.__name__: {"enabled": True} for c in CHECKS}}
    return SchemathesisConfig.from_dict(project)


def _seed(app: Flask, admin: str) -> dict[str, list[str]]:
    """Register an artifact, report a deployment of it and open a promotion request:
    ids the generated requests can hit."""
    client = app.test_client()
    created = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(admin))
    assert created.status_code == 201, created.get_json()
    artifact = created.get_json()["id"]
    reported = client.post(
        "/api/v1/deployments",
        json={"artifact_id": artifact, "environment": "dev"},
        headers=bearer(admin),
    )
    assert reported.status_code == 201, reported.get_json()
    asked = client.post(
        f"/api/v1/artifacts/{artifact}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(admin),
    )
    assert asked.status_code == 202, asked.get_json()
    request_id = str(asked.get_json()["request"]["id"])
    return {
        "artifact_id": [artifact],
        "deployment_id": [str(reported.get_json()["id"])],
        "promotion_id": [request_id],
        "request_id": [request_id],
    }


def _load(
    app: Flask,
    headers: dict[str, str] | None,
    known: dict[str, list[str]],
    stateful: bool = False,
    seed: int = 20260408,
) -> BaseSchema:
    config = _config(headers, stateful, seed)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)

    @schema.hook("flatmap_path_parameters")
    def _sometimes_known(context: Any, path_parameters: dict[str, Any]) -> Any:
        """Now and then, swap a generated id for one that exists."""
        if not path_parameters:
            return st.just(path_parameters)
        choices = [path_parameters]
        for name, ids in known.items():
            if name in path_parameters:
                choices += [{**path_parameters, name: value} for value in ids]
        return st.sampled_from(choices)

    @schema.hook("flatmap_body")
    def _sometimes_known_artifact(context: Any, body: Any) -> Any:
        """POST /api/v1/deployments: half of the time, report a registered artifact."""
        if not isinstance(body, dict) or "artifact_id" not in body:
            return st.just(body)
        ids = known.get("artifact_id", [])
        return st.sampled_from([body] + [{**body, "artifact_id": value} for value in ids])

    if stateful:

        @schema.hook("flatmap_body")
        def _sometimes_a_valid_one(context: Any, body: Any) -> Any:
            """Now and then a registration CI would send, or a token an admin would make
            (a generated body rarely has a signature, an image and a version that all hold,
            or a name nobody has), so that the links from their 201 are followed too."""
            if not isinstance(body, dict):
                return st.just(body)
            if "checksum" in body and "build_id" in body:  # POST /api/v1/artifacts
                made = st.integers(0, 999).map(lambda n: artifact_body(version=f"7.{n}.0"))
            elif "scopes" in body and "name" in body:  # POST /api/v1/tokens
                made = st.integers(0, 999).map(
                    lambda n: {"name": f"fuzz-{n}", "scopes": ["artifacts:read"]}
                )
            else:
                return st.just(body)
            return st.one_of(st.just(body), made)

    return schema


@pytest.fixture(autouse=True)
def _node_id_shim(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 reads and rewrites `node._nodeid`, which pytest 9.2 dropped
    (it became `node._id`); give it the attribute so it can label each operation."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture
def remote_policy() -> str | None:
    """The shipped policy: a registration also pins the image in dev and staging."""
    return None


@pytest.fixture
def fuzz_schema(app: Flask, tokens: dict[str, str]) -> BaseSchema:
    """Authenticated as admin, so the generated requests reach the handlers."""
    known = _seed(app, tokens["admin"])
    return _load(app, bearer(tokens["admin"]), known)


@pytest.fixture
def anonymous_schema(app: Flask) -> BaseSchema:
    """No token: every protected operation must answer a 401 that conforms."""
    return _load(app, None, {})


WEBHOOKS = "^/webhooks/"
authenticated = schemathesis.pytest.from_fixture("fuzz_schema").exclude(path_regex=WEBHOOKS)
anonymous = schemathesis.pytest.from_fixture("anonymous_schema").exclude(path_regex=WEBHOOKS)


@authenticated.parametrize()
def test_fuzz_authenticated(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@anonymous.parametrize()
def test_fuzz_anonymous(case: Any) -> None:
    response = case.call_and_validate(checks=CHECKS)
    # A bearer token is required. Flask answers by itself the OPTIONS probes of other
    # methods (200) and a URL its converters refuse, such as /outbox/abc (404).
    protected = bool(case.operation.definition.raw.get("security"))
    if protected and case.method.lower() == case.operation.method.lower():
        assert response.status_code in (401, 404), (case.method, case.path, response.status_code)


HUGE = str(2**64)  # past SQLite's 64-bit INTEGER


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", f"/api/v1/artifacts?page={HUGE}", 400),
        ("get", f"/api/v1/deployments?page={HUGE}", 400),
        ("get", f"/api/v1/promotions?page={HUGE}", 400),
        ("get", f"/api/v1/outbox?page={HUGE}", 400),
        ("get", f"/api/v1/audit?page={HUGE}", 400),
        ("get", f"/api/v1/outbox/{HUGE}", 404),
        ("post", f"/api/v1/outbox/{HUGE}/retry", 404),
    ],
)
def test_huge_numbers_are_refused_not_500(
    app: Flask, tokens: dict[str, str], method: str, path: str, status: int
) -> None:
    """What the schemathesis CLI found against `ritmo serve`: a 500 (SQLite's OverflowError)
    for a page or an outbox id past 64 bits; the audit list takes the same bound."""
    client = app.test_client()
    resp = client.open(path, method=method.upper(), headers=bearer(tokens["admin"]))
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["error"]


# Operations that take nothing and give no id: no link leads to them or from them, so the
# stateful phase has nothing to chain (the other phases call them).
UNLINKED = {"GET /", "GET /healthz", "GET /api/v1/openapi.json"}


def test_stateful_phase_reaches_every_operation(app: Flask, tokens: dict[str, str]) -> None:
    """schemathesis' engine, stateful phase only, following our OpenAPI links alone (its own
    link inference off). Its state machine has a way into every operation (a link, or a
    start); runs of it (a few short ones, each with its own seed, until all are seen) call
    every operation, each that takes an id at least once with one an earlier answer gave
    (an answer other than 404); no answer is a 5xx or differs from the description."""
    from schemathesis.core.result import Ok
    from schemathesis.engine import events, from_schema

    known = _seed(app, tokens["admin"])
    # A notification to list, read and retry (the shipped policy sends none).
    app.extensions["ritmo"].outbox.store.enqueue(
        [NewDelivery("fuzz-1", "promoted", "web", "dev", None, "https://hooks.example", {})], 0
    )
    headers = bearer(tokens["admin"])
    schema = _load(app, headers, known, stateful=True).exclude(path_regex=WEBHOOKS)
    every = {r.ok().label for r in schema.get_all_operations() if isinstance(r, Ok)}
    # Which operations its state machine can call: a start (a root rule) or a link's target
    # (schemathesis 4.32 keeps both on the generated class).
    machine: Any = schema.as_state_machine()
    linked = {label for label, t in machine._transitions.operations.items() if t.incoming}
    entered = linked | set(machine._root_labels)
    assert every - UNLINKED - entered == set(), sorted(entered)

    by_id = {label for label in every if "{" in label}
    reached: dict[str, set[int]] = {}
    failed: list[str] = []
    for seed in range(ROUNDS):
        if not (every - UNLINKED - set(reached)) and all(reached[x] - {404} for x in by_id):
            break
        run = _load(app, headers, known, stateful=True, seed=seed).exclude(path_regex=WEBHOOKS)
        for event in from_schema(run).execute():
            if isinstance(event, events.NonFatalError | events.FatalError):
                failed.append(str(getattr(event, "info", None) or event))
            if not isinstance(event, events.ScenarioFinished):
                continue
            for case_id, node in event.recorder.cases.items():
                interaction = event.recorder.interactions.get(case_id)
                status = interaction.response.status_code if interaction else 0
                reached.setdefault(node.value.operation.label, set()).add(status)
            failed += [
                f"{check.name}: {check.failure_info}"
                for checks in event.recorder.checks.values()
                for check in checks
                if check.status.name == "FAILURE"
            ]
    assert failed == []
    assert every - UNLINKED - set(reached) == set(), sorted(reached.items())
    only_404 = sorted(label for label in by_id if not reached[label] - {404})
    assert only_404 == [], {label: reached[label] for label in by_id}
