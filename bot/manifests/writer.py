"""ManifestWriter: one writer per (remote, branch); batches signed commits into one push."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from bot.manifests.mirror import Mirror, PushStatus
from bot.manifests.objects import Identity, read_path, signed_commit, write_tree

log = logging.getLogger(__name__)

Reader = Callable[[str], bytes | None]
# (commit, files it wrote), oldest first: what a push added, so followers need not re-read it.
Written = list[tuple[str, dict[str, bytes]]]
OnAdvance = Callable[[str | None, str, Written | None], object]


class Conflict(Exception):
    """The change cannot be applied to the branch as it is (e.g. an immutable file differs)."""


class WriteUnavailable(Exception):
    """The remote did not take the push within the retry bound; nothing was acknowledged."""


@dataclass(frozen=True)
class Edit:
    """Files to add or replace, and the commit message that explains why."""

    files: dict[str, bytes]
    message: str


@dataclass(frozen=True)
class Unchanged:
    """The branch already says what the change wanted; no commit is needed."""


class Change(Protocol):
    """Decides what to write given the branch's current files; called again after a rebase."""

    def plan(self, read: Reader) -> Edit | Unchanged: ...


@dataclass(frozen=True)
class WriteResult:
    commit: str | None  # None when the change was already on the branch
    tip: str


@dataclass
class _Job:
    change: Change
    future: Future[WriteResult] = field(default_factory=Future)


class ManifestWriter:
    """Serialises every write to one branch; acknowledges a change only once it is pushed."""

    def __init__(
        self,
        mirror: Mirror,
        sign: Callable[[bytes], str],
        identity: Identity,
        on_advance: OnAdvance = lambda old, new, written: None,
        attempts: int = 6,
        batch_limit: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mirror = mirror
        self._sign = sign
        self._identity = identity
        self._on_advance = on_advance
        self._attempts = attempts
        self._batch_limit = batch_limit
        self._clock = clock
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._synced = False
        self.pushes = 0
        self.push_attempts = 0

    def submit(self, change: Change) -> Future[WriteResult]:
        self._ensure_thread()
        job = _Job(change)
        self._queue.put(job)
        return job.future

    def write(self, change: Change, timeout: float = 300) -> WriteResult:
        return self.submit(change).result(timeout=timeout)

    def _ensure_thread(self) -> None:
        # Started on first use, so a forking WSGI server starts it in the worker.
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ritmo-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._batch_limit:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_batch(batch)
            except Exception as exc:  # never let the writer thread die with callers waiting
                log.exception("write batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def sync(self) -> str | None:
        """Fetch the branch and let the index follow, even if the tip did not move."""
        with self._mirror.locked():
            return self._fetch(always_advance=True)

    def _fetch(self, always_advance: bool = False) -> str | None:
        old = self._mirror.tip()
        new = self._mirror.fetch()
        self._synced = True
        if new is not None and (always_advance or new != old):
            self._on_advance(old, new, None)
        return new

    def _write_batch(self, batch: list[_Job]) -> None:
        with self._mirror.locked():
            if not self._synced:
                self._fetch()
            last_error = ""
            for attempt in range(self._attempts):
                base = self._mirror.tip()
                outcomes, head, written = self._build(base, batch)
                live = [job for job, out in zip(batch, outcomes, strict=True) if out is not None]
                if head == base or head is None:
                    self._resolve(batch, outcomes, base)
                    return
                self.push_attempts += 1
                result = self._mirror.push(head)
                if result.status is PushStatus.PUSHED:
                    self.pushes += 1
                    self._on_advance(base, head, written)
                    self._resolve(batch, outcomes, head)
                    return
                last_error = result.detail
                log.info("push attempt %d refused: %s", attempt + 1, result.detail)
                time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
                try:
                    tip = self._fetch()
                except OSError as exc:
                    last_error = str(exc)
                    continue
                if tip is not None and self._mirror.is_ancestor(head, tip):
                    # The push landed even though we heard no answer.
                    self._resolve(batch, outcomes, head)
                    return
                batch = [job for job in live if not job.future.done()]
                if not batch:
                    return
            error = WriteUnavailable(
                f"the manifests remote did not accept the push after {self._attempts} attempts "
                f"({last_error}); nothing was written, retry later"
            )
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)

    def _build(
        self, base: str | None, batch: list[_Job]
    ) -> tuple[list[str | BaseException | None], str | None, Written]:
        """Plan every job on top of `base`: per-job commit (or error), the new head, the files."""
        head = base
        tree = self._mirror.tree_of(base) if base else None
        outcomes: list[str | BaseException | None] = []
        written: Written = []
        for job in batch:
            if job.future.done():
                outcomes.append(None)
                continue
            try:
                plan = job.change.plan(partial(read_path, self._mirror, tree))
            except Exception as exc:
                outcomes.append(exc)
                continue
            if isinstance(plan, Unchanged):
                outcomes.append("")
                continue
            tree = write_tree(self._mirror, tree, plan.files)
            head = signed_commit(
                self._mirror,
                self._sign,
                tree,
                [head] if head else [],
                self._identity,
                self._identity,
                int(self._clock()),
                plan.message,
            )
            outcomes.append(head)
            written.append((head, plan.files))
        return outcomes, head, written

    @staticmethod
    def _resolve(
        batch: list[_Job], outcomes: list[str | BaseException | None], tip: str | None
    ) -> None:
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.done() or outcome is None:
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(WriteResult(commit=outcome or None, tip=tip or ""))
