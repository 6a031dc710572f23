"""Group commit: what arrives while a batch commits goes in the next one, each caller gets
its own result (or the batch's error) only after its batch's commit; and the webhook queue
built on it: one transaction for concurrent deliveries, on disk before anyone is answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.store.deliveries import DeliveryQueue, deliveries
from bot.store.group_commit import GroupCommit
from bot.store.schema import make_engine


def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class HeldCommits:
    """A commit function whose first batch waits for `release`; records every batch."""

    def __init__(self, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.inside = threading.Event()
        self.release = threading.Event()
        self.fail_first = fail_first

    def __call__(self, batch: list[int]) -> list[str]:
        self.batches.append(list(batch))
        if len(self.batches) == 1:
            self.inside.set()
            assert self.release.wait(10)
            if self.fail_first:
                raise OSError("disk full")
        return [f"done {n}" for n in batch]


def _submit_all(
    group: GroupCommit[int, str], items: list[int]
) -> tuple[list[threading.Thread], dict[int, Any]]:
    outcomes: dict[int, Any] = {}

    def one(n: int) -> None:
        try:
            outcomes[n] = group.submit(n)
        except OSError as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in items]
    for thread in threads:
        thread.start()
    return threads, outcomes


class TestGroupCommit:
    def test_alone_a_batch_of_one_at_once(self) -> None:
        batches: list[list[int]] = []

        def double(batch: list[int]) -> list[int]:
            batches.append(batch)
            return [n * 2 for n in batch]

        group: GroupCommit[int, int] = GroupCommit(double)
        assert group.submit(1) == 2
        assert group.submit(2) == 4
        assert batches == [[1], [2]]

    def test_what_arrives_during_a_commit_is_the_next_batch(self) -> None:
        commits = HeldCommits()
        group: GroupCommit[int, str] = GroupCommit(commits)
        first, outcomes = _submit_all(group, [0])
        assert commits.inside.wait(10)
        rest, more = _submit_all(group, list(range(1, 20)))
        _until(lambda: group.waiting == 19, "19 waiting callers")
        assert more == {}  # nobody is answered before their batch committed
        commits.release.set()
        for thread in first + rest:
            thread.join(10)
        assert commits.batches[0] == [0]
        assert sorted(commits.batches[1]) == list(range(1, 20))  # one commit for the 19
        assert len(commits.batches) == 2
        assert {**outcomes, **more} == {n: f"done {n}" for n in range(20)}
        assert group.waiting == 0

    def test_a_failed_commit_fails_its_batch_only(self) -> None:
        commits = HeldCommits(fail_first=True)
        group: GroupCommit[int, str] = GroupCommit(commits)
        first, outcomes = _submit_all(group, [0])
        assert commits.inside.wait(10)
        rest, more = _submit_all(group, [1, 2])
        _until(lambda: group.waiting == 2, "2 waiting callers")
        commits.release.set()
        for thread in first + rest:
            thread.join(10)
        assert isinstance(outcomes[0], OSError)
        assert more == {1: "done 1", 2: "done 2"}
        assert group.submit(3) == "done 3"  # and the next caller leads a new batch

    def test_batches_are_bounded(self) -> None:
        commits = HeldCommits()
        group: GroupCommit[int, str] = GroupCommit(commits, max_batch=4)
        first, _ = _submit_all(group, [0])
        assert commits.inside.wait(10)
        rest, more = _submit_all(group, list(range(1, 11)))
        _until(lambda: group.waiting == 10, "10 waiting callers")
        commits.release.set()
        for thread in first + rest:
            thread.join(10)
        assert [len(b) for b in commits.batches] == [1, 4, 4, 2]
        assert len(more) == 10


# -- the webhook queue on SQLite -------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    yield engine
    engine.dispose()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    return seen


def test_concurrent_deliveries_are_one_insert_with_their_own_seq(engine: Engine) -> None:
    queue = DeliveryQueue(engine)
    assert queue.accept("before", "push", "{}")
    statements = _statements(engine)
    held, release = threading.Event(), threading.Event()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def hold_first_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT") and not held.is_set():
            held.set()
            assert release.wait(10)

    results: dict[str, list[bool]] = {}
    lock = threading.Lock()

    def deliver(delivery: str) -> None:
        fresh = queue.accept(delivery, "pull_request_review", '{"n": 1}')
        with lock:
            results.setdefault(delivery, []).append(fresh)

    # d-0 commits alone and is held at its INSERT; 20 more arrive, d-5 twice, "before" again.
    names = ["d-0"] + [f"d-{n}" for n in range(1, 20)] + ["d-5", "before"]
    threads = [threading.Thread(target=deliver, args=(name,)) for name in names]
    threads[0].start()
    assert held.wait(10)
    for thread in threads[1:]:
        thread.start()
    _until(lambda: queue._arrivals.waiting == len(names) - 1, "the others waiting")
    assert results == {}
    release.set()
    for thread in threads:
        thread.join(10)

    assert results.pop("before") == [False]
    assert sorted(results.pop("d-5")) == [False, True]  # the same delivery twice: queued once
    assert all(fresh == [True] for fresh in results.values()) and len(results) == 19
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 2  # d-0's, then one for the 19 that waited
    assert not [s for s in statements if s.startswith(("UPDATE", "DELETE"))]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.delivery_id, deliveries.c.seq)).all()
    assert len(rows) == 21
    assert sorted(seq for _, seq in rows) == list(range(1, 22))  # distinct, in arrival order


def test_the_acknowledging_commit_reaches_the_disk(engine: Engine) -> None:
    """WAL with synchronous FULL for the queue's insert (fsynced before the answer), NORMAL
    again for every other use of the connection afterwards."""
    queue = DeliveryQueue(engine)
    during: list[int] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def check(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO webhook_deliveries"):
            during.append(cursor.connection.execute("PRAGMA synchronous").fetchone()[0])

    assert queue.accept("d-1", "push", "{}")
    assert during == [2]  # FULL
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"


def test_nothing_is_acknowledged_that_was_not_committed(engine: Engine) -> None:
    queue = DeliveryQueue(engine)

    def refuse(_conn: Any) -> None:
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    sa.event.listen(engine, "commit", refuse)
    with pytest.raises(sa.exc.OperationalError):
        queue.accept("d-1", "push", "{}")
    sa.event.remove(engine, "commit", refuse)
    assert queue.get("d-1") is None
    assert queue.accept("d-1", "push", "{}")  # GitHub's redelivery is queued
    assert queue.get("d-1") is not None
