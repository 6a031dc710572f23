"""The commits that can move the policy in force, read from git with their signatures.

Only commits on the default branch's first-parent line that change `.ritmo/policy.yaml`
or carry a `Ritmo-Policy` trailer matter, so only they are asked for (two path- or
grep-limited `git log`s): gpg checks a handful of signatures, not the whole history.
Signatures are checked against a GnuPG home holding only the trusted public keys
(Ritmo's and the policy keys), so git's `%G?` answers for those keys alone.
"""

from __future__ import annotations

from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.trailers import parse_trailers
from bot.policy.load import BRANCH_POLICY_PATH
from bot.policy.trust import PolicyCommit

_FORMAT = "--format=%x00%x01%H%x00%G?%x00%GP%x00%GF%x00%B%x00"
_VOUCH_GREP = "^Ritmo-Policy(-Adopted)?: "


def _parse(out: str, raw: bool) -> list[PolicyCommit]:
    found = []
    for chunk in out.split("\0\x01")[1:]:
        sha, status, primary, signer, message, rest = chunk.split("\0", 5)
        changed, blob = False, None
        if raw:
            for line in rest.splitlines():
                meta, _, path = line.partition("\t")
                if path == BRANCH_POLICY_PATH and meta.startswith(":"):
                    changed = True
                    new = meta.split()[3]
                    blob = None if new.strip("0") == "" else new
        found.append(
            PolicyCommit(
                sha=sha.strip(),
                signature=status.strip(),
                signer=(primary.strip() or signer.strip()).upper(),
                trailers=parse_trailers(message),
                changes_file=changed,
                blob=blob,
            )
        )
    return found


def policy_commits(
    mirror: Mirror, tip: str, since: str | None, gnupghome: Path
) -> list[PolicyCommit]:
    """Commits of since..tip's first-parent line that change the policy file or vouch for
    a policy, oldest first, with git's signature status against `gnupghome`."""
    rev = f"{since}..{tip}" if since else tip
    changed = _parse(
        mirror.log(
            "--first-parent", "--reverse", "--no-renames", "--diff-merges=first-parent",
            "--raw", "--no-abbrev", _FORMAT, rev, "--", BRANCH_POLICY_PATH, gnupghome=gnupghome,
        ),
        raw=True,
    )  # fmt: skip
    vouching = _parse(
        mirror.log(
            "--first-parent", "--reverse", "-E", f"--grep={_VOUCH_GREP}", _FORMAT, rev, "--",
            gnupghome=gnupghome,
        ),
        raw=False,
    )  # fmt: skip
    if not vouching:
        return changed
    if not changed:
        return vouching
    # Interleave by position on the first-parent line; a commit in both is one event.
    order = {sha: i for i, sha in enumerate(mirror.first_parent_line(rev))}
    merged = {c.sha: c for c in vouching}
    merged.update({c.sha: c for c in changed})
    return sorted(merged.values(), key=lambda c: order.get(c.sha, -1))


class GitPolicyHistory:
    """`PolicyHistory` (bot/policy/source.py) over a mirror and a GnuPG home of trusted keys."""

    def __init__(self, mirror: Mirror, gnupghome: Path) -> None:
        self._mirror = mirror
        self._gnupghome = gnupghome

    def commits(self, since: str | None, tip: str) -> list[PolicyCommit]:
        return policy_commits(self._mirror, tip, since, self._gnupghome)

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self._mirror.is_ancestor(older, newer)

    def blob(self, sha: str) -> bytes:
        kind, data = self._mirror.read(sha)
        if kind != "blob":
            raise ValueError(f"{sha} is a {kind}, not a policy file's blob")
        return data

    def file_at(self, commit: str) -> bytes | None:
        return read_path(self._mirror, self._mirror.tree_of(commit), BRANCH_POLICY_PATH)
