"""`git log` with each commit's signature as git and gpg judge it against a GnuPG home."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bot.manifests.mirror import Mirror

GOOD = frozenset("GU")  # %G?: G good; U good, of a key the home does not vouch for


@dataclass(frozen=True)
class SignedCommit:
    sha: str
    parents: tuple[str, ...]
    status: str  # %G?: G, U good; B bad; E cannot check; N none; X, Y expired; R revoked
    signer: str  # %GF: the fingerprint of the (sub)key that signed
    primary: str  # %GP: its primary key's fingerprint
    message: str

    def signed_by(self, fingerprint: str) -> bool:
        """A good signature by the key `fingerprint` (its primary key or a subkey)."""
        want = fingerprint.casefold()
        return self.status in GOOD and want in (self.signer.casefold(), self.primary.casefold())


def signed_log(mirror: Mirror, gnupghome: Path, *args: str) -> list[SignedCommit]:
    """The commits `git log ARGS` lists, with their signatures checked in `gnupghome`."""
    proc = subprocess.run(
        ["git", "log", "--format=%x00%H%x00%P%x00%G?%x00%GF%x00%GP%x00%B", *args, "--"],
        cwd=mirror.path, capture_output=True, text=True, check=False,
        env={**os.environ, "GNUPGHOME": str(gnupghome), "GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise OSError(f"git log failed: {proc.stderr.strip()}")
    parts = proc.stdout.split("\0")[1:]
    found = []
    for i in range(0, len(parts) - 5, 6):
        sha, parents, status, signer, primary, message = parts[i : i + 6]
        found.append(
            SignedCommit(
                sha.strip(),
                tuple(parents.split()),
                status.strip(),
                signer.strip(),
                primary.strip(),
                message,
            )  # fmt: skip
        )
    return found
