"""DeliveryWorker: handles queued deliveries in the background, with bounded retries."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.store.deliveries import DeliveryQueue
from bot.telemetry.logs import bound
from bot.webhooks.router import Event, Router

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(
        self,
        queue: DeliveryQueue,
        router: Router,
        context: Callable[[], Any],
        clock: Callable[[], float] = time.time,
        idle_wait: float = 5.0,
    ) -> None:
        self._queue = queue
        self._router = router
        self._context = context
        self._clock = clock
        self._idle_wait = idle_wait
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def notify(self) -> None:
        """A delivery was queued: start (after a fork, in this process) and wake up."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ritmo-webhooks", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self.drain():
                self._wake.wait(self._idle_wait)

    def drain(self) -> int:
        """Handle every due delivery; returns how many were handled."""
        handled = 0
        for row in self._queue.due(self._clock()):
            if not self._queue.claim(row["delivery_id"]):
                continue  # another drain has it
            handled += 1
            event = Event(row["event"], row["delivery_id"], json.loads(row["payload"]))
            with bound(delivery=event.delivery_id):  # log lines carry the delivery id
                try:
                    self._router.dispatch(event, self._context())
                except Exception as exc:
                    attempts = int(row["attempts"]) + 1
                    log.exception("delivery %s (%s) failed", event.delivery_id, event.name)
                    retry_at = self._clock() + min(300.0, 2.0**attempts)
                    self._queue.failed(event.delivery_id, str(exc)[:500], attempts, retry_at)
                else:
                    self._queue.done(event.delivery_id)
        return handled
