"""Prometheus metrics: one CollectorRegistry per app, served at GET /metrics.

Three kinds of series:

- Counted as they happen, in this process: HTTP requests by method, route template, status
  and kind (api, webhook, probe); CD reports ignored, by engine and reason (a closed set
  the app hands in: deploy/intake.py IGNORED_REASONS; deploy imports telemetry, not the
  other way). Every label value comes from a closed set, whatever a client sends: a known
  method or `other`, the route template (never the raw path) or `unmatched`, a standard
  status code or its class (`5xx`). Anonymous requests cannot grow the exposition.
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

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import generate_latest

from bot.telemetry.collectors import (
    ATTEMPT_BUCKETS,
    BATCH_ATTEMPTS,
    GIT_COUNTS,
    GITHUB_CALLS,
    INDEX_TTL,
    IndexCollector,
    LiveCollector,
)

if TYPE_CHECKING:
    from bot.runtime import Runtime

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

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

_CD_IGNORED = (
    "ritmo_cd_ignored",
    "Authentic ArgoCD/Flux reports answered 202 and not recorded, by source and reason "
    "(not-a-deployment, unknown-app, no-revision, unknown-revision, unknown-version)",
)
CD_SOURCES = ("argocd", "flux")


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


def _ignored_counter(registry: CollectorRegistry | None, reasons: Iterable[str]) -> Counter:
    """Every (source, reason) pair starts at 0: a closed set, so rate() sees the first."""
    counter = Counter(*_CD_IGNORED, ["source", "reason"], registry=registry)
    for source in CD_SOURCES:
        for reason in reasons:
            counter.labels(source, reason)
    return counter


def _shared(ignored_reasons: Iterable[str]) -> _Instruments:
    """The process's instruments in multiprocess mode (registered nowhere: their values
    live in files that MultiProcessCollector sums)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            http_requests, http_duration = _http_instruments(None)
            git = {
                key: Counter(name, text, ["writer"], registry=None)
                for key, (name, text) in GIT_COUNTS.items()
            }
            calls = Counter(*GITHUB_CALLS, ["operation"], registry=None)
            ignored = _ignored_counter(None, ignored_reasons)
            batch_attempts = Histogram(
                *BATCH_ATTEMPTS, ["writer"], buckets=ATTEMPT_BUCKETS, registry=None
            )
            _SHARED = _Instruments(
                http_requests, http_duration, git, batch_attempts, calls, ignored
            )
        return _SHARED


class Metrics:
    """The registry of one app and its instruments: this process's own, or with gunicorn
    workers, shared by all of them through prometheus-client's multiprocess files."""

    def __init__(
        self, runtime: Runtime, *, ignored_reasons: Iterable[str], index_ttl: float = INDEX_TTL
    ) -> None:
        """`ignored_reasons`: why a CD report may be ignored, the labels counted from 0."""
        self.registry = CollectorRegistry(auto_describe=False)
        shared_dir = multiprocess_dir()
        if shared_dir:
            shared = _shared(ignored_reasons)
            prometheus_multiprocess.MultiProcessCollector(self.registry, shared_dir)  # type: ignore[no-untyped-call]
            for name, writer in (("manifests", runtime.writer), ("ledger", runtime.ledger)):
                writer.on_count = counter_hook(shared.git, name)
                writer.on_batch = shared.batch_attempts.labels(name).observe
            forge = runtime.forge
            forge.on_call = lambda operation: shared.github_calls.labels(operation).inc()
            self.http_requests, self.http_duration = shared.http_requests, shared.http_duration
            self.cd_ignored = shared.cd_ignored
        else:
            self.http_requests, self.http_duration = _http_instruments(self.registry)
            self.cd_ignored = _ignored_counter(self.registry, ignored_reasons)
        self.live = LiveCollector(runtime, counted_elsewhere=bool(shared_dir))
        self.index = IndexCollector(runtime, ttl=index_ttl)
        self.registry.register(self.live)
        self.registry.register(self.index)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def counter_hook(counters: dict[str, Counter], writer: str) -> Callable[[str], None]:
    def count(name: str) -> None:
        counters[name].labels(writer).inc()

    return count
