"""The leader lock: of the replicas sharing one database, only the leader runs scheduled work.

On PostgreSQL the lock is a session-level advisory lock (`pg_try_advisory_lock`) taken on a
dedicated connection that the leader keeps open. PostgreSQL releases it when that session
ends, so when the leader dies (or loses its connection) another replica takes it on its
next try, within one scheduler interval. On SQLite (one host) it is an `flock` on a file
beside the data, held open by the leading process (a gunicorn worker): the kernel releases
it when that process dies, and another worker takes it the same way.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# A fixed 64-bit key for the scheduler's lock: int.from_bytes(b"ritmojob", "big") >> 1.
SCHEDULER_LOCK_KEY = 0x7269746D6F6A6F62 >> 1


class LeaderLock:
    """`is_leader()` answers whether this process holds the lock, trying to take it if not."""

    def __init__(
        self, engine: Engine, lock_file: Path | None = None, key: int = SCHEDULER_LOCK_KEY
    ) -> None:
        self._engine = engine
        self._key = key
        self._conn: Connection | None = None
        self._mutex = threading.Lock()
        self._advisory = engine.dialect.name == "postgresql"
        self._lock_file = lock_file
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        """True while the lock is held (on SQLite without a lock file: always)."""
        if self._advisory:
            return self._conn is not None
        return self._lock_file is None or self._handle is not None

    def is_leader(self) -> bool:
        if not self._advisory:
            return self._file_leader()
        with self._mutex:
            if self._conn is not None:
                if self._alive(self._conn):
                    return True
                log.warning("the leader lock's connection was lost; trying to take it again")
                self._drop()
            return self._try_acquire()

    def _file_leader(self) -> bool:
        if self._lock_file is None:
            return True  # one process by design
        with self._mutex:
            if self._handle is not None:
                return True
            handle = open(self._lock_file, "a")  # noqa: SIM115 - held open while leading
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._handle = handle
            log.info("this process now leads the scheduled jobs")
            return True

    def release(self) -> None:
        """Give the lock up (closing its session); safe to call more than once."""
        if not self._advisory:
            with self._mutex:
                if self._handle is not None:
                    self._handle.close()  # closing the file releases the flock
                    self._handle = None
            return
        with self._mutex:
            if self._conn is None:
                return
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            except sa.exc.SQLAlchemyError:
                pass  # the session is gone: so is the lock
            self._drop()

    def _try_acquire(self) -> bool:
        try:
            # Autocommit: the session must not sit idle in a transaction while it leads.
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.SQLAlchemyError:
            log.warning("the database is unreachable; not leading this interval", exc_info=True)
            return False
        try:
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar_one()
        except sa.exc.SQLAlchemyError:
            log.warning("could not ask for the leader lock", exc_info=True)
            conn.invalidate()
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("this replica now leads the scheduled jobs")
        return True

    @staticmethod
    def _alive(conn: Connection) -> bool:
        if conn.invalidated or conn.closed:
            return False
        try:
            conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # Never hand the session back to the pool: another checkout would inherit the lock.
            if not conn.invalidated:
                raw = conn.connection.dbapi_connection
                if raw is not None:
                    raw.close()
            conn.invalidate()
            conn.close()
        except sa.exc.SQLAlchemyError:
            pass
