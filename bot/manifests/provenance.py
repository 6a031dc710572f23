"""Who made a commit on the default branch: git's first-parent line and its signatures.

Signatures are checked against a GnuPG home of public keys only (Ritmo's and the
`signing.policy_keys`), every key in it trusted: the keyring is the trust.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bot.config import ConfigError
from bot.manifests.mirror import Mirror
from bot.manifests.signed_log import GOOD, signed_log
from bot.manifests.signing import open_gnupg, read_keyring
from bot.manifests.trailers import parse_trailers


@dataclass(frozen=True)
class Signers:
    """The keys whose signatures count: Ritmo's, and the people's who may edit policy."""

    home: Path
    ritmo: str  # fingerprint
    policy: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Signature:
    status: str  # git's %G?
    keys: frozenset[str]  # the signing key's and its primary key's fingerprints

    def by(self, fingerprints: frozenset[str] | set[str]) -> bool:
        return self.status in GOOD and bool(self.keys & fingerprints)


@dataclass(frozen=True)
class LineCommit:
    """A commit of the first-parent line, with the paths it changed from its first parent."""

    sha: str
    parents: tuple[str, ...]
    author: str
    paths: tuple[str, ...]
    ritmo_trailers: bool = False  # claims to be Ritmo's (its signature tells)


def trust_home(
    data_dir: Path,
    ritmo_public_key: str,
    ritmo: str,
    policy_keys: list[str],
    policy_keyring: Path | None,
) -> Signers:
    """data_dir/trust-gnupg holding Ritmo's public key and the policy keys' (fail closed:
    a policy key without its public key is a configuration error)."""
    home = (data_dir / "trust-gnupg").resolve()
    gpg = open_gnupg(home)
    (home / "gpg.conf").write_text("trust-model always\n")
    gpg.import_keys(ritmo_public_key)
    if policy_keyring is not None:
        gpg.import_keys(read_keyring(policy_keyring, "signing.policy_keyring"))
    known = {str(k["fingerprint"]).upper() for k in gpg.list_keys()}
    # Importing started an agent; checking signatures needs none, so none is left running.
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True,
        check=False,
    )  # fmt: skip
    missing = [f for f in policy_keys if f.upper() not in known]
    if missing:
        raise ConfigError(
            "setting signing.policy_keys (RITMO_SIGNING__POLICY_KEYS): no public key "
            f"{missing[0]} in signing.policy_keyring; add that person's armoured public key"
        )
    return Signers(home, ritmo.upper(), frozenset(f.upper() for f in policy_keys))


def first_parent_line(mirror: Mirror, since: str | None, tip: str, limit: int) -> list[LineCommit]:
    """since..tip on the first-parent line (without `since`: the last `limit` commits),
    oldest first, each with the paths it changed from its first parent."""
    rev = [f"{since}..{tip}"] if since else ["-n", str(limit), tip]
    out = mirror.log(
        "--first-parent", "--no-renames", "--diff-merges=first-parent", "--name-only",
        "--format=%x00%x01%H%x00%P%x00%an <%ae>%x00%B%x00", *rev, "--",
    )  # fmt: skip
    found = []
    for chunk in out.split("\0\x01")[1:]:
        sha, parents, author, message, paths = chunk.split("\0", 4)
        changed = tuple(p for p in paths.splitlines() if p.strip())
        claims = any(k.startswith("Ritmo-") for k in parse_trailers(message))
        found.append(LineCommit(sha.strip(), tuple(parents.split()), author, changed, claims))
    found.reverse()
    return found


def signatures(mirror: Mirror, signers: Signers, shas: list[str]) -> dict[str, Signature]:
    """Each commit's signature as checked against the trusted keys."""
    if not shas:
        return {}
    mirror.flush()
    return {
        c.sha: Signature(c.status, c.keys)
        for c in signed_log(mirror, signers.home, "--no-walk=unsorted", *shas)
    }


def drift_recorded(mirror: Mirror, signers: Signers, commit: str, kind: str, tip: str) -> bool:
    """Whether the first-parent line after `commit` up to `tip` holds Ritmo's signed drift
    commit for it: whoever recorded it (another replica, before a restart), once is enough."""
    found = signed_log(
        mirror, signers.home, "--first-parent", "-F", f"--grep=Ritmo-Drift-Commit: {commit}",
        f"{commit}..{tip}",
    )  # fmt: skip
    for record in found:
        trailers = parse_trailers(record.message)
        if (
            record.signed_by(signers.ritmo)
            and commit in trailers.get("Ritmo-Drift-Commit", [])
            and kind in trailers.get("Ritmo-Drift", [])
        ):
            return True
    return False
