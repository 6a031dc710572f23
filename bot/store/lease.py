"""Leases on queued work shared by replicas: a row being handled carries the time its
holder's claim runs out, renewed while the holder works. A holder that dies stops renewing,
and the row is due again for anyone once the lease has run out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls `renew` every `every` seconds in a daemon thread while the block runs."""

    def __init__(self, renew: Callable[[], None], every: float) -> None:
        self._renew = renew
        self._every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ritmo-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            try:
                self._renew()
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("could not renew a lease", exc_info=True)
