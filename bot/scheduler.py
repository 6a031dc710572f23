"""The periodic job: follow the default branch (drift), settle the pending promotion
requests, promote what soaked enough.

Started where the app serves (gunicorn's worker, the WSGI factory), never by create_app:
tests build many apps. A failing run is logged; the next run tries again.
"""

from __future__ import annotations

import atexit
import logging
import uuid
from collections.abc import Callable
from datetime import UTC

from apscheduler.schedulers.background import BackgroundScheduler

from bot.runtime import Runtime
from bot.store.leader import LeaderLock

JOB_ID = "ritmo-expire-due"

log = logging.getLogger(__name__)


def follow_branch(runtime: Runtime) -> None:
    """Fetch the default branch: the index follows, and drift (a pin or a policy change
    Ritmo did not make) is recorded, whether or not a push webhook told of it."""
    try:
        runtime.writer.sync()
        runtime.drift.settle()
    except Exception:
        log.exception("following the default branch failed; it runs again at the next interval")


def expire_due(runtime: Runtime) -> list[str]:
    """One run of the job: expire (and merge) what is due. Errors are logged, not raised."""
    try:
        expired = runtime.requests.expire_due()
    except Exception:
        log.exception("the approval-timeout job failed; it runs again at the next interval")
        return []
    if expired:
        log.info("expired promotion requests: %s", ", ".join(expired))
    return expired


def _counted(job: str, run: Callable[[str], int]) -> int:
    """`run` with a fresh correlation id: how many it did; a failure is logged, as 0."""
    try:
        return run(f"scheduler-{uuid.uuid4()}")
    except Exception:
        log.exception("the %s job failed; it runs again at the next interval", job)
        return 0


def promote_due(runtime: Runtime) -> int:
    """Deployment-gated auto-promotions whose soak (or freeze) ended since the report."""
    return _counted("soak", lambda cid: runtime.deployments.gating.promote_due(cid))


def rollback_due(runtime: Runtime) -> int:
    """Automatic rollbacks that failed when the failure was reported."""
    return _counted("rollback", lambda cid: runtime.deployments.rollbacks.rollback_due(cid))


def run_due(runtime: Runtime) -> None:
    """Every interval: the branch as it is now, requests that expired or were approved,
    soaks that ended, rollbacks still owed."""
    follow_branch(runtime)
    expire_due(runtime)
    rollback_due(runtime)
    promote_due(runtime)


def run_if_leader(runtime: Runtime, leader: LeaderLock) -> bool:
    """`run_due` on the one replica holding the leader lock; the others try to take it at
    each interval, so the work moves within one interval when the leader dies."""
    if not leader.is_leader():
        return False
    run_due(runtime)
    return True


def start_scheduler(runtime: Runtime, interval_seconds: int = 60) -> BackgroundScheduler:
    """Run `expire_due` every `interval_seconds` in a background thread; stopped at exit."""
    if interval_seconds < 1:
        raise ValueError("interval_seconds must be at least 1")
    # APScheduler logs every run at INFO; keep its warnings (missed runs) and errors only.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone=UTC)
    # Replicas on one PostgreSQL database, or gunicorn workers on one SQLite file: only
    # the leader runs the jobs.
    leader = LeaderLock(runtime.index.engine, runtime.settings.data_dir / "scheduler.lock")
    scheduler.ritmo_leader = leader
    scheduler.add_job(
        run_if_leader,
        "interval",
        args=[runtime, leader],
        seconds=interval_seconds,
        id=JOB_ID,
        name="settle due promotion requests and soaks",
        coalesce=True,  # runs missed while one was busy collapse into one
        max_instances=1,
        misfire_grace_time=interval_seconds,
    )
    scheduler.start()
    atexit.register(stop_scheduler, scheduler)
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Shut down, letting a run in progress finish; safe to call more than once."""
    if scheduler.running:
        scheduler.shutdown(wait=True)
    leader = getattr(scheduler, "ritmo_leader", None)
    if leader is not None:
        leader.release()
