"""Spans per step (record, promote, deploy, rollback), linked by the correlation id.

Ritmo always talks to the OpenTelemetry API. Until `setup_tracing()` installs the SDK the
API's tracer is a no-op, so a span costs next to nothing. `setup_tracing()` installs the
SDK only when the standard variables ask for it:

- `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`: nothing;
- `OTEL_TRACES_EXPORTER=otlp` (or `console`), or any of `OTEL_EXPORTER_OTLP_ENDPOINT` /
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the SDK with a batch processor and the OTLP/HTTP
  exporter (console: spans printed to stdout), which read the rest of the `OTEL_*`
  variables themselves (headers, timeout, sampler, `OTEL_SERVICE_NAME`, ...);
- none of these: nothing, the API's no-op tracer.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
# The provider setup_tracing (or a test) installed; None: whatever the API's global is.
_provider: trace.TracerProvider | None = None


def tracer() -> trace.Tracer:
    return trace.get_tracer("ritmo", tracer_provider=_provider)


def _wanted(environ: Mapping[str, str]) -> str | None:
    """The exporter the OTEL_* variables ask for, or None for tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = [
        e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()
    ]
    if exporters:
        if "otlp" in exporters:
            return "otlp"
        if "console" in exporters:
            return "console"
        if exporters != ["none"]:
            log.warning(
                "OTEL_TRACES_EXPORTER=%s: Ritmo exports traces with otlp (HTTP) or console "
                "only; tracing stays off",
                ",".join(exporters),
            )
        return None
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return "otlp"
    return None


def setup_tracing(
    environ: Mapping[str, str] | None = None, set_global: bool = True
) -> trace.TracerProvider | None:
    """Install the SDK if the OTEL_* variables say so; returns the provider, or None.

    Called once per process (bot/app.py create_app_from_env, bot/server.py load), never at
    import time; a second call returns the provider the first installed."""
    global _provider
    environ = os.environ if environ is None else environ
    kind = _wanted(environ)
    if kind is None:
        return None
    with _lock:
        if _provider is not None:
            return _provider
        # Imported here: without OTEL_* variables the SDK is never loaded.
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "ritmo"}
        provider = TracerProvider(resource=Resource.create(attributes))
        exporter: SpanExporter
        if kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _provider = provider
    if set_global:
        trace.set_tracer_provider(provider)
    log.info("tracing on: spans go to the %s exporter", kind)
    return provider


@contextmanager
def use_provider(provider: trace.TracerProvider | None) -> Iterator[None]:
    """Send Ritmo's spans to `provider` for a while (tests: the SDK's in-memory exporter)."""
    global _provider
    before = _provider
    _provider = provider
    try:
        yield
    finally:
        _provider = before


def _attributes(arguments: Mapping[str, Any]) -> dict[str, str]:
    """ritmo.* attributes from a step's arguments, whichever of them it has."""
    out: dict[str, str] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, str | int) and value != "" and f"ritmo.{key}" not in out:
            out[f"ritmo.{key}"] = str(value)

    for name, value in arguments.items():
        if name == "correlation_id":
            put("correlation_id", value)
        elif name in ("environment", "deployment_id", "artifact_id"):
            put(name, value)
        elif name == "spec":  # ArtifactSpec
            put("app", getattr(value, "name", None))
            put("version", getattr(value, "version", None))
        elif name == "artifact":  # IndexedArtifact
            record = getattr(value, "record", None)  # an ArtifactRecord
            put("artifact_id", getattr(record, "id", None))
            put("app", getattr(record, "name", None))
            put("version", getattr(record, "version", None))
        elif name == "ask":  # PromotionInput
            put("environment", getattr(value, "to_env", None))
            put("from_environment", getattr(value, "from_env", None))
        elif name == "report":  # a CD engine's report
            put("deploy_name", getattr(value, "name", None))
            put("revision", getattr(value, "revision", None))
        elif name == "seen":  # Observation
            put("deployment_status", getattr(value, "status", None))
        elif name == "request" and isinstance(value, Mapping):  # a promotion request row
            put("correlation_id", value.get("id"))  # a merge's correlation id is the request's
            put("request_id", value.get("id"))
            put("artifact_id", value.get("artifact_id"))
            put("app", value.get("app"))
            put("version", value.get("version"))
            put("environment", value.get("to_env"))
    return out


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the function in a span `name`, with ritmo.* attributes taken from its arguments
    (correlation_id, spec, artifact, ask, environment, request, ...)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                bound = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:  # let the call itself raise
                bound = {}
            with tracer().start_as_current_span(name, attributes=_attributes(bound)):
                return func(*args, **kwargs)

        return wrapper

    return decorate
