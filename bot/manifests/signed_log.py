"""`git log` with each commit's signature as gpg judges it against a GnuPG home.

The one way Ritmo asks git who signed what: `ritmo verify`, the audit log's `trusted`,
drift, legitimate rollbacks and the environments view all read commits through here.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bot.manifests import parallel_verdicts
from bot.manifests.keyring import keys_of
from bot.manifests.mirror import Mirror
from bot.manifests.openpgp_verify import Unreadable, Verdict, verdict
from bot.manifests.verdict_cache import VerdictCache, keyring_id

GOOD = frozenset("GU")  # %G?: G good; U good, of a key the home does not vouch for
PARALLEL_FROM = 2000  # signatures to check before worker processes pay off

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
    # False when time alone may change the verdict: a signature that expires, or one gpg
    # judged (whose expiry this process did not read).
    lasting: bool = True

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


_PLAIN = "--format=%x00%x01%H%x00%P%x00%ct%x00%an%x00%B"


def split_signature(raw: bytes) -> tuple[bytes, str] | None:
    """(what was signed, the armoured signature) of a raw commit; None when unsigned."""
    header, sep, body = raw.partition(b"\n\n")
    lines = header.split(b"\n")
    kept: list[bytes] = []
    signature: list[bytes] = []
    inside = False
    for line in lines:
        if line.startswith(b"gpgsig "):
            inside = True
            signature.append(line[len(b"gpgsig ") :])
        elif inside and line.startswith(b" "):
            signature.append(line[1:])
        else:
            inside = False
            kept.append(line)
    if not signature:
        return None
    return b"\n".join(kept) + sep + body, b"\n".join(signature).decode("ascii", "replace")


def signed_log(
    mirror: Mirror,
    gnupghome: Path,
    *args: str,
    cache: VerdictCache | None = None,
    workers: int = 1,
) -> list[SignedCommit]:
    """The commits `git log ARGS` lists, in its order, with their signatures checked
    against the keys in `gnupghome`: in-process, and by gpg (`%G?`) for any this process
    cannot judge (a key type it does not read). `cache`: verdicts kept from earlier runs,
    against the same keys; what is judged here is added to it. `workers`: processes to
    check signatures in when there are many (bot/manifests/parallel_verdicts.py)."""
    out = mirror.log(_PLAIN, *args, "--")
    listed = []
    for record in out.split("\0\x01")[1:]:
        sha, parent_list, when, author, message = record.split("\0", 4)
        listed.append((sha.strip(), tuple(parent_list.split()), when.strip(), author, message))
    try:
        keys = keys_of(gnupghome)
    except Unreadable:
        keys = None
    keyring = keyring_id(keys) if keys is not None and cache is not None else ""
    known = cache.verdicts(keyring, [sha for sha, *_ in listed]) if keyring and cache else {}
    unknown = [sha for sha, *_ in listed if sha not in known]
    raw = mirror.commit_objects(unknown) if keys is not None else {}
    now = int(time.time())
    verdicts: dict[str, Verdict] = {}
    signed: dict[str, tuple[bytes, str]] = {}
    for sha in unknown:
        split = split_signature(raw[sha]) if sha in raw else None
        if keys is not None and sha in raw and split is None:
            verdicts[sha] = Verdict("N", "", "")
        elif split is not None and keys is not None:
            signed[sha] = split
    if keys is not None and signed:
        pairs = list(signed.values())
        each = None
        if workers > 1 and len(signed) >= PARALLEL_FROM:
            each = parallel_verdicts.verdicts(pairs, keys, now, workers)
        if each is None:
            each = [verdict(payload, armored, keys, now) for payload, armored in pairs]
        verdicts.update((sha, v) for sha, v in zip(signed, each, strict=True) if v is not None)
    if keyring and cache is not None:
        cache.keep(keyring, verdicts.items())  # in-process verdicts only: gpg's come next
    verdicts.update(known)
    asked = [sha for sha, *_ in listed if sha not in verdicts]
    passing = {sha for sha, v in verdicts.items() if v.expires} | set(asked)
    if asked:
        verdicts.update(
            (c.sha, Verdict(c.status, c.signer, c.primary))
            for c in _by_gpg(mirror, gnupghome, "--no-walk=unsorted", *asked)
        )
    found_commits = []
    for sha, parents, when, author, message in listed:
        judged = verdicts.get(sha, Verdict("E", "", ""))
        found_commits.append(
            SignedCommit(
                sha,
                parents,
                judged.status,
                judged.signer,
                judged.primary,
                message,
                int(when) if when else 0,
                author,
                sha not in passing,
            )  # fmt: skip
        )
    return found_commits


def _by_gpg(mirror: Mirror, gnupghome: Path, *args: str) -> list[SignedCommit]:
    """`git log %G?`: one gpg per signed commit."""
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
