"""Spans per step, linked by the correlation id; tracing is off without OTEL_* variables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.auth import Scope
from bot.runtime import Runtime
from bot.telemetry import tracing
from tests.helpers import artifact_body, bearer

# Registration pins dev; dev -> staging is a promotion someone asks for.
POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}]
groups:
  ops-team: {kind: local}
apps:
  web: {}
"""


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.use_provider(provider):
        yield exporter
    provider.shutdown()


def test_record_promote_deploy_spans_carry_the_correlation_id(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str], spans: InMemorySpanExporter
) -> None:
    cid = {"X-Correlation-ID": "build-142"}
    resp = client.post(
        "/api/v1/artifacts",
        json=artifact_body(version="4.0.0"),
        headers={**bearer(tokens["ci"]), **cid},
    )
    assert resp.status_code == 201, resp.json
    art = resp.json["id"]
    resp = client.post(
        f"/api/v1/artifacts/{art}/promote",
        json={"from": "dev", "to": "staging"},
        headers={**bearer(tokens["promoter"]), **cid},
    )
    assert resp.status_code == 201, resp.json
    cd = runtime.tokens.create("cd-system", [Scope.DEPLOYMENTS_WRITE])
    resp = client.post(
        "/api/v1/deployments",
        json={"artifact_id": art, "environment": "staging"},
        headers={**bearer(cd), **cid},
    )
    assert resp.status_code == 201, resp.json

    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {"ritmo.record", "ritmo.promote", "ritmo.deploy"}
    for span in finished.values():
        assert span.attributes is not None
        assert span.attributes["ritmo.correlation_id"] == "build-142"
    record = finished["ritmo.record"].attributes or {}
    assert (record["ritmo.app"], record["ritmo.version"]) == ("web", "4.0.0")
    promote = finished["ritmo.promote"].attributes or {}
    assert promote["ritmo.artifact_id"] == art
    assert (promote["ritmo.environment"], promote["ritmo.from_environment"]) == ("staging", "dev")
    deploy = finished["ritmo.deploy"].attributes or {}
    assert (deploy["ritmo.artifact_id"], deploy["ritmo.environment"]) == (art, "staging")


def test_no_otel_variables_no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_provider", None)
    assert tracing.setup_tracing({}) is None
    assert tracing.setup_tracing({"OTEL_SERVICE_NAME": "ritmo"}) is None
    assert tracing.setup_tracing({"OTEL_TRACES_EXPORTER": "none"}) is None
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    assert tracing.setup_tracing(disabled) is None
    assert tracing._provider is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    # The API's no-op tracer: spans are not recorded.
    with tracing.tracer().start_as_current_span("ritmo.record") as span:
        assert not span.is_recording()


def test_otlp_variables_install_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_provider", None)
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    provider = tracing.setup_tracing(environ, set_global=False)
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "ritmo"
        assert tracing.setup_tracing(environ, set_global=False) is provider  # once
        assert isinstance(tracing.tracer(), Tracer)  # the SDK's (no span: it would go to :9)
    finally:
        assert provider is not None
        provider.shutdown()
