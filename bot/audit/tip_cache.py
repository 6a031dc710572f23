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
is the user's own; a row is the commits as plain values (`marshal`, which cannot run
code) and the few other objects (the policies, the trust) pickled, read only from there.
At most `_KEPT` walks are kept, the least recently used go first.
"""

from __future__ import annotations

import hashlib
import marshal
import pickle
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any

from bot.audit.verify import RecordFact, VerifyCommit
from bot.audit.walk import WalkState
from bot.manifests.keyring import keys_of
from bot.manifests.openpgp_verify import Unreadable
from bot.manifests.verdict_cache import keyring_id
from bot.policy.model import Policy
from bot.policy.trust import TrustKeys
from bot.trust.drift import PinMove

_VERSION = "verify-walk-3"  # bump when what a walk holds, or how it is read, changes
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
            state = decode(row[0])
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
        blob = encode(state)
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


# -- a walk as bytes: the commits as plain values, in parts; keeping a walk again adds a
# part with the commits that are new, and folds the parts into one when there are many.

_PARTS = 16


def encode(state: WalkState) -> bytes:
    kept = list(state.stored_policies)
    policies = {id(p): i for i, p in enumerate(kept)}  # id(policy) -> its index in `kept`

    def index(policy: Policy | None) -> int:
        if policy is None:
            return -1
        if id(policy) not in policies:
            policies[id(policy)] = len(kept)
            kept.append(policy)
        return policies[id(policy)]

    def rows(commits: list[VerifyCommit]) -> list[tuple[Any, ...]]:
        return [
            (c.sha, c.parents, c.trailers, c.in_range, c.first_parent, c.signature, c.signer,
             c.policy_key, c.environments,
             tuple((p.app, p.env, p.path, p.before, p.after) for p in c.pins),
             tuple((r.artifact_id, r.app, r.version, r.values) for r in c.records),
             index(c.policy), c.adopts_policy)
            for c in commits
        ]  # fmt: skip

    on_line, off_line = state.stored_counts
    parts = list(state.stored)
    if len(parts) >= _PARTS:
        parts, on_line, off_line = [], 0, 0
    new = (rows(state.line[on_line:]), rows(state.off_line[off_line:]))
    parts.append(zlib.compress(marshal.dumps(new), 1))
    rest = (
        state.tip, state.trust,
        {key: index(p) for key, p in state.policies.items()}, index(state.last_policy),
        state.images, state.managed, index(state.file_policy), state.lasting,
    )  # fmt: skip
    return pickle.dumps((rest, kept, parts), protocol=5)


def decode(data: bytes) -> WalkState:
    rest, kept, parts = pickle.loads(data)
    tip, trust, policies, last, images, managed, file_policy, lasting = rest

    def policy(i: int) -> Any:
        return kept[i] if i >= 0 else None

    def commits(rows: list[tuple[Any, ...]]) -> list[VerifyCommit]:
        return [
            VerifyCommit(
                sha=sha, parents=parents, trailers=trailers, in_range=in_range,
                first_parent=first_parent, signature=signature, signer=signer,
                policy_key=policy_key, environments=environments,
                pins=tuple(PinMove(*p) for p in pins) if pins else (),
                records=tuple(RecordFact(*r) for r in records) if records else (),
                policy=policy(at), adopts_policy=adopts,
            )
            for (sha, parents, trailers, in_range, first_parent, signature, signer, policy_key,
                 environments, pins, records, at, adopts) in rows
        ]  # fmt: skip

    line: list[VerifyCommit] = []
    off_line: list[VerifyCommit] = []
    for part in parts:
        on, off = marshal.loads(zlib.decompress(part))
        line += commits(on)
        off_line += commits(off)
    return WalkState(
        tip, line, off_line, trust,
        {key: kept[i] for key, i in policies.items()}, kept[last], images, managed,
        policy(file_policy), lasting, parts, (len(line), len(off_line)), kept,
    )  # fmt: skip
