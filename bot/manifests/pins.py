"""Who set an overlay's pin, as git says: the pinning commit, its signature, what recorded it.

Reads only; the caller holds the mirror's lock (or is the writer thread). Signatures are
checked by git against `gnupghome`, the home holding Ritmo's own key, and count only when
made by `fingerprint`: another key in that home is not Ritmo.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.manifests.trailers import parse_trailers

_GOOD = frozenset("GU")  # a good signature (U: good, the key's trust is not set)
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


def _log(mirror: Mirror, *args: str, gnupghome: Path | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    proc = subprocess.run(
        ["git", "log", *args], cwd=mirror.path, env=env,
        capture_output=True, text=True, check=False, timeout=mirror.timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise OSError(f"git log failed: {proc.stderr.strip()}")
    return proc.stdout


def pinning_commit(
    mirror: Mirror, tip: str, path: str, value_at: Callable[[str | None], str | None]
) -> str | None:
    """The last commit on `tip`'s first-parent line that changed the value `value_at`
    reads from `path` (a commit that only edits the rest of the file does not count);
    None when no commit ever set it."""
    skip = 0
    while True:
        out = _log(
            mirror, "--first-parent", "--format=%H %P", f"-n{_PAGE}", f"--skip={skip}", tip,
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
    out = _log(
        mirror, "--no-walk=unsorted", "--format=%x00%H%x00%ct%x00%an%x00%G?%x00%GF%x00%GP%x00%B",
        *shas, "--", gnupghome=gnupghome,
    )  # fmt: skip
    parts = out.split("\0")[1:]
    found = []
    mine = fingerprint.casefold()
    for i in range(0, len(parts) - 6, 7):
        sha, when, author, status, key, primary, message = parts[i : i + 7]
        signed = status.strip() in _GOOD and mine in (key.casefold(), primary.casefold())
        found.append(
            PinCommit(sha.strip(), int(when), author, parse_trailers(message), ritmo_signed=signed)
        )
    return found


def recording_candidates(mirror: Mirror, since: str, tip: str, env: str) -> list[str]:
    """Commits after `since` on the first-parent line, newest first, that may record a pin
    in `env` made outside Ritmo's writer: a forge merge Ritmo recorded (naming `since`), or
    a promotion or rollback into `env` that found the overlay pinned already."""
    patterns = [
        f"^Ritmo-Merge-Commit: {since}",
        f"^Ritmo-Promotion: .* -> {re.escape(env)}$",
        f"^Ritmo-Rollback: {re.escape(env)}$",
    ]
    out = _log(
        mirror, "--first-parent", "--format=%H", "-E", *(f"--grep={p}" for p in patterns),
        f"{since}..{tip}", "--",
    )  # fmt: skip
    return [line.strip() for line in out.splitlines() if line.strip()]
