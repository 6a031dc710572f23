"""Named locks shared by every replica and thread that use one database.

Some work reads the index, writes git and then the index again, and must not interleave
with the same work elsewhere: opening, reviewing and settling the promotion request of one
app and environment is the case. Git alone does not stop it (two replicas both find no
open request and both open one).

On PostgreSQL a lock is a session-level advisory lock held on one pooled connection for the
duration. It is taken with `pg_try_advisory_lock` and polled, so a waiting thread holds no
connection (blocking waiters could take the whole pool from the holder, which needs a
connection to finish). On SQLite (one host by design) it is an `flock` on a file beside the
data. Both are re-entrant within a thread: a request's settle may close it, and both lock.

`in_turn` is for a lock that one thread per process asks for over and over (the manifests
writer's, around fetch, plan and push): it waits in `pg_advisory_lock`, whose waiters
PostgreSQL serves first come, first served, so a writer that releases and asks again at
once goes behind the others instead of winning every poll. It holds one connection while
it waits; `lock_timeout` bounds the wait.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.errors import Unavailable

POLL_SECONDS = 0.02
WAIT_SECONDS = 120.0


class LockBusy(Unavailable):
    """The lock stayed taken for the whole wait: the caller answers 503, retry later."""


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` (a collision only serialises more)."""
    digest = hashlib.blake2b(b"ritmo-lock:" + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Locks:
    def __init__(self, engine: Engine, lock_dir: Path, wait: float = WAIT_SECONDS) -> None:
        self._engine = engine
        self._dir = lock_dir
        self._wait = wait
        self._local = threading.local()
        self._advisory = engine.dialect.name == "postgresql"

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        held: Counter[str] = self._local.__dict__.setdefault("held", Counter())
        if held[name]:
            held[name] += 1
            try:
                yield
            finally:
                held[name] -= 1
            return
        taking = self._advisory_lock(name) if self._advisory else self._file_lock(name)
        with taking:
            held[name] += 1
            try:
                yield
            finally:
                held[name] -= 1

    @contextmanager
    def in_turn(self, name: str) -> Iterator[None]:
        if not self._advisory:
            with self.hold(name):
                yield
            return
        key = lock_key(name)
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.execute(sa.text(f"SET lock_timeout = {int(self._wait * 1000)}"))
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                conn.rollback()
                _release(conn, None)
                raise LockBusy(f"{name} stayed busy for {self._wait:.0f} s; retry later") from None
            conn.invalidate()
            conn.close()
            raise
        except BaseException:
            conn.invalidate()  # PostgreSQL drops whatever the session held
            conn.close()
            raise
        try:
            yield
        finally:
            _release(conn, key)

    def _deadline_passed(self, started: float, name: str) -> None:
        if time.monotonic() - started > self._wait:
            raise LockBusy(f"{name} stayed busy for {self._wait:.0f} s; retry later")

    @contextmanager
    def _advisory_lock(self, name: str) -> Iterator[None]:
        key = lock_key(name)
        started = time.monotonic()
        while True:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                if got.scalar_one():
                    break
            except BaseException:
                conn.close()
                raise
            conn.close()
            self._deadline_passed(started, name)
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except sa.exc.SQLAlchemyError:
                conn.invalidate()  # a broken session: PostgreSQL dropped the lock with it
            conn.close()

    @contextmanager
    def _file_lock(self, name: str) -> Iterator[None]:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{lock_key(name) & 0xFFFFFFFFFFFFFFFF:016x}.lock"
        started = time.monotonic()
        with open(path, "a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self._deadline_passed(started, name)
                    time.sleep(POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _release(conn: sa.Connection, key: int | None) -> None:
    """Unlock `key` (if taken) and give the connection back to the pool as it came."""
    try:
        if key is not None:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.execute(sa.text("RESET lock_timeout"))
    except sa.exc.SQLAlchemyError:
        conn.invalidate()  # a broken session: PostgreSQL dropped the lock with it
    conn.close()
