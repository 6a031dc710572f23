"""Prometheus metrics: one CollectorRegistry per app, served at GET /metrics.

Three kinds of series:

- Counted as they happen, in this process: HTTP requests by method, route template, status
  and kind (api, webhook, probe); CD reports ignored, by engine and reason (a closed set:
  intake.IGNORED_REASONS). Every label value comes from a closed set, whatever a client
  sends: a known method or `other`, the route template (never the raw path) or
  `unmatched`, a standard status code or its class (`5xx`). Anonymous requests cannot grow
  the exposition.
- Read live at scrape time from the runtime: webhook queue depth, outbox depth by status,
  GitHub API calls by operation and the rate limit left, git push attempts, pushes and
  retries of both writers (the default branch and the deployment ledger).
- Computed at scrape time from the index (every process agrees on them, and they survive
  restarts): five delivery figures. Prometheus histograms cannot be recomputed from rows, so
  these are histograms *of a window*: the promotions, deployments and requests of the
  last WINDOW_DAYS days, with buckets counted by the collector. They are snapshots, not
  counters: read them with histogram_quantile() and _sum/_count directly, never through
  rate(). Rollbacks are an all-time counter (rate() gives the frequency). The queries
  aggregate over bounded windows and the result is cached for INDEX_TTL seconds.

With gunicorn workers > 1, `ritmo serve` switches prometheus-client to its multiprocess
mode (PROMETHEUS_MULTIPROC_DIR in data_dir, cleared at start): the counted series (HTTP,
GitHub calls, git pushes) are written by each worker to shared files and summed at scrape
time, so every worker answers /metrics with the same totals. The index-derived series are
the same from every worker anyway.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import Token
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import values as prometheus_values
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.deploy.intake import IGNORED_REASONS
from bot.store.deployments import deployments
from bot.store.outbox import outbox
from bot.store.schema import artifacts, promotions, rollbacks
from bot.store.schema import requests as promotion_requests
from bot.telemetry import logs
from bot.timestamps import parse_or_none, stamp

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

WINDOW_DAYS = 30
INDEX_TTL = 15.0  # seconds an index computation is served from cache
ROW_LIMIT = 10_000  # rows a windowed query reads at most

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
MINUTE, HOUR, DAY = 60, 3600, 86400
# From seconds (an auto-promotion chain) to weeks (a request waiting for approval).
DURATION_BUCKETS = (
    1, 5, 15, 30, MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR,
    12 * HOUR, DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY,
)  # fmt: skip
OUTBOX_STATUSES = ("queued", "delivering", "dead")  # delivered rows are history, not depth
FINISHED = ("succeeded", "failed", "degraded")

# Label values: closed sets (a client picks the method and the path, not the series).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
_STATUSES = frozenset(int(s) for s in HTTPStatus)

_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # as bot/api/artifacts.py checks
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ACCESS = logging.getLogger("ritmo.access")  # one line per request, with JSON logs


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def prepare_multiprocess(directory: Path) -> None:
    """Before gunicorn forks its workers: counted series go to files in `directory` (what
    an earlier run left there is removed), summed over the workers at scrape time."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)
    # prometheus-client picks its value store when first imported: pick again.
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: drop the live-gauge files of a worker that is gone."""
    if multiprocess_dir():
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@dataclass
class _Instruments:
    """The counted series of one process in multiprocess mode."""

    http_requests: Counter
    http_duration: Histogram
    git: dict[str, Counter]  # push_attempts, pushes, push_retries: by writer
    batch_attempts: Histogram  # push attempts a landed batch took, by writer
    github_calls: Counter  # by operation
    cd_ignored: Counter  # by source and reason


_SHARED: _Instruments | None = None  # multiprocess mode: one set per process
_SHARED_LOCK = threading.Lock()

_GIT_COUNTS = {
    "push_attempts": (
        "ritmo_git_push_attempts",
        "git pushes tried, by writer (manifests: the default branch; ledger: deployments)",
    ),
    "pushes": ("ritmo_git_pushes", "git pushes the remote accepted, by writer"),
    "push_retries": (
        "ritmo_git_push_retries",
        "Writes retried on the remote's new tip after a refused push, by writer",
    ),
}
_CD_IGNORED = (
    "ritmo_cd_ignored",
    "Authentic ArgoCD/Flux reports answered 202 and not recorded, by source and reason "
    "(not-a-deployment, unknown-app, no-revision, unknown-revision, unknown-version)",
)
CD_SOURCES = ("argocd", "flux")
_BATCH_ATTEMPTS = (
    "ritmo_git_push_attempts_per_batch",
    "Push attempts each landed batch of commits took, by writer (1: no refused push)",
)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 10, 20, 50)  # up to manifests.push_attempts' bound
_GITHUB_CALLS = (
    "ritmo_github_api_calls",
    "GitHub API requests made, by Ritmo operation (token refreshes included)",
)


def _http_instruments(registry: CollectorRegistry | None) -> tuple[Counter, Histogram]:
    requests_ = Counter(
        "ritmo_http_requests",
        "HTTP requests handled, by method, route template, status and kind (api, webhook, probe)",
        ["method", "route", "status", "kind"],
        registry=registry,
    )
    duration = Histogram(
        "ritmo_http_request_duration_seconds",
        "Time to answer an HTTP request, by method, route template and kind",
        ["method", "route", "kind"],
        buckets=REQUEST_BUCKETS,
        registry=registry,
    )
    return requests_, duration


def _ignored_counter(registry: CollectorRegistry | None) -> Counter:
    """Every (source, reason) pair starts at 0: a closed set, so rate() sees the first."""
    counter = Counter(*_CD_IGNORED, ["source", "reason"], registry=registry)
    for source in CD_SOURCES:
        for reason in IGNORED_REASONS:
            counter.labels(source, reason)
    return counter


def _shared() -> _Instruments:
    """The process's instruments in multiprocess mode (registered nowhere: their values
    live in files that MultiProcessCollector sums)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            http_requests, http_duration = _http_instruments(None)
            git = {
                key: Counter(name, text, ["writer"], registry=None)
                for key, (name, text) in _GIT_COUNTS.items()
            }
            calls = Counter(*_GITHUB_CALLS, ["operation"], registry=None)
            ignored = _ignored_counter(None)
            batch_attempts = Histogram(
                *_BATCH_ATTEMPTS, ["writer"], buckets=ATTEMPT_BUCKETS, registry=None
            )
            _SHARED = _Instruments(
                http_requests, http_duration, git, batch_attempts, calls, ignored
            )
        return _SHARED


