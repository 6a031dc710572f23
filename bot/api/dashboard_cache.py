"""The dashboard's rendered pages, kept until what they show changes.

`GET /` is anonymous, so its cost must not grow with the history or with the number of
callers: a page is rendered once per state (the index's tip, the deployment ledger's tip,
the open requests and their branch tips, the policy in force) and served from here until
that state moves, or `max_age` passes (ages such as "5m ago" go stale, and a GitHub
review does not move any tip). Callers that arrive while a page renders wait for that one
render instead of starting their own: at most one render per state and page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

MAX_AGE = 60.0


class PageCache:
    def __init__(
        self, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()  # held while rendering: one render at a time
        # (state, when it was first rendered, page -> text), replaced whole: readers
        # take no lock.
        self._entry: tuple[Hashable, float, dict[Hashable, str]] | None = None
        self.renders = 0  # how many renders this cache ran (the tests and benchmark count)

    def get(self, state: Hashable, page: Hashable, render: Callable[[], str]) -> str:
        """The page for `state`, rendered by `render` only when not kept already."""
        found = self._kept(state, page)
        if found is not None:
            return found
        with self._lock:
            found = self._kept(state, page)  # rendered by whoever held the lock before us
            if found is not None:
                return found
            text = render()
            self.renders += 1
            entry = self._entry
            if entry is None or entry[0] != state or self._expired(entry[1]):
                self._entry = (state, self._clock(), {page: text})
            else:
                self._entry = (state, entry[1], {**entry[2], page: text})
            return text

    def _expired(self, since: float) -> bool:
        return self._clock() - since >= self._max_age

    def _kept(self, state: Hashable, page: Hashable) -> str | None:
        entry = self._entry
        if entry is None or entry[0] != state or self._expired(entry[1]):
            return None
        return entry[2].get(page)
