"""The walks `ritmo verify` made, kept per verified tip in the user's cache.

A walk up to a tip (bot/audit/walk.py's WalkState: each first-parent commit as read, the
merged-in commits, the policy trust and what the next commit's reading depends on) holds
for as long as what it was judged against does: the trusted keys and what gpg says of
them (`keyring_id`), which keys count as Ritmo's and which for policy only, and this
code (`_VERSION`). Those are the key; the tip's sha fixes the history. A run whose tip
has a kept tip on its first-parent line goes on from there; anything else (a rewritten
branch, other keys) walks it all.

Kept in the same SQLite file as the verdicts ($XDG_CACHE_HOME/ritmo), never in the data
directory: the checked repository's authors must not be able to plant a walk. The file
is the user's own; its rows are pickles, read only from there. At most `_KEPT` walks are
kept, the least recently used go first.
"""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
import time
import zlib
from pathlib import Path

from bot.audit.walk import WalkState
from bot.manifests.keyring import keys_of
from bot.manifests.openpgp_verify import Unreadable
from bot.manifests.verdict_cache import keyring_id
from bot.policy.trust import TrustKeys

_VERSION = "verify-walk-1"  # bump when what a walk holds, or how it is read, changes
_KEPT = 8
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS walks (judged TEXT NOT NULL, tip TEXT NOT NULL,"
    " used REAL NOT NULL, state BLOB NOT NULL, PRIMARY KEY (judged, tip)) WITHOUT ROWID"
)


def judged_by(gnupghome: Path, keys: TrustKeys) -> str | None:
    """What a walk's findings depend on besides the history; None when the keys cannot be
    read in-process (gpg judges, and nothing is kept)."""
    try:
        keyring = keyring_id(keys_of(gnupghome))
    except Unreadable:
        return None
    state = (_VERSION, keyring, sorted(keys.ritmo), sorted(keys.policy))
    return hashlib.sha256(repr(state).encode()).hexdigest()


class TipCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute(_SCHEMA)

    def tips(self, judged: str) -> list[str]:
        """The tips kept for these keys, the most recently used first."""
        rows = self._db.execute(
            "SELECT tip FROM walks WHERE judged = ? ORDER BY used DESC", (judged,)
        )
        return [tip for (tip,) in rows]

    def load(self, judged: str, tip: str) -> WalkState | None:
        row = self._db.execute(
            "SELECT state FROM walks WHERE judged = ? AND tip = ?", (judged, tip)
        ).fetchone()
        if row is None:
            return None
        try:
            state = pickle.loads(zlib.decompress(row[0]))
        except Exception:  # written by another version, or damaged: walk again
            return None
        if not isinstance(state, WalkState) or state.tip != tip:
            return None
        self._db.execute(
            "UPDATE walks SET used = ? WHERE judged = ? AND tip = ?", (time.time(), judged, tip)
        )
        return state

    def keep(self, judged: str, state: WalkState) -> None:
        if not state.lasting:
            return
        blob = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
        self._db.execute("BEGIN")
        self._db.execute(
            "INSERT OR REPLACE INTO walks VALUES (?, ?, ?, ?)",
            (judged, state.tip, time.time(), blob),
        )
        self._db.execute(
            "DELETE FROM walks WHERE (judged, tip) NOT IN"
            " (SELECT judged, tip FROM walks ORDER BY used DESC LIMIT ?)",
            (_KEPT,),
        )
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