class Metrics:
    """The registry of one app and its instruments: this process's own, or with gunicorn
    workers, shared by all of them through prometheus-client's multiprocess files."""

    def __init__(self, runtime: Runtime, index_ttl: float = INDEX_TTL) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        shared_dir = multiprocess_dir()
        if shared_dir:
            shared = _shared()
            prometheus_multiprocess.MultiProcessCollector(self.registry, shared_dir)  # type: ignore[no-untyped-call]
            for name, writer in (("manifests", runtime.writer), ("ledger", runtime.ledger)):
                writer.on_count = _counter_hook(shared.git, name)
                writer.on_batch = shared.batch_attempts.labels(name).observe
            forge = runtime.requests.forge
            if hasattr(forge, "on_call"):
                forge.on_call = lambda operation: shared.github_calls.labels(operation).inc()
            self.http_requests, self.http_duration = shared.http_requests, shared.http_duration
            self.cd_ignored = shared.cd_ignored
        else:
            self.http_requests, self.http_duration = _http_instruments(self.registry)
            self.cd_ignored = _ignored_counter(self.registry)
        self.live = LiveCollector(runtime, counted_elsewhere=bool(shared_dir))
        self.index = IndexCollector(runtime, ttl=index_ttl)
        self.registry.register(self.live)
        self.registry.register(self.index)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _kind(route: str) -> str:
    if route.startswith("/webhooks/"):
        return "webhook"
    if route in ("/healthz", "/readyz", "/metrics"):
        return "probe"
    return "api"


def request_labels(method: str, rule: str | None, status: int) -> tuple[str, str, str]:
    """(method, route, status) label values, from closed sets (see the module docstring)."""
    method_label = method if method in METHODS else "other"
    status_label = str(status) if status in _STATUSES else f"{status // 100}xx"
    return method_label, rule if rule is not None else UNMATCHED, status_label


