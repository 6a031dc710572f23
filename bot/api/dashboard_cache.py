"""The dashboard's rendered pages, kept until what they show changes.

`GET /` is anonymous, so its cost must not grow with the history or with the number of
callers: a page is rendered once per state (the index's tip, the deployment ledger's tip,
the open requests and their branch tips, the policy in force) and served from here.

When the state moves (or `max_age` passes: ages such as "5m ago" go stale, and a GitHub
review moves no tip), the page kept is still served, at once, while one background
thread renders the new one: no caller waits for a render except the very first of a page,
and a page is rendered at most once per state however many ask. The page says when it
was generated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

MAX_AGE = 60.0
STATE_TTL = 1.0  # how long one read of the state answers for every caller

# page -> (the state it shows, when it was rendered, the text)
Kept = tuple[Hashable, float, str]


class PageCache:
    def __init__(
        self,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        state_ttl: float = STATE_TTL,
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        self._state_ttl = state_ttl
        self._state: tuple[Hashable, float] | None = None
        self._lock = threading.Lock()  # guards _pages and _refreshing
        self._render_lock = threading.Lock()  # one render at a time
        self._pages: dict[Hashable, Kept] = {}
        self._refreshing: dict[Hashable, threading.Thread] = {}
        self.renders = 0  # how many renders this cache ran (the tests and benchmark count)

    def get(self, state: Hashable, page: Hashable, render: Callable[[], str]) -> str:
        """The page for `state`: kept, else the one kept for an older state while the new
        one renders in the background, else (the first time) rendered now."""
        kept = self._pages.get(page)
        if kept is not None and self._fresh(kept, state):
            return kept[2]
        if kept is None:
            with self._render_lock:  # callers arriving together share one render
                kept = self._pages.get(page)
                if kept is None:
                    return self._render(state, page, render)
        if not self._fresh(kept, state):
            self._refresh(state, page, render)
        return kept[2]

    def state(self, read: Callable[[], Hashable]) -> Hashable:
        """`read()`, asked at most once per `state_ttl`: under many concurrent callers a
        request costs a lookup, and a change shows within `state_ttl` plus its render."""
        now = self._clock()
        kept = self._state
        if kept is not None and now - kept[1] < self._state_ttl:
            return kept[0]
        value = read()
        self._state = (value, now)
        return value

    def settle(self, timeout: float = 60.0) -> None:
        """Wait for the background renders under way (tests, the benchmark)."""
        with self._lock:
            threads = list(self._refreshing.values())
        for thread in threads:
            thread.join(timeout)

    def _fresh(self, kept: Kept, state: Hashable) -> bool:
        return kept[0] == state and self._clock() - kept[1] < self._max_age

    def _render(self, state: Hashable, page: Hashable, render: Callable[[], str]) -> str:
        """Render under the render lock (held by the caller or taken here)."""
        text = render()
        with self._lock:
            self.renders += 1
            self._pages[page] = (state, self._clock(), text)
        return text

    def _refresh(self, state: Hashable, page: Hashable, render: Callable[[], str]) -> None:
        with self._lock:
            if page in self._refreshing:
                return  # one is under way; whoever asks after it ends starts the next
            thread = threading.Thread(
                target=self._run, args=(state, page, render), name="ritmo-dashboard",
                daemon=True,
            )  # fmt: skip
            self._refreshing[page] = thread
        thread.start()

    def _run(self, state: Hashable, page: Hashable, render: Callable[[], str]) -> None:
        try:
            with self._render_lock:
                kept = self._pages.get(page)
                if kept is None or not self._fresh(kept, state):
                    self._render(state, page, render)
        except Exception:
            log.exception("the dashboard page %s could not be rendered; the last is shown", page)
        finally:
            with self._lock:
                self._refreshing.pop(page, None)
