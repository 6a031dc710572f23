"""`git log` with each commit's signature as gpg judges it against a GnuPG home.

The one way Ritmo asks git who signed what: `ritmo verify`, the audit log's `trusted`,
drift, legitimate rollbacks and the environments view all read commits through here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bot.manifests.mirror import Mirror

GOOD = frozenset("GU")  # %G?: G good; U good, of a key the home does not vouch for

# One field per %-code, each after a NUL; a record starts with NUL SOH (no message has it).
_FORMAT = "--format=%x00%x01%H%x00%P%x00%G?%x00%GF%x00%GP%x00%ct%x00%an%x00%B"
_FIELDS = 8


@dataclass(frozen=True)
class SignedCommit:
    sha: str
    parents: tuple[str, ...]
    status: str  # %G?: G, U good; B bad; E cannot check; N none; X, Y expired; R revoked
    signer: str  # %GF: the fingerprint of the (sub)key that signed
    primary: str  # %GP: its primary key's fingerprint
    message: str
    when: int = 0  # committer time, seconds since the epoch
    author: str = ""  # the author's name

    @property
    def keys(self) -> frozenset[str]:
        """The signing key's and its primary key's fingerprints, upper case."""
        return frozenset(k.upper() for k in (self.signer, self.primary) if k)

    @property
    def fingerprint(self) -> str:
        """The primary key's fingerprint, else the signing key's ('' when unsigned)."""
        return self.primary or self.signer

    def signed_by(self, fingerprints: str | Collection[str]) -> bool:
        """A good signature by one of these keys (a primary key or a subkey)."""
        wanted = {fingerprints} if isinstance(fingerprints, str) else fingerprints
        return self.status in GOOD and bool(self.keys & {f.upper() for f in wanted})


def signed_log(mirror: Mirror, gnupghome: Path, *args: str) -> list[SignedCommit]:
    """The commits `git log ARGS` lists, in its order, with their signatures checked in
    `gnupghome`."""
    out = mirror.log(_FORMAT, *args, "--", gnupghome=gnupghome)
    found = []
    for record in out.split("\0\x01")[1:]:
        sha, parents, status, signer, primary, when, author, message = record.split(
            "\0", _FIELDS - 1
        )
        found.append(
            SignedCommit(
                sha.strip(),
                tuple(parents.split()),
                status.strip(),
                signer.strip(),
                primary.strip(),
                message,
                int(when) if when.strip() else 0,
                author,
            )
        )
    return found