def instrument(app: Flask, runtime: Runtime) -> Metrics:
    """Request metrics, correlation ids for logs, and GET /metrics on `app`."""
    metrics = Metrics(runtime)
    app.extensions["ritmo.metrics"] = metrics
    # With JSON logs gunicorn's access log is off and this line replaces it (bot/server.py).
    access_lines = runtime.settings.log_format == "json"
    logs.add_secrets(logs.secrets_of(runtime.settings))

    @app.before_request
    def _begin() -> None:
        g.ritmo_started = time.perf_counter()
        given = request.headers.get("X-Correlation-ID")
        if given is None:
            cid = str(uuid.uuid4())  # the API's correlation_id() takes this one too
        elif _CORRELATION_ID.match(given):
            cid = given
        else:
            cid = str(uuid.uuid4())  # the API answers 400; the bad value is never logged
        tokens: list[tuple[Any, Token[str | None]]] = [
            (logs.correlation_id, logs.correlation_id.set(cid))
        ]
        delivery = request.headers.get("X-GitHub-Delivery")
        if delivery and _DELIVERY_ID.match(delivery):
            tokens.append((logs.delivery_id, logs.delivery_id.set(delivery)))
        g.ritmo_log_tokens = tokens

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("ritmo_started")
        rule = request.url_rule.rule if request.url_rule is not None else None
        method, route, status = request_labels(request.method, rule, response.status_code)
        kind = _kind(route)
        metrics.http_requests.labels(method, route, status, kind).inc()
        if started is not None:
            metrics.http_duration.labels(method, route, kind).observe(time.perf_counter() - started)
        cid = logs.correlation_id.get()
        if cid and "X-Correlation-ID" not in response.headers:
            response.headers["X-Correlation-ID"] = cid
        if access_lines and started is not None:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            fields = {"method": request.method, "route": route, "path": request.path,
                      "status": response.status_code, "duration_ms": duration_ms}  # fmt: skip
            _ACCESS.info(
                "%s %s %s %.1fms", request.method, request.path, response.status_code,
                duration_ms, extra={"fields": fields},
            )  # fmt: skip
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        for var, token in reversed(g.pop("ritmo_log_tokens", [])):
            try:
                var.reset(token)
            except ValueError:  # set in another context: just clear it
                var.set(None)

    def _metrics() -> Response:
        return Response(metrics.exposition(), status=200, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])
    return metrics


def _guarded(name: str, collect: Callable[[], Iterable[Metric]]) -> Iterator[Metric]:
    """A failing source drops its own series from the scrape, never the whole scrape."""
    try:
        yield from list(collect())
    except Exception:
        log.warning("metrics: reading %s failed; its series are left out", name, exc_info=True)


def _counter_hook(counters: dict[str, Counter], writer: str) -> Callable[[str], None]:
    def count(name: str) -> None:
        counters[name].labels(writer).inc()

    return count


