"""Who set an overlay's pin, as git says: the pinning commit, its signature, what recorded it.

Reads only, and by commit sha: objects never change, so once the tip is in the mirror these
need no lock. Each is one git process whatever the number of pins (the environments table
reads thousands). Signatures are checked by git against `gnupghome`, the home holding
Ritmo's own key, and count only when made by `fingerprint`: another key in that home is
not Ritmo.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.manifests.remote import GitFailed, public_reason
from bot.manifests.signed_log import signed_log
from bot.manifests.trailers import Trailered, parse_trailers

# A recording trailer (see `recorded_candidate`); the index's own grep is narrower.
RECORDING_GREP = "^Ritmo-(Merge-Commit|Promotion|Rollback): "
_NO_BLOB = "0" * 40
_EXACT_PATHS = 64  # more overlay paths than this: ask git by their top folders, filter here


@dataclass(frozen=True)
class PinCommit(Trailered):
    """A commit on the default branch's first-parent line, as far as pins care."""

    sha: str
    when: int  # committer time, seconds since the epoch
    author: str
    trailers: dict[str, list[str]]
    ritmo_signed: bool = False


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


@dataclass(frozen=True)
class PathChange:
    """A first-parent commit that changed a file: its blob before and after (None: none)."""

    sha: str
    old: str | None
    new: str | None


def path_changes(mirror: Mirror, tip: str, paths: Collection[str]) -> dict[str, list[PathChange]]:
    """path -> the commits of `tip`'s first-parent line that changed it, newest first, each
    against its first parent (one `git log`). The newest one's `new` is the blob at `tip`."""
    wanted = set(paths)
    if not wanted:
        return {}
    specs = wanted if len(wanted) <= _EXACT_PATHS else {p.split("/", 1)[0] for p in wanted}
    out = mirror.log(
        "--first-parent", "-m", "--root", "--no-renames", "--raw", "--no-abbrev", "-z",
        "--format=%x01%H", tip, "--", *sorted(f":(literal){s}" for s in specs),
    )  # fmt: skip
    found: dict[str, list[PathChange]] = {}
    for record in out.split("\x01")[1:]:
        sha, _, raw = record.partition("\0")
        fields = raw.split("\0")
        for meta, path in zip(fields[::2], fields[1::2], strict=False):
            meta = meta.strip("\n")
            if path not in wanted or not meta.startswith(":"):
                continue
            old_mode, new_mode, old, new = meta[1:].split()[:4]
            found.setdefault(path, []).append(
                PathChange(sha.strip(), _blob(old_mode, old), _blob(new_mode, new))
            )
    return found


def _blob(mode: str, sha: str) -> str | None:
    # A file absent on one side shows as zeros; a submodule or folder holds no overlay.
    return None if sha == _NO_BLOB or mode in ("160000", "040000") else sha


def read_blobs(mirror: Mirror, shas: Collection[str]) -> dict[str, bytes]:
    """sha -> content for these blobs: one `git cat-file --batch` of this call's own (the
    mirror's shared one belongs to the writer, under the lock)."""
    if not shas:
        return {}
    proc = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=mirror.path,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        input="".join(f"{s}\n" for s in shas).encode(),
        capture_output=True,
        timeout=mirror.timeout,
        check=False,
    )
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace")
        reason = public_reason(said, mirror.url, str(mirror.path))
        raise GitFailed(f"git cat-file failed: {reason}", f"git cat-file failed: {said.strip()}")
    out, pos, found = proc.stdout, 0, {}
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split()
        pos = end + 1
        if len(header) == 3:
            size = int(header[2])
            found[header[0]] = out[pos : pos + size]
            pos += size + 1
    return found


def first_parent_positions(mirror: Mirror, tip: str) -> dict[str, int]:
    """sha -> its place on `tip`'s first-parent line (the root is 0)."""
    return {sha: i for i, sha in enumerate(mirror.first_parent_line(tip))}


def recording_log(mirror: Mirror, rev: str) -> list[tuple[str, str]]:
    """(sha, message) of the first-parent commits in `rev` (a tip or old..new) that carry a
    recording trailer, newest first (one `git log`)."""
    out = mirror.log(
        "--first-parent", "--format=%x00%x01%H%x00%B", "-E", f"--grep={RECORDING_GREP}", rev,
        "--",
    )  # fmt: skip
    return [_split(record) for record in out.split("\0\x01")[1:]]


@dataclass(frozen=True)
class NewCommits:
    """What moved the default branch from an older tip to a newer one."""

    paths: set[str]  # files the first-parent commits changed (against their first parent)
    messages: list[str]  # every new commit's message, merged side branches' too


def new_commits(mirror: Mirror, old: str, new: str) -> NewCommits | None:
    """The commits in old..new (two `git log`s), or None when `new` does not continue
    `old`'s first-parent line (then what was read at `old` is no base to build on)."""
    out = mirror.log(
        "--first-parent", "-m", "--no-renames", "--name-only", "-z",
        "--format=%x01%H%x00%P", f"{old}..{new}", "--",
    )  # fmt: skip
    records = out.split("\x01")[1:]
    paths: set[str] = set()
    parent: str | None = None
    for record in records:
        _, _, rest = record.partition("\0")
        parents, _, names = rest.partition("\0")
        parent = next(iter(parents.split()), None)  # the oldest's, once the loop is done
        paths.update(n.strip("\n") for n in names.split("\0") if n.strip("\n"))
    if not records or parent != old:  # rewritten, or moved back: no base
        return None
    log = mirror.log("--format=%x00%x01%H%x00%B", f"{old}..{new}", "--")
    return NewCommits(paths, [_split(r)[1] for r in log.split("\0\x01")[1:]])


def _split(record: str) -> tuple[str, str]:
    sha, _, message = record.partition("\0")
    return sha.strip(), message
