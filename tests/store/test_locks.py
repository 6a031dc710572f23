"""Named locks: one holder at a time across threads (and processes), re-entrant within a
thread, and a clear LockBusy when the wait runs out. SQLite's file locks here; the
PostgreSQL advisory locks in tests/scale/test_postgres.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.store.locks import LockBusy, Locks
from bot.store.schema import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    yield engine
    engine.dispose()


def exercise(one: Locks, other: Locks) -> None:
    """`one` holds request/web/production (twice, re-entrantly); `other`, in another thread,
    gives up on it but takes a different name; then, once `one` lets go, takes it."""
    outcomes: list[str] = []

    def elsewhere(name: str) -> None:
        try:
            with other.hold(name):
                outcomes.append(f"took {name}")
        except LockBusy as exc:
            outcomes.append(str(exc))

    def run(name: str) -> None:
        thread = threading.Thread(target=elsewhere, args=(name,))
        thread.start()
        thread.join(10)

    with one.hold("request/web/production"):
        with one.hold("request/web/production"):  # re-entrant: a settle that closes
            run("request/web/production")
        run("request/web/production")  # still held by the outer block
        run("request/api/production")
    run("request/web/production")
    assert outcomes == [
        "request/web/production stayed busy for 0 s; retry later",
        "request/web/production stayed busy for 0 s; retry later",
        "took request/api/production",
        "took request/web/production",
    ]


def test_file_locks(engine: Engine, tmp_path: Path) -> None:
    exercise(Locks(engine, tmp_path / "locks"), Locks(engine, tmp_path / "locks", wait=0.2))