class LiveCollector(Collector):
    """Values the runtime holds, read at scrape time. With `counted_elsewhere` (the
    multiprocess mode) the process-local counts are left to the shared counters."""

    def __init__(self, runtime: Runtime, counted_elsewhere: bool = False) -> None:
        self._runtime = runtime
        self._counted_elsewhere = counted_elsewhere

    def collect(self) -> Iterator[Metric]:
        yield from _guarded("the webhook queue", self._queues)
        yield from _guarded("the outbox", self._outbox)
        yield from _guarded("the forge", self._forge)
        if not self._counted_elsewhere:
            yield from _guarded("the writers", self._writers)

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "ritmo_webhook_queue_depth", "Webhook deliveries queued, not yet handled"
        )
        depth.add_metric([], self._runtime.deliveries.depth())
        yield depth

    def _outbox(self) -> Iterator[Metric]:
        query = (
            sa.select(outbox.c.status, sa.func.count())
            .where(outbox.c.status.in_(OUTBOX_STATUSES))
            .group_by(outbox.c.status)
        )
        with self._runtime.index.engine.connect() as conn:
            counts = {str(s): int(n) for s, n in conn.execute(query)}
        family = GaugeMetricFamily(
            "ritmo_outbox_depth",
            "Notifications in the outbox by status: queued, delivering, dead (dead letters)",
            labels=["status"],
        )
        for status in OUTBOX_STATUSES:
            family.add_metric([status], counts.get(status, 0))
        yield family

    def _forge(self) -> Iterator[Metric]:
        forge = self._runtime.requests.forge
        if not self._counted_elsewhere:
            calls = getattr(forge, "calls", None)
            family = CounterMetricFamily(*_GITHUB_CALLS, labels=["operation"])
            for operation, count in sorted(dict(calls or {}).items()):
                family.add_metric([str(operation)], int(count))
            yield family
        rate_limit = getattr(forge, "rate_limit", None)
        known = rate_limit() if callable(rate_limit) else None
        if known is not None:
            remaining, limit = known
            left = GaugeMetricFamily(
                "ritmo_github_rate_limit_remaining",
                "Requests left in the installation's GitHub rate limit, as of the last response",
            )
            left.add_metric([], remaining)
            total = GaugeMetricFamily(
                "ritmo_github_rate_limit_limit",
                "The installation's GitHub rate limit, as of the last response",
            )
            total.add_metric([], limit)
            yield left
            yield total

    def _writers(self) -> Iterator[Metric]:
        writers = (("manifests", self._runtime.writer), ("ledger", self._runtime.ledger))
        attempts = CounterMetricFamily(*_GIT_COUNTS["push_attempts"], labels=["writer"])
        pushed = CounterMetricFamily(*_GIT_COUNTS["pushes"], labels=["writer"])
        retries = CounterMetricFamily(*_GIT_COUNTS["push_retries"], labels=["writer"])
        for name, writer in writers:
            attempts.add_metric([name], writer.push_attempts)
            pushed.add_metric([name], writer.pushes)
            retries.add_metric([name], getattr(writer, "push_retries", 0))
        yield attempts
        yield pushed
        yield retries
        per_batch = HistogramMetricFamily(*_BATCH_ATTEMPTS, labels=["writer"])
        for name, writer in writers:
            counts: dict[int, int] = dict(getattr(writer, "attempts_per_batch", {}))
            buckets = [
                (_le(b), float(sum(t for n, t in counts.items() if n <= b)))
                for b in ATTEMPT_BUCKETS
            ]
            buckets.append(("+Inf", float(sum(counts.values()))))
            total = float(sum(n * t for n, t in counts.items()))
            per_batch.add_metric([name], buckets, sum_value=total)
        yield per_batch


def _seconds(start: Any, end: Any) -> float | None:
    a, b = parse_or_none(start), parse_or_none(end)
    if a is None or b is None or b < a:
        return None
    return (b - a).total_seconds()


