"""Read what `ritmo verify` judges from a mirror of the manifests repository.

The default branch's first-parent line, oldest first, with the pins each commit changed
(read per the policy in force when it landed: the trusted policy on its first parent, as
bot/policy/trust.py decides it; before adoption, or in a history with none, the file as
it was) and the records it added; then each commit of the checked range with its
signature status, as git reports it against a GnuPG home holding only the trusted public
keys. And which of a few commits are signed by a trusted key, for the audit log.
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
from bot.audit.verify import Problem, RecordFact, VerifyCommit, verify
from bot.deploy.records import LEDGER_BRANCH
from bot.manifests.mirror import Mirror
from bot.manifests.objects import read_path
from bot.manifests.records import RECORDS_DIR, split_image
from bot.manifests.signed_log import signed_log
from bot.manifests.signing import open_gnupg
from bot.manifests.trailers import parse_trailers
from bot.manifests.verdict_cache import VerdictCache
from bot.policy.commits import policy_commits
from bot.policy.load import BRANCH_POLICY_PATH, PolicyError, default_policy, load_policy_bytes
from bot.policy.model import Policy
from bot.policy.trust import PolicyTrust, TrustKeys, describe, step
from bot.promotions.pin import current_value
from bot.store.reindex import record_in
from bot.trust.drift import PinMove


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


@dataclass
class _Walk:
    mirror: Mirror
    policies: dict[bytes, Policy]
    last_policy: Policy
    images: dict[str, str]  # app -> image name its overlays pin (the latest record's repo)

    def policy_at(self, commit: str) -> Policy:
        data = read_path(self.mirror, self.mirror.tree_of(commit), BRANCH_POLICY_PATH)
        if data is None:
            return default_policy()
        if data not in self.policies:
            try:
                self.policies[data] = load_policy_bytes(data, BRANCH_POLICY_PATH)
            except PolicyError:
                # Ritmo would not have run with it: the last valid policy stays in force.
                self.policies[data] = self.last_policy
        self.last_policy = self.policies[data]
        return self.policies[data]

    def trusted(self, blob: str | None) -> Policy:
        """The policy a trusted blob says (None: the shipped default)."""
        if blob is None:
            return default_policy()
        key = blob.encode()
        if key not in self.policies:
            try:
                kind, data = self.mirror.read(blob)
                self.policies[key] = load_policy_bytes(data, BRANCH_POLICY_PATH)
            except Exception:  # unreadable or invalid: Ritmo kept the last valid one
                self.policies[key] = self.last_policy
        self.last_policy = self.policies[key]
        return self.policies[key]

    def pinned(self, commit: str | None, path: str, app: str, policy: Policy) -> str | None:
        if commit is None:
            return None
        data = read_path(self.mirror, self.mirror.tree_of(commit), path)
        if data is None:
            return None
        target = policy.target(app)
        try:
            return current_value(target, data.decode(), target.image or self.images.get(app, app))
        except Exception:  # an overlay someone broke: no value can be read from it
            return None


class _Overlays:
    """Which overlays a commit touched, as (app, env, path) in app then env order. Each
    app's overlay paths are worked out once per policy, and looked up by path: a commit
    costs what it touched, not apps x environments."""

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._apps: set[str] = set()
        self._by_path: dict[str, list[tuple[str, int, str, str]]] = {}  # path -> hits

    def touched(
        self, policy: Policy, managed: set[str], touched: set[str]
    ) -> list[tuple[str, str, str]]:
        if policy is not self._policy:
            self._policy, self._apps, self._by_path = policy, set(), {}
        for app in (managed | set(policy.app_names)) - self._apps:
            target = policy.target(app)
            for i, env in enumerate(policy.environment_names):
                path = target.path(app, env)
                self._by_path.setdefault(path, []).append((app, i, env, path))
            self._apps.add(app)
        hits = sorted(hit for path in touched for hit in self._by_path.get(path, ()))
        return [(app, env, path) for app, _, env, path in hits]


def _changes(text: str) -> list[tuple[str, str]]:
    found = []
    for row in text.splitlines():
        status, _, path = row.partition("\t")
        if path:
            found.append((status.strip()[:1], path))
    return found


def _signatures(
    mirror: Mirror, rev: str, gnupghome: Path, cache: VerdictCache | None = None
) -> list[tuple[str, tuple[str, ...], str, str, str]]:
    """(sha, parents, %G?, signer, message) of every commit in `rev`, oldest first; the
    signer is the primary key's fingerprint (%GP), else the signing key's (%GF)."""
    return [
        (c.sha, c.parents, c.status, c.fingerprint, c.message)
        for c in signed_log(mirror, gnupghome, "--reverse", "--topo-order", rev, cache=cache)
    ]


def _record_facts(
    mirror: Mirror, places: list[tuple[str, str]], cache: VerdictCache | None
) -> dict[str, dict[str, str] | None]:
    """`<commit>:<path>` -> the id, name, version and image of the record added there
    (None: not a readable record); what `cache` kept is not read again."""
    keys = [f"{sha}:{path}" for sha, path in places]
    found: dict[str, dict[str, str] | None] = cache.records(keys) if cache else {}
    new = {}
    for (sha, path), key in zip(places, keys, strict=True):
        if key in found:
            continue
        record = record_in(path, read_path(mirror, mirror.tree_of(sha), path))
        new[key] = None if record is None else {
            "id": str(record["id"]), "name": str(record["name"]),
            "version": str(record["version"]), "image": str(record.get("image") or ""),
        }  # fmt: skip
    if cache is not None and new:
        cache.keep_records(new)
    return {**found, **new}


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


def read_history(
    mirror: Mirror,
    tip: str,
    since: str | None,
    gnupghome: Path,
    keys: TrustKeys | None = None,
    cache: VerdictCache | None = None,
) -> tuple[list[VerifyCommit], list[str]]:
    """The input of `verify`: the whole first-parent line (in range or not, for what was
    recorded and pinned), then the range's other commits; each part oldest first. And the
    range's commits in git's order (topological, oldest first).

    `keys`: Ritmo's and the policy keys' fingerprints (default: every key in `gnupghome`
    is Ritmo's). `cache`: signature verdicts and records read by earlier runs."""
    if keys is None:
        everyone = {str(k["fingerprint"]) for k in open_gnupg(gnupghome).list_keys()}
        keys = TrustKeys(frozenset(everyone))
    line = mirror.first_parent_changes(tip)
    ranged = _signatures(mirror, f"{since}..{tip}" if since else tip, gnupghome, cache)
    added = [
        (sha, path)
        for sha, _, _, changes_text in line
        for status, path in _changes(changes_text)
        if status == "A" and path.startswith(RECORDS_DIR + "/")
    ]
    facts = _record_facts(mirror, added, cache)
    signed = {sha: (status, signer) for sha, _, status, signer, _ in ranged}
    # Policy commits across the whole line: the trust before the range decides the policy.
    events = {c.sha: c for c in policy_commits(mirror, tip, None, gnupghome)}
    adoption = next((c.sha for c in events.values() if step(PolicyTrust(), c, keys).adopted), None)
    trust = PolicyTrust()
    walk = _Walk(mirror, {}, default_policy(), {})
    managed: set[str] = set()  # apps with a record so far
    history: list[VerifyCommit] = []
    before_adoption = adoption is not None
    # The file's policy on the first parent: read again only after a commit changed it.
    file_policy: Policy | None = None
    overlays = _Overlays()
    for sha, parents, message, changes_text in line:
        before_adoption = before_adoption and sha != adoption
        changes = _changes(changes_text)
        parent = parents[0] if parents else None
        if trust.adopted:
            policy = walk.trusted(trust.in_force)
        else:
            if file_policy is None or parent is None:
                file_policy = walk.policy_at(parent or sha)
            policy = file_policy
        records = []
        for status, path in changes:
            if status != "A" or not path.startswith(RECORDS_DIR + "/"):
                continue
            record = facts[f"{sha}:{path}"]
            if record is None:
                continue
            values: set[str] = set()
            if record["image"]:
                repo, tag, digest = split_image(str(record["image"]))
                walk.images[record["name"]] = repo
                values = {v for v in (tag, digest) if v}
            records.append(
                RecordFact(record["id"], record["name"], record["version"], frozenset(values))
            )
            managed.add(record["name"])
        touched = {path for _, path in changes}
        if BRANCH_POLICY_PATH in touched:
            file_policy = None  # the next commit's first parent is this one
        pins = []
        for app, env, path in overlays.touched(policy, managed, touched):
            before = walk.pinned(parent, path, app, policy)
            after = walk.pinned(sha, path, app, policy)
            if before != after:
                pins.append(PinMove(app, env, path, before, after))
        status, signer = signed.get(sha, ("N", ""))
        history.append(
            VerifyCommit(
                sha=sha,
                parents=parents,
                trailers=parse_trailers(message),
                in_range=sha in signed,
                signature=status,
                signer=signer,
                policy_key=signer in keys.policy and signer not in keys.ritmo,
                environments=tuple(policy.environment_names),
                pins=tuple(pins),
                records=tuple(records),
                policy=policy if trust.adopted else None,
                before_adoption=before_adoption,
                adopts_policy=sha == adoption,
            )
        )
        if sha in events:
            trust = step(trust, events[sha], keys)
    # Untrusted policy changes that no later Ritmo-Policy vouched for.
    untrusted = {u.sha: describe(u) for u in trust.untrusted}
    history = [
        replace(c, untrusted_policy=untrusted[c.sha]) if c.sha in untrusted else c for c in history
    ]
    on_line = {c.sha for c in history}
    for sha, parents, status, signer, message in ranged:
        if sha not in on_line:
            history.append(
                VerifyCommit(
                    sha=sha,
                    parents=parents,
                    trailers=parse_trailers(message),
                    first_parent=False,
                    signature=status,
                    signer=signer,
                    policy_key=signer in keys.policy and signer not in keys.ritmo,
                )
            )
    return history, [sha for sha, *_ in ranged]


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
            sha,
            parents,
            parse_trailers(message),
            first_parent=False,
            signature=status,
            signer=signer,
        )  # fmt: skip
        for sha, parents, status, signer, message in _signatures(mirror, tip, gnupghome, cache)
    ]


