"""Group commit: concurrent callers share one transaction, each returning once it committed.

The first caller to arrive leads: it takes everything queued so far and commits it as one
batch while the others wait. Whoever arrives during that commit queues for the next batch,
whose first waiter is handed the lead when the commit ends. No thread of its own and no
timer: at low load a batch is one item, committed at once; under a burst the batches grow
by themselves to what arrived during one commit (its fsync included).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("item", "ready", "leads", "result", "error")

    def __init__(self, item: T) -> None:
        self.item = item
        self.ready = threading.Event()
        self.leads = False  # woken to lead the next batch, not with a result
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """`submit(item)` returns `commit(batch)`'s result for `item`, after that batch's commit.

    `commit` gets up to `max_batch` items in arrival order and returns one result per item,
    in the same order; if it raises, every caller of that batch gets the exception."""

    def __init__(self, commit: Callable[[list[T]], Sequence[R]], max_batch: int = 200) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False  # a leader is committing

    @property
    def waiting(self) -> int:
        """Items queued for the next batch (not the one being committed)."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            leads = not self._busy
            self._busy = True
        if not leads:
            slot.ready.wait()
            leads = slot.leads  # handed the next batch, whose first item is this one
        if leads:
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            results = list(self._commit([s.item for s in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"commit returned {len(results)} results for {len(batch)}")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:
            for slot in batch:
                slot.error = exc
        finally:
            with self._lock:
                if self._queue:  # arrived during the commit: their first waiter leads next
                    self._queue[0].leads = True
                    self._queue[0].ready.set()
                else:
                    self._busy = False
            for slot in batch:
                slot.leads = False
                slot.ready.set()
