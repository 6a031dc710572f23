"""ManifestWriter: one writer per (remote, branch); batches signed commits into one push."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager

from bot.errors import Unavailable
from bot.manifests.branches import BranchWrite, write_branch
from bot.manifests.mirror import Mirror
from bot.manifests.objects import Identity
from bot.manifests.plans import Change, Edit, Reader, Unchanged
from bot.manifests.remote import PushStatus
from bot.manifests.segments import (
    Builder,
    Job,
    Segment,
    WriteResult,
    Written,
    build_segment,
    resolve,
)

log = logging.getLogger(__name__)


OnAdvance = Callable[[str | None, str, Written | None], object]
# Held around fetch, plan and push by every writer of one remote and branch (all replicas).
Exclusive = Callable[[], AbstractContextManager[object]]


class Conflict(Exception):
    """The change cannot be applied to the branch as it is (e.g. an immutable file differs)."""


class WriteUnavailable(Unavailable):
    """The remote did not take the push within the retry bound; nothing was acknowledged."""


class ManifestWriter:
    """Serialises every write to one branch; acknowledges a change only once it is pushed."""

    def __init__(
        self,
        mirror: Mirror,
        sign: Callable[[bytes], str],
        identity: Identity,
        on_advance: OnAdvance = lambda old, new, written: None,
        attempts: int = 6,
        # Bounded, so a batch's build never holds the next push back for long; 64 split a
        # burst of 200 into 4-5 pushes one after another, each waiting on the remote.
        batch_limit: int = 256,
        clock: Callable[[], float] = time.time,
        exclusive: Exclusive | None = None,
        known_tip: Callable[[], str | None] | None = None,
    ) -> None:
        self._mirror = mirror
        self.mirror = mirror
        self._sign = sign
        self._identity = identity
        self._on_advance = on_advance
        self._attempts = attempts
        self._batch_limit = batch_limit
        self._clock = clock
        self._builder = Builder(mirror, sign, identity, clock)
        # With `exclusive`, every batch is fetched (when `known_tip`, the tip the last
        # writer left, is not the mirror's), planned and pushed under it: writers of other
        # replicas wait their turn instead of racing into refused pushes and retries.
        self._exclusive = exclusive
        self._known_tip = known_tip
        self._queue: queue.Queue[list[Job]] = queue.Queue()  # a group lands in one batch
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._synced = False
        self._taken: list[Job] = []  # jobs the writer holds, failed together on a crash
        self._stopping = False  # close() asked, and everything before it is taken
        # Pushes run beside the writer, so the next batch is built while one is on the wire.
        self._pusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ritmo-push")
        self.pushes = 0
        self.push_attempts = 0
        self.push_retries = 0  # rebuilds on the remote's new tip after a refused push
        self.attempts_per_batch: Counter[int] = Counter()  # attempts a landed batch took
        # Told each count as it happens ("pushes", ...): metrics shared by worker processes.
        self.on_count: Callable[[str], None] = lambda name: None
        self.on_batch: Callable[[int], None] = lambda attempts: None

    def submit(self, change: Change) -> Future[WriteResult]:
        return self.submit_all([change])[0]

    def submit_all(self, changes: list[Change]) -> list[Future[WriteResult]]:
        """Changes planned together, in this order, in one batch (one push): a record and
        the pins chained on it, which no other change comes between."""
        self._ensure_thread()
        jobs = [Job(change) for change in changes]
        self._queue.put(jobs)
        return [job.future for job in jobs]

    def write(self, change: Change, timeout: float = 300) -> WriteResult:
        return self.submit(change).result(timeout=timeout)

    def write_branch(
        self,
        branch: str,
        change: Callable[[Reader], Edit | Unchanged],
        *,
        when: int | None = None,
        prefix: str = "",
        expect: str | None = None,
        replace: bool = False,
    ) -> BranchWrite:
        """One signed commit on another branch (a promotion request's), written now in the
        caller's thread (bot/manifests/branches.py says how and what the arguments mean);
        WriteUnavailable when the remote does not take it."""
        written = write_branch(
            self._mirror, self._sign, self._identity, branch, change,
            when=int(self._clock()) if when is None else when, prefix=prefix, expect=expect,
            replace=replace,
        )  # fmt: skip
        pushed = written.pushed
        if pushed is not None and pushed.status is not PushStatus.PUSHED:
            raise WriteUnavailable(f"could not push {branch}: {pushed.detail}")
        return written

    def _ensure_thread(self) -> None:
        # Started on first use, so a forking WSGI server starts it in the worker.
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ritmo-writer", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 60) -> None:
        """Land what is queued, then stop the thread. `ritmo serve` writes before gunicorn
        forks: a fork while this thread holds the mirror's lock hands the child a held
        lock it then waits on for ever, so the master stops its writers first."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put([])  # an empty group: stop once everything before it landed
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the writer did not stop within %.0f s", timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if not first:
                return
            self._stopping = False
            try:
                self._serve([*first, *self._drain()])
            except Exception as exc:  # never let the writer thread die with callers waiting
                log.exception("write failed")
                self._fail_waiting(exc)
            if self._stopping:
                return

    def _drain(self) -> list[Job]:
        """Queued jobs up to the batch limit; none after a stop (see close)."""
        jobs: list[Job] = []
        while len(jobs) < self._batch_limit and not self._stopping:
            try:
                group = self._queue.get_nowait()
            except queue.Empty:
                break
            if not group:
                self._stopping = True
            jobs.extend(group)
        return jobs

    def _serve(self, batch: list[Job]) -> None:
        if self._exclusive is None:
            self._serve_pipelined(batch)
            return
        self._taken = batch
        with self._exclusive(), self._mirror.locked():
            if (
                not self._synced
                or self._known_tip is None
                or (self._known_tip() != self._mirror.tip())
            ):
                self._fetch()
            segment = build_segment(self._builder, self._mirror.tip(), batch)
            if segment.head == segment.base:
                resolve(segment.jobs, segment.outcomes, segment.head)
            else:
                self._mirror.flush()
                self._count_attempt()
                result = self._mirror.push(str(segment.head))
                if result.status is PushStatus.PUSHED:
                    self._batch_landed(1)
                    self._land(segment)
                else:  # pushed by something other than a Ritmo writer
                    log.info("push refused: %s", result.detail)
                    self._write_with_retries(batch, result.detail)
        self._taken = []

    def _count_attempt(self) -> None:
        self.push_attempts += 1
        self.on_count("push_attempts")

    def _batch_landed(self, attempts: int) -> None:
        self.attempts_per_batch[attempts] += 1
        self.on_batch(attempts)

    def _serve_pipelined(self, batch: list[Job]) -> None:
        """Build the next batch while the previous one is being pushed: one push in flight.

        A built batch's objects go to disk before the writer waits for the push in
        flight, and when that push lands the next one starts before the index follows
        and the callers hear: the push, the remote's slowest step, is never waiting on
        Ritmo's own work."""
        with self._mirror.locked():
            if not self._synced:
                self._fetch()
            tip = self._mirror.tip()
            in_flight: Segment | None = None
            while batch or in_flight is not None:
                self._taken = batch + (in_flight.jobs if in_flight else [])
                base = in_flight.head if in_flight else tip
                # Built on an in-flight segment, a change it already made is made.
                prior = in_flight.made if in_flight else {}
                segment = build_segment(self._builder, base, batch, prior) if batch else None
                if segment is not None and segment.head != segment.base:
                    self._mirror.flush()
                if in_flight is not None:
                    assert in_flight.push is not None
                    result = in_flight.push.result()
                    if result.status is PushStatus.PUSHED:
                        landed, tip = in_flight, in_flight.head
                        in_flight = None
                        if segment is not None and segment.head != segment.base:
                            in_flight, segment = self._push_async(segment), None
                        self._batch_landed(1)
                        self._land_beside(landed, in_flight)
                    else:
                        # Rare: rebuild both on the remote's new tip, the careful way.
                        log.info("push refused: %s", result.detail)
                        later = segment.jobs if segment else []
                        self._write_with_retries(in_flight.jobs + later, result.detail)
                        segment, in_flight, tip = None, None, self._mirror.tip()
                if segment is not None:
                    if segment.head == segment.base:  # after what it may name has landed
                        resolve(segment.jobs, segment.outcomes, segment.head)
                    else:
                        in_flight = self._push_async(segment)
                batch = self._drain()
            self._taken = []

    def _push_async(self, segment: Segment) -> Segment:
        self._count_attempt()
        segment.push = self._pusher.submit(self._mirror.push, str(segment.head))
        return segment

    def _land_beside(self, landed: Segment, in_flight: Segment | None) -> None:
        """Land `landed` while `in_flight` is pushed; if landing fails, let that push end
        first, so that no push goes on unwatched while the caller gives up on its jobs."""
        try:
            self._land(landed)
        except BaseException:
            if in_flight is not None and in_flight.push is not None:
                in_flight.push.exception()
            raise

    def _land(self, segment: Segment) -> None:
        self.pushes += 1
        self.on_count("pushes")
        self._on_advance(segment.base, str(segment.head), segment.written)
        resolve(segment.jobs, segment.outcomes, segment.head)

    def _fail_waiting(self, exc: BaseException) -> None:
        for job in self._taken:
            if not job.future.done():
                job.future.set_exception(exc)
        self._taken = []

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

    def _write_with_retries(self, batch: list[Job], last_error: str) -> None:
        """After a refused push: fetch, rebuild on the new tip, push; bounded, with jitter."""
        for attempt in range(1, self._attempts):
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
            self.push_retries += 1
            self.on_count("push_retries")
            try:
                self._fetch()
            except OSError as exc:
                last_error = str(exc)
                continue
            segment = build_segment(self._builder, self._mirror.tip(), batch)
            if segment.head == segment.base:
                resolve(segment.jobs, segment.outcomes, segment.head)
                return
            self._mirror.flush()
            self._count_attempt()
            result = self._mirror.push(str(segment.head))
            if result.status is PushStatus.PUSHED:
                self._batch_landed(attempt + 1)
                self._land(segment)
                return
            last_error = result.detail
            log.info("push attempt %d refused: %s", attempt + 1, result.detail)
            batch = [job for job in batch if not job.future.done()]
        error = WriteUnavailable(
            f"the manifests remote did not accept the push after {self._attempts} attempts "
            f"({last_error}); nothing was written, retry later"
        )
        for job in batch:
            if not job.future.done():
                job.future.set_exception(error)
