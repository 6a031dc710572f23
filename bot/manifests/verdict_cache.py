"""What `ritmo verify` already judged, kept between runs in a SQLite file.

A commit's signature and a record's content never change once committed, so a verdict
made against one state of the trusted keys (their fingerprints, validity, expiry and
revocation: `keyring_id`) holds as long as that state does, and a record read at a
commit stays read. A second run reads only what is new. Verdicts that time could change
(a signature with an expiry date) are not kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.manifests.openpgp_verify import Key, Verdict

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS verdicts (keyring TEXT NOT NULL, sha TEXT NOT NULL,"
    " status TEXT NOT NULL, signer TEXT NOT NULL, primary_key TEXT NOT NULL,"
    " PRIMARY KEY (keyring, sha)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS records (at TEXT PRIMARY KEY, fact TEXT) WITHOUT ROWID",
)
_CHUNK = 500  # shas per query: below SQLite's limit on bound parameters


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/ritmo, else ~/.cache/ritmo: never in the repository being checked or
    in a data directory inside it, whose content the repository's authors may control."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ritmo"


def keyring_id(keys: Mapping[str, Key]) -> str:
    """What the verdicts depend on: each key and what gpg says of it now."""
    state = sorted(
        {(k.fingerprint, k.primary, k.valid, k.expired, k.revoked) for k in keys.values()}
    )
    return hashlib.sha256(repr(state).encode()).hexdigest()


class VerdictCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            for statement in _SCHEMA:
                self._db.execute(statement)

    def verdicts(self, keyring: str, shas: Sequence[str]) -> dict[str, Verdict]:
        found: dict[str, Verdict] = {}
        with self._lock:
            for start in range(0, len(shas), _CHUNK):
                chunk = list(shas[start : start + _CHUNK])
                rows = self._db.execute(
                    "SELECT sha, status, signer, primary_key FROM verdicts WHERE keyring = ?"
                    f" AND sha IN ({','.join('?' * len(chunk))})",
                    [keyring, *chunk],
                )
                found.update((sha, Verdict(status, signer, primary)) for sha, status, signer,
                             primary in rows)  # fmt: skip
        return found

    def keep(self, keyring: str, verdicts: Iterable[tuple[str, Verdict]]) -> None:
        rows = [
            (keyring, sha, v.status, v.signer, v.primary) for sha, v in verdicts if not v.expires
        ]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def records(self, places: Sequence[str]) -> dict[str, Any]:
        """place (`<commit>:<path>`) -> what was read there (None: not a record)."""
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(places), _CHUNK):
                chunk = list(places[start : start + _CHUNK])
                rows = self._db.execute(
                    f"SELECT at, fact FROM records WHERE at IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update((at, json.loads(fact)) for at, fact in rows)
        return found

    def keep_records(self, facts: Mapping[str, Any]) -> None:
        rows = [(at, json.dumps(fact)) for at, fact in facts.items()]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?)", rows)
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