@dataclass(frozen=True)
class Verified:
    problems: list[Problem]  # in the order of the range's history, oldest first
    checked: int  # commits in the range
    adopted_at: str | None  # the commit that adopted the policy, if any
    before_adoption: int  # commits of the range before it: not judged


def verify_repository(
    mirror: Mirror,
    tip: str,
    since: str | None,
    gnupghome: Path,
    keys: TrustKeys | None = None,
    cache: VerdictCache | None = None,
) -> Verified:
    """The problems in since..tip (all history without `since`); `cache`: what earlier
    runs judged (bot/manifests/verdict_cache.py)."""
    history, ranged = read_history(mirror, tip, since, gnupghome, keys, cache)
    order = {sha: i for i, sha in enumerate(ranged)}
    earlier = [c for c in history if c.before_adoption and c.in_range]
    not_judged = {c.sha for c in earlier}
    problems = verify(history)
    problems += [p for p in illegitimate_rollbacks(history) if p.sha not in not_judged]
    problems.sort(key=lambda p: order.get(p.sha, len(order)))  # stable: a commit's in order
    adopted = next((c.sha for c in history if c.first_parent and c.adopts_policy), None)
    # A policy key signs policy changes only: on the ledger it counts as no trusted signature.
    policy_only = keys.policy - keys.ritmo if keys else frozenset()
    ledger = [
        replace(c, signature="E") if c.signer in policy_only else c
        for c in read_ledger(mirror, gnupghome, cache)
    ]
    problems += unsigned_ledger(ledger, LEDGER_BRANCH)
    return Verified(problems, len(ranged), adopted, len(earlier))
