"""DeliveryWorker: handles queued deliveries in the background, with bounded retries."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from bot.store.deliveries import DeliveryQueue
from bot.store.lease import Heartbeat
from bot.telemetry.logs import bound
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(
        self,
        queue: DeliveryQueue,
        router: Router,
        context: Callable[[], HandlerContext],
        clock: Callable[[], float] = time.time,
        idle_wait: float = 5.0,
        settle: float = 0.05,
        settle_at_most: float = 1.0,
    ) -> None:
        self._queue = queue
        self._router = router
        self._context = context
        self._clock = clock
        self._idle_wait = idle_wait
        self._settle = settle
        self._settle_at_most = settle_at_most
        self._last_arrival = 0.0  # time.monotonic() of the latest signed delivery
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def notify(self) -> None:
        """A delivery was queued: start (after a fork, in this process) and wake up."""
        self.arriving()  # first: a thread started below must not find no arrival at all
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ritmo-webhooks", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def arriving(self) -> None:
        """A signed delivery is being acknowledged (queued or not): hold back a moment."""
        self._last_arrival = time.monotonic()

    def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self.drain():
                self._wake.wait(self._idle_wait)

    def _let_acknowledgements_finish(self) -> None:
        """Wait until signed deliveries stop arriving for `settle` seconds (`settle_at_most`
        at the longest): a burst of acknowledgements shares this process's interpreter and
        the database's writer with the handlers, and answering comes first."""
        started = time.monotonic()
        while True:
            quiet_for = time.monotonic() - self._last_arrival
            left = self._settle_at_most - (time.monotonic() - started)
            if quiet_for >= self._settle or left <= 0:
                return
            time.sleep(min(self._settle - quiet_for, left))

    def drain(self) -> int:
        """Handle every due delivery; returns how many were handled."""
        handled = 0
        for row in self._queue.due(self._clock()):
            self._let_acknowledgements_finish()  # before each: a burst can start meanwhile
            delivery = row["delivery_id"]
            if not self._queue.claim(delivery, self._clock()):
                continue  # another drain (here or on another replica) has it
            handled += 1
            attempts = int(row["attempts"]) + 1  # the claim counted this one
            if attempts > self._queue.max_attempts:
                # Every earlier holder died inside the handler: do not take the next one down.
                error = f"gave up after {attempts - 1} attempts that never finished"
                log.error("delivery %s (%s): %s", delivery, row["event"], error)
                self._queue.failed(delivery, error, attempts, self._clock())
                continue
            event = Event(row["event"], delivery, json.loads(row["payload"]))
            beat = Heartbeat(partial(self._renew, delivery), self._queue.lease / 3)
            with bound(delivery=delivery), beat:  # log lines carry the delivery id
                try:
                    self._router.dispatch(event, self._context())
                except Exception as exc:
                    log.exception("delivery %s (%s) failed", event.delivery_id, event.name)
                    retry_at = self._clock() + min(300.0, 2.0**attempts)
                    self._queue.failed(event.delivery_id, str(exc)[:500], attempts, retry_at)
                else:
                    self._queue.done(event.delivery_id)
        return handled

    def _renew(self, delivery: str) -> None:
        self._queue.renew(delivery, self._clock())
