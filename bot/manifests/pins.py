"""Who set an overlay's pin, as git says: the pinning commit, its signature, what recorded it.

Reads only; the caller holds the mirror's lock (or is the writer thread). Signatures are
checked by git against `gnupghome`, the home holding Ritmo's own key, and count only when
made by `fingerprint`: another key in that home is not Ritmo.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.manifests.signed_log import signed_log
from bot.manifests.trailers import parse_trailers

_PAGE = 32


@dataclass(frozen=True)
class PinCommit:
    """A commit on the default branch's first-parent line, as far as pins care."""

    sha: str
    when: int  # committer time, seconds since the epoch
    author: str
    trailers: dict[str, list[str]]
    ritmo_signed: bool = False

    def one(self, key: str) -> str | None:
        values = self.trailers.get(key)
        return values[0] if values else None


def pinning_commit(
    mirror: Mirror, tip: str, path: str, value_at: Callable[[str | None], str | None]
) -> str | None:
    """The last commit on `tip`'s first-parent line that changed the value `value_at`
    reads from `path` (a commit that only edits the rest of the file does not count);
    None when no commit ever set it."""
    skip = 0
    while True:
        out = mirror.log(
            "--first-parent", "--format=%H %P", f"-n{_PAGE}", f"--skip={skip}", tip,
            "--", path,
        )  # fmt: skip
        rows = [line.split() for line in out.splitlines() if line.strip()]
        for sha, *parents in rows:
            if value_at(sha) != value_at(parents[0] if parents else None):
                return sha
        if len(rows) < _PAGE:
            return None
        skip += _PAGE


def commits(mirror: Mirror, shas: list[str], gnupghome: Path, fingerprint: str) -> list[PinCommit]:
    """These commits with their trailers and whether `fingerprint` signed them (one git
    call; gpg checks each signature)."""
    if not shas:
        return []
    return [
        PinCommit(
            c.sha,
            c.when,
            c.author,
            parse_trailers(c.message),
            ritmo_signed=c.signed_by(fingerprint),
        )  # fmt: skip
        for c in signed_log(mirror, gnupghome, "--no-walk=unsorted", *shas)
    ]


def recording_candidates(mirror: Mirror, since: str, tip: str, env: str) -> list[str]:
    """Commits after `since` on the first-parent line, newest first, that may record a pin
    in `env` made outside Ritmo's writer: a forge merge Ritmo recorded (naming `since`), or
    a promotion or rollback into `env` that found the overlay pinned already."""
    patterns = [
        f"^Ritmo-Merge-Commit: {since}",
        f"^Ritmo-Promotion: .* -> {re.escape(env)}$",
        f"^Ritmo-Rollback: {re.escape(env)}$",
    ]
    out = mirror.log(
        "--first-parent", "--format=%H", "-E", *(f"--grep={p}" for p in patterns),
        f"{since}..{tip}", "--",
    )  # fmt: skip
    return [line.strip() for line in out.splitlines() if line.strip()]
