"""The collectors /metrics reads at scrape time: LiveCollector (what the runtime holds)
and IndexCollector (delivery figures computed from the index over a window); see
bot/telemetry/metrics.py for what each series means."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot.statuses import DeploymentStatus, RequestStatus
from bot.store.deployments import deployments
from bot.store.outbox import outbox
from bot.store.schema import artifacts, promotions, rollbacks
from bot.store.schema import requests as promotion_requests
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
FINISHED = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.DEGRADED)

GIT_COUNTS = {
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
BATCH_ATTEMPTS = (
    "ritmo_git_push_attempts_per_batch",
    "Push attempts each landed batch of commits took, by writer (1: no refused push)",
)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 10, 20, 50)  # up to manifests.push_attempts' bound
GITHUB_CALLS = (
    "ritmo_github_api_calls",
    "GitHub API requests made, by Ritmo operation (token refreshes included)",
)


def _guarded(name: str, collect: Callable[[], Iterable[Metric]]) -> Iterator[Metric]:
    """A failing source drops its own series from the scrape, never the whole scrape."""
    try:
        yield from list(collect())
    except Exception:
        log.warning("metrics: reading %s failed; its series are left out", name, exc_info=True)


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
        forge = self._runtime.forge
        if not self._counted_elsewhere:
            family = CounterMetricFamily(*GITHUB_CALLS, labels=["operation"])
            for operation, count in sorted(dict(forge.calls).items()):
                family.add_metric([str(operation)], int(count))
            yield family
        known = forge.rate_limit()
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
        attempts = CounterMetricFamily(*GIT_COUNTS["push_attempts"], labels=["writer"])
        pushed = CounterMetricFamily(*GIT_COUNTS["pushes"], labels=["writer"])
        retries = CounterMetricFamily(*GIT_COUNTS["push_retries"], labels=["writer"])
        for name, writer in writers:
            attempts.add_metric([name], writer.push_attempts)
            pushed.add_metric([name], writer.pushes)
            retries.add_metric([name], getattr(writer, "push_retries", 0))
        yield attempts
        yield pushed
        yield retries
        per_batch = HistogramMetricFamily(*BATCH_ATTEMPTS, labels=["writer"])
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


def _per_hop(spans: Iterable[Sequence[Any]]) -> dict[tuple[str, ...], list[float]]:
    """(from_env, to_env, start, end) rows as seconds per (from_env, to_env); a row
    without both times, or ending before it starts, is left out."""
    samples: dict[tuple[str, ...], list[float]] = {}
    for from_env, to_env, start, end in spans:
        seconds = _seconds(start, end)
        if seconds is not None:
            samples.setdefault((str(from_env), str(to_env)), []).append(seconds)
    return samples


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
        # The first hop's start is the record.
        spans = (
            (from_env, to_env, reached or created_at, promoted_at)
            for from_env, to_env, promoted_at, reached, created_at in conn.execute(query)
        )
        return histogram(
            "ritmo_promotion_hop_seconds",
            f"Promotion time per hop (registered->dev->staging->production): from the "
            f"artifact reaching from_env to its promotion to to_env; last {WINDOW_DAYS} days",
            ["from_env", "to_env"],
            _per_hop(spans),
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
                ratio.add_metric([env], by_status.get(DeploymentStatus.SUCCEEDED, 0) / finished)
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
                deployments.c.status == DeploymentStatus.SUCCEEDED,
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
            .where(r.c.status == RequestStatus.MERGED, r.c.closed_at >= since)
            .order_by(r.c.seq.desc())
            .limit(ROW_LIMIT)
        )
        return histogram(
            "ritmo_approval_wait_seconds",
            f"Approval wait time: from a promotion request's opening to its merge; last "
            f"{WINDOW_DAYS} days",
            ["from_env", "to_env"],
            _per_hop(conn.execute(query)),
        )
