"""Outbox: `emit` renders the policy's matching integrations into durable rows, in one
transaction; a worker thread (or the scheduler, through `deliver_due`) sends what is due.

Emitting never raises into the caller for a delivery problem (or a database one: the
caller's work, a pushed commit, is done; the failure is logged). Delivery is at least
once: a row whose holder died is sent again once its lease runs out, with the same
Idempotency-Key.
"""

from __future__ import annotations

import logging
import random as _random
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import requests
from sqlalchemy.engine import Engine

from bot.config import NotifySettings
from bot.notify.outcomes import Outcome
from bot.notify.render import EventContext, render_all
from bot.notify.targets import GITHUB_API, Sender
from bot.policy.integration_fields import EVENTS
from bot.store.lease import Heartbeat
from bot.store.outbox import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    NewDelivery,
    OutboxRow,
    OutboxStore,
    Status,
)

if TYPE_CHECKING:
    from bot.notify.gitops import GitopsUpdater
    from bot.policy.model import Policy

__all__ = ["EventContext", "Outbox"]

log = logging.getLogger(__name__)

_MIN_WAIT = 0.05


class Outbox:
    """The policy's integrations, delivered durably.

    `policy` returns the policy in force (e.g. the runtime's PolicySource); it is read
    at each emit, and what it renders is stored, so a later edit changes no queued work.
    `github_token` supplies Ritmo's installation token for GitHub targets that name no
    secret. `gitops` delivers update_gitops_repo (without it those are dead letters).
    `clock`, `random` and the backoff bounds are there for tests.
    """

    def __init__(
        self,
        engine: Engine,
        policy: Callable[[], Policy],
        settings: NotifySettings,
        *,
        github_token: Callable[[], str] | None = None,
        api_url: str = GITHUB_API,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        idle_wait: float = 30.0,
        batch: int = 50,
        session: Callable[[], requests.Session] = requests.Session,
        gitops: GitopsUpdater | None = None,
        lease: float = 60.0,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._idle_wait = idle_wait
        self._batch = batch
        self.store = OutboxStore(
            engine,
            settings.max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            random=random,
            lease=lease,
        )
        self._sender = Sender(
            settings.secrets,
            settings.timeout,
            github_token=github_token,
            api_url=api_url,
            session=session,
            clock=clock,
            gitops=gitops,
        )
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop: threading.Event | None = None  # set while started
        self._thread: threading.Thread | None = None

    # -- emitting ------------------------------------------------------------------
    def emit(self, event: str, context: EventContext) -> list[int]:
        """Queue the event for every integration that wants it; returns the new row ids
        (none when nothing matches or this event id was emitted before).

        Raises ValueError for an unknown event name (a bug in the caller); anything
        else is logged, never raised.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; the events are {', '.join(EVENTS)}")
        try:
            rendered = render_all(self._policy().integrations, event, context)
            items = [
                NewDelivery(
                    key=r.key,
                    event=event,
                    app=context.app,
                    environment=context.environment,
                    integration=r.integration,
                    target=r.kind,
                    request=r.request(),
                    correlation_id=context.correlation_id,
                )
                for r in rendered
            ]
            ids = self.store.enqueue(items, self._clock())
        except Exception:
            log.exception(
                "could not queue the %s notifications of %s (%s); they are not sent",
                event,
                context.app,
                context.event_id,
            )
            return []
        if ids:
            log.info("queued %d notification(s) for %s %s", len(ids), event, context.app)
            self.wake()
        return ids

    # -- delivering ----------------------------------------------------------------
    def deliver_due(self, now: float | None = None) -> int:
        """Attempt every row due at `now` (default: the clock) once; returns how many
        were attempted. Safe to run in several threads: each row is claimed first."""
        stamp: Callable[[], float] = self._clock if now is None else (lambda: now)
        attempted = 0
        for row in self.store.due(stamp(), self._batch):
            if not self.store.claim(row.id, stamp()):
                continue  # another worker (here or on another replica) has it
            attempted += 1
            if row.status == "delivering":
                # Its holder died mid-attempt: that counts as a failed attempt (backoff, and
                # dead after max_attempts), so a row that kills its sender cannot loop.
                error = "the process sending it stopped before recording the outcome"
                self.store.failed(row.id, error, stamp())
                log.warning("notification %d (%s): %s", row.id, row.target, error)
                continue
            with Heartbeat(partial(self._renew, row.id), self.store.lease / 3):
                self._attempt(row, stamp)
        return attempted

    def _renew(self, row_id: int) -> None:
        self.store.renew(row_id, self._clock())

    def _attempt(self, row: OutboxRow, stamp: Callable[[], float]) -> None:
        request = row.request
        try:
            if request.get("refused"):  # rendering found it goes elsewhere: never sent
                outcome = Outcome("dead", str(request["refused"]))
            else:
                outcome = self._sender.send(
                    row.target, request["target"], request["event"], row.key
                )
        except Exception as exc:  # a bug, not the target's doing: count it as an attempt
            log.exception("notification %d (%s) failed unexpectedly", row.id, row.target)
            outcome = Outcome("retry", f"{type(exc).__name__}: {exc}")
        where = f"notification {row.id} ({row.event} {row.app} -> {row.target})"
        if outcome.status == "delivered":
            self.store.delivered(row.id, stamp())
            log.info("%s delivered (%s)", where, outcome.detail)
        elif outcome.status == "dead":
            self.store.dead(row.id, outcome.detail)
            log.error("%s failed for good: %s", where, outcome.detail)
        else:
            status = self.store.failed(row.id, outcome.detail, stamp(), outcome.retry_after)
            if status == "dead":
                log.error("%s gave up: %s", where, outcome.detail)
            else:
                log.warning("%s failed, will retry: %s", where, outcome.detail)

    # -- the worker thread -----------------------------------------------------------
    def start(self) -> None:
        """Deliver in a background thread until `stop`."""
        with self._lock:
            if self._stop is None:
                self._stop = threading.Event()
            self._ensure_thread()
        self._wake.set()

    def wake(self) -> None:
        """Something was queued or requeued: deliver now (if started)."""
        with self._lock:
            if self._stop is not None:
                self._ensure_thread()  # e.g. after a fork: threads do not survive it
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, letting an attempt in progress finish; safe to repeat."""
        with self._lock:
            stop, thread = self._stop, self._thread
            self._stop, self._thread = None, None
        if stop is not None:
            stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            assert self._stop is not None
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="ritmo-outbox", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                self.deliver_due()
                wait = self._until_due()
            except Exception:
                log.exception("the outbox worker failed; it tries again in %ss", self._idle_wait)
                wait = self._idle_wait
            if stop.is_set():
                break
            self._wake.wait(wait)

    def _until_due(self) -> float:
        due = self.store.next_due()
        if due is None:
            return self._idle_wait
        return min(self._idle_wait, max(_MIN_WAIT, due - self._clock()))

    # -- reading and requeueing (the API) ------------------------------------------------
    def search(
        self, status: Status | None = None, page: int = 1, per_page: int = 50
    ) -> tuple[list[OutboxRow], int]:
        return self.store.search(status, (page - 1) * per_page, per_page)

    def get(self, row_id: int) -> OutboxRow | None:
        return self.store.get(row_id)

    def retry(self, row_id: int) -> OutboxRow | None:
        """Requeue a dead letter, due now. None: no such row; raises
        bot.store.outbox.NotDead for a row that is not dead."""
        row = self.store.retry(row_id, self._clock())
        if row is not None:
            log.info("notification %d requeued by hand", row_id)
            self.wake()
        return row