def histogram(
    name: str,
    documentation: str,
    labels: Sequence[str],
    samples: dict[tuple[str, ...], list[float]],
    bounds: Sequence[float] = DURATION_BUCKETS,
) -> HistogramMetricFamily:
    """A histogram family with the buckets counted here, from the values themselves."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for key, values in sorted(samples.items()):
        buckets = [(_le(b), float(sum(1 for v in values if v <= b))) for b in bounds]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric(list(key), buckets, sum_value=float(sum(values)))
    return family


def _le(bound: float) -> str:
    return str(float(bound))


class IndexCollector(Collector):
    """Five delivery figures, from the index at scrape time (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        ttl: float = INDEX_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._runtime = runtime
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.ttl:
                self._cached = (now, list(_guarded("the index", self._compute)))
            families = self._cached[1]
        yield from families

    def _production(self) -> str:
        return str(self._runtime.policy().environments[-1].name)

    def _compute(self) -> Iterator[Metric]:
        since = stamp(self._clock() - timedelta(days=WINDOW_DAYS))
        with self._runtime.index.engine.connect() as conn:
            yield self._hops(conn, since)
            yield from self._deployments(conn, since)
            yield self._time_to_production(conn, since)
            yield self._rollbacks(conn)
            yield self._approval_wait(conn, since)

    def _hops(self, conn: sa.Connection, since: str) -> Metric:
        """Each promotion's time since its artifact reached the environment it left (the
        first hop, from "registered": since the artifact was recorded)."""
        p, q = promotions.alias("p"), promotions.alias("q")
        arrived = (
            sa.select(sa.func.max(q.c.promoted_at))
            .where(
                q.c.artifact_id == p.c.artifact_id,
                q.c.to_env == p.c.from_env,
                q.c.promoted_at <= p.c.promoted_at,
            )
            .scalar_subquery()
        )
        query = (
            sa.select(p.c.from_env, p.c.to_env, p.c.promoted_at, arrived, artifacts.c.created_at)
            .select_from(p.outerjoin(artifacts, artifacts.c.id == p.c.artifact_id))
            .where(p.c.promoted_at >= since)
            .order_by(p.c.seq.desc())
            .limit(ROW_LIMIT)
        )
        samples: dict[tuple[str, ...], list[float]] = {}
        for from_env, to_env, promoted_at, reached, created_at in conn.execute(query):
            start = reached or created_at  # the first hop's start is the record
            seconds = _seconds(start, promoted_at)
            if seconds is not None:
                samples.setdefault((str(from_env), str(to_env)), []).append(seconds)
        return histogram(
            "ritmo_promotion_hop_seconds",
            f"Promotion time per hop (registered->dev->staging->production): from the "
            f"artifact reaching from_env to its promotion to to_env; last {WINDOW_DAYS} days",
            ["from_env", "to_env"],
            samples,
        )

    def _deployments(self, conn: sa.Connection, since: str) -> Iterator[Metric]:
        query = (
            sa.select(deployments.c.environment, deployments.c.status, sa.func.count())
            .where(deployments.c.created_at >= since)
            .group_by(deployments.c.environment, deployments.c.status)
        )
        counts: dict[str, dict[str, int]] = {}
        for env, status, count in conn.execute(query):
            counts.setdefault(str(env), {})[str(status)] = int(count)
        total = GaugeMetricFamily(
            "ritmo_deployments",
            f"Deployments by environment and status; last {WINDOW_DAYS} days",
            labels=["environment", "status"],
        )
        ratio = GaugeMetricFamily(
            "ritmo_deployment_success_ratio",
            f"Deployment success rate per environment: succeeded / (succeeded + failed + "
            f"degraded); last {WINDOW_DAYS} days",
            labels=["environment"],
        )
        for env, by_status in sorted(counts.items()):
            for status, count in sorted(by_status.items()):
                total.add_metric([env, status], count)
            finished = sum(by_status.get(s, 0) for s in FINISHED)
            if finished:
                ratio.add_metric([env], by_status.get("succeeded", 0) / finished)
        yield total
        yield ratio

    def _time_to_production(self, conn: sa.Connection, since: str) -> Metric:
        """From the artifact's record to its first successful deployment in the last
        environment."""
        production = self._production()
        query = (
            sa.select(deployments.c.record, artifacts.c.created_at)
            .select_from(deployments.join(artifacts, artifacts.c.id == deployments.c.artifact_id))
            .where(
                deployments.c.environment == production,
                deployments.c.status == "succeeded",
                deployments.c.created_at >= since,
            )
            .order_by(deployments.c.seq.desc())
            .limit(ROW_LIMIT)
        )
        values: list[float] = []
        for raw, created_at in conn.execute(query):
            record = json.loads(raw)
            seconds = _seconds(created_at, record.get("succeeded_at") or record["created_at"])
            if seconds is not None:
                values.append(seconds)
        return histogram(
            "ritmo_time_to_production_seconds",
            f"Time to production: from the artifact's record to its successful deployment "
            f"in the last environment; last {WINDOW_DAYS} days",
            ["environment"],
            {(production,): values} if values else {},
        )

    def _rollbacks(self, conn: sa.Connection) -> Metric:
        query = sa.select(rollbacks.c.environment, sa.func.count()).group_by(
            rollbacks.c.environment
        )
        family = CounterMetricFamily(
            "ritmo_rollbacks",
            "Rollbacks by environment, ever (rate() gives the rollback frequency)",
            labels=["environment"],
        )
        for env, count in conn.execute(query):
            family.add_metric([str(env)], int(count))
        return family

    def _approval_wait(self, conn: sa.Connection, since: str) -> Metric:
        r = promotion_requests
        query = (
            sa.select(r.c.from_env, r.c.to_env, r.c.opened_at, r.c.closed_at)
            .where(r.c.status == "merged", r.c.closed_at >= since)
            .order_by(r.c.seq.desc())
            .limit(ROW_LIMIT)
        )
        samples: dict[tuple[str, ...], list[float]] = {}
        for from_env, to_env, opened_at, closed_at in conn.execute(query):
            seconds = _seconds(opened_at, closed_at)
            if seconds is not None:
                samples.setdefault((str(from_env), str(to_env)), []).append(seconds)
        return histogram(
            "ritmo_approval_wait_seconds",
            f"Approval wait time: from a promotion request's opening to its merge; last "
            f"{WINDOW_DAYS} days",
            ["from_env", "to_env"],
            samples,
        )
