"""The HTTP middleware: request counts and durations by closed label sets, one access
line per request with JSON logs, and GET /metrics (bot/telemetry/metrics.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from bot.telemetry import correlation, logs
from bot.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from bot.runtime import Runtime

# Label values: closed sets (a client picks the method and the path, not the series).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
_STATUSES = frozenset(int(s) for s in HTTPStatus)
_ACCESS = logging.getLogger("ritmo.access")  # one line per request, with JSON logs


def _kind(route: str) -> str:
    if route.startswith("/webhooks/"):
        return "webhook"
    if route in ("/healthz", "/readyz", "/metrics"):
        return "probe"
    return "api"


def request_labels(method: str, rule: str | None, status: int) -> tuple[str, str, str]:
    """(method, route, status) label values, from closed sets (see bot/telemetry/metrics.py)."""
    method_label = method if method in METHODS else "other"
    status_label = str(status) if status in _STATUSES else f"{status // 100}xx"
    return method_label, rule if rule is not None else UNMATCHED, status_label


def observe(metrics: Metrics, access_lines: bool, method: str, rule: str | None, path: str,
            status_code: int, started: float) -> None:  # fmt: skip
    """Count one answered request, time it from `started` (perf_counter), and write its
    access line when Ritmo writes them (JSON logs)."""
    method_label, route, status = request_labels(method, rule, status_code)
    kind = _kind(route)
    metrics.http_requests.labels(method_label, route, status, kind).inc()
    duration = time.perf_counter() - started
    metrics.http_duration.labels(method_label, route, kind).observe(duration)
    if access_lines:
        duration_ms = round(duration * 1000, 1)
        fields = {"method": method, "route": route, "path": path, "status": status_code,
                  "duration_ms": duration_ms}  # fmt: skip
        _ACCESS.info(
            "%s %s %s %.1fms", method, path, status_code, duration_ms, extra={"fields": fields}
        )


def instrument(app: Flask, runtime: Runtime, *, ignored_reasons: Iterable[str]) -> Metrics:
    """Request metrics, correlation ids for logs, and GET /metrics on `app`;
    `ignored_reasons`: why a CD report may be ignored (counted by reason from 0)."""
    metrics = Metrics(runtime, ignored_reasons=ignored_reasons)
    app.extensions["ritmo.metrics"] = metrics
    # With JSON logs gunicorn's access log is off and this line replaces it (bot/server.py).
    access_lines = runtime.settings.log_format == "json"
    logs.add_secrets(logs.secrets_of(runtime.settings))

    correlation.bind(app)

    @app.before_request
    def _begin() -> None:
        g.ritmo_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else None
        started = g.get("ritmo_started")
        if started is None:  # a before_request hook refused it before _begin ran
            method, route, status = request_labels(request.method, rule, response.status_code)
            metrics.http_requests.labels(method, route, status, _kind(route)).inc()
        else:
            observe(metrics, access_lines, request.method, rule, request.path,
                    response.status_code, started)  # fmt: skip
        return response

    def _metrics() -> Response:
        return Response(metrics.exposition(), status=200, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])
    return metrics
