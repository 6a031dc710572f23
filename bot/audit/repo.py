"""`ritmo verify` over a mirror of the manifests repository: the trusted keys' GnuPG
home, the walk of the default branch (bot/audit/walk.py, going on from a walk kept for
an earlier tip when there is one: bot/audit/tip_cache.py), its rules, and the ledger.
And which of a few commits are signed by a trusted key, for the audit log.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import gnupg

from bot.audit.rollback_rules import illegitimate_rollbacks, unsigned_ledger
from bot.audit.tip_cache import TipCache, judged_by
from bot.audit.verify import Problem, VerifyCommit, verify
from bot.audit.walk import WalkState, finish, range_order, walk
from bot.deploy.records import LEDGER_BRANCH
from bot.manifests.mirror import Mirror
from bot.manifests.signed_log import signed_log
from bot.manifests.signing import open_gnupg
from bot.manifests.trailers import parse_trailers
from bot.manifests.verdict_cache import VerdictCache
from bot.policy.trust import TrustKeys


class TrustedKeyError(ValueError):
    """A trusted key file holds no usable public key."""


def _import_keys(gpg: gnupg.GPG, armoured_keys: list[str], what: str) -> list[str]:
    """Import each armoured key; the fingerprints, or which `what` holds no key."""
    fingerprints: list[str] = []
    for i, armoured in enumerate(armoured_keys):
        result = gpg.import_keys(armoured)
        if not result.fingerprints:
            raise TrustedKeyError(f"{what} {i + 1} holds no OpenPGP public key")
        fingerprints += [str(f) for f in result.fingerprints]
    return fingerprints


@contextmanager
def trusted_gnupg(armoured_keys: list[str]) -> Iterator[tuple[Path, list[str]]]:
    """A throw-away GnuPG home holding only these public keys; (home, fingerprints)."""
    home = Path(tempfile.mkdtemp(prefix="ritmo-verify-"))
    try:
        gpg = open_gnupg(home)
        # The keyring is the trust: every key in it is as trusted as the next.
        (home / "gpg.conf").write_text("trust-model always\n")
        yield home, _import_keys(gpg, armoured_keys, "key")
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


def import_policy_keys(home: Path, armoured_keys: list[str], listed: list[str] | None) -> list[str]:
    """Add keys trusted for policy changes only to a `trusted_gnupg` home; their
    fingerprints (`listed`: only these of them, as signing.policy_keys names them)."""
    found = _import_keys(open_gnupg(home), armoured_keys, "policy key")
    if listed is None:
        return found
    missing = [f for f in listed if f not in found]
    if missing:
        raise TrustedKeyError(f"no public key {missing[0]} (signing.policy_keys) in the keyring")
    return [f for f in found if f in listed]


# A commit's signature never changes: what the audit log learnt stays learnt, bounded.
_TRUSTED_CACHE: dict[tuple[str, frozenset[str], str], bool] = {}
_CACHE_LIMIT = 50_000


def trusted_commits(
    mirror: Mirror, shas: Sequence[str], gnupghome: Path, fingerprints: frozenset[str]
) -> set[str]:
    """Which of `shas` carry a good signature by one of `fingerprints` (the signing key or
    its primary key), as gpg in `gnupghome` checks them: one `git log` for those unknown."""
    wanted = {f.upper() for f in fingerprints}
    key = (str(gnupghome), frozenset(wanted))
    unknown = sorted({sha for sha in shas if (*key, sha) not in _TRUSTED_CACHE})
    if unknown:
        found = signed_log(mirror, gnupghome, "--no-walk=unsorted", *unknown)
        if len(_TRUSTED_CACHE) > _CACHE_LIMIT:
            _TRUSTED_CACHE.clear()
        for commit in found:
            _TRUSTED_CACHE[(*key, commit.sha)] = commit.signed_by(wanted)
    return {sha for sha in shas if _TRUSTED_CACHE.get((*key, sha), False)}


def read_ledger(
    mirror: Mirror, gnupghome: Path, cache: VerdictCache | None = None
) -> list[VerifyCommit]:
    """Every commit of the deployment ledger branch, oldest first, with its signature;
    none when the remote has no ledger."""
    tip = mirror.fetch_branches(LEDGER_BRANCH).get(LEDGER_BRANCH)
    if tip is None:
        return []
    return [
        VerifyCommit(
            c.sha,
            c.parents,
            parse_trailers(c.message),
            first_parent=False,
            signature=c.status,
            signer=c.fingerprint,
        )  # fmt: skip
        for c in signed_log(mirror, gnupghome, "--reverse", "--topo-order", tip, cache=cache)
    ]


@dataclass(frozen=True)
class Verified:
    problems: list[Problem]  # in the order of the range's history, oldest first
    checked: int  # commits in the range
    adopted_at: str | None  # the commit that adopted the policy, if any
    before_adoption: int  # commits of the range before it: not judged


def read_history(
    mirror: Mirror,
    tip: str,
    since: str | None,
    gnupghome: Path,
    keys: TrustKeys | None = None,
    cache: VerdictCache | None = None,
) -> tuple[list[VerifyCommit], list[str]]:
    """The input of `verify`: the whole first-parent line (in range or not, for what was
    recorded and pinned), then the range's other commits; and the range's commits, oldest
    first (bot/audit/walk.range_order). `keys`: Ritmo's and the policy keys' fingerprints
    (default: every key in `gnupghome` is Ritmo's); `cache`: verdicts and records kept."""
    history = finish(walk(mirror, tip, since, gnupghome, keys or _every_key(gnupghome), cache))
    return history, range_order(history)


def _every_key(gnupghome: Path) -> TrustKeys:
    return TrustKeys(frozenset(str(k["fingerprint"]) for k in open_gnupg(gnupghome).list_keys()))


def _resume(mirror: Mirror, tip: str, tips: TipCache, judged: str) -> WalkState | None:
    """A kept walk up to a commit of `tip`'s first-parent line (the latest kept)."""
    for kept in tips.tips(judged):
        if kept != tip:
            if not mirror.is_ancestor(kept, tip):
                continue
            # On the first-parent line: the oldest commit after it has it as first parent.
            after = mirror.log("--first-parent", "--reverse", "--format=%P", f"{kept}..{tip}")
            if after.split("\n", 1)[0].split()[:1] != [kept]:
                continue
        state = tips.load(judged, kept)
        if state is not None:
            return state
    return None


def verify_repository(
    mirror: Mirror,
    tip: str,
    since: str | None,
    gnupghome: Path,
    keys: TrustKeys | None = None,
    cache: VerdictCache | None = None,
    tips: TipCache | None = None,
) -> Verified:
    """The problems in since..tip (all history without `since`); `cache`: what earlier
    runs judged (bot/manifests/verdict_cache.py); `tips`: the walks they made (without
    `since`, a walk up to an earlier tip of the line is gone on from, and this one kept)."""
    keys = keys or _every_key(gnupghome)
    judged = judged_by(gnupghome, keys) if tips is not None and since is None else None
    start = _resume(mirror, tip, tips, judged) if tips is not None and judged else None
    state = walk(mirror, tip, since, gnupghome, keys, cache, start)
    if tips is not None and judged:
        tips.keep(judged, state)
    history = finish(state)
    ranged = range_order(history)
    order = {sha: i for i, sha in enumerate(ranged)}
    earlier = [c for c in history if c.before_adoption and c.in_range]
    not_judged = {c.sha for c in earlier}
    problems = verify(history)
    problems += [p for p in illegitimate_rollbacks(history) if p.sha not in not_judged]
    problems.sort(key=lambda p: order.get(p.sha, len(order)))  # stable: a commit's in order
    adopted = next((c.sha for c in history if c.first_parent and c.adopts_policy), None)
    # A policy key signs policy changes only: on the ledger it counts as no trusted signature.
    policy_only = keys.policy - keys.ritmo
    ledger = [
        replace(c, signature="E") if c.signer in policy_only else c
        for c in read_ledger(mirror, gnupghome, cache)
    ]
    problems += unsigned_ledger(ledger, LEDGER_BRANCH)
    return Verified(problems, len(ranged), adopted, len(earlier))
