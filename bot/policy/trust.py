"""Which `.ritmo/policy.yaml` is in force, decided from git's history alone (pure).

The input is the default branch's first-parent commits that change the policy file or
vouch for a policy, oldest first, each with git's signature status. The rules:

- Nothing counts before adoption: the first Ritmo-signed commit with
  `Ritmo-Policy-Adopted: yes` puts the blob its `Ritmo-Policy` names in force (whoever
  installed Ritmo vouched for it).
- After it, a change to the file is obeyed when a trusted key signed it: Ritmo's, or a
  policy key (`signing.policy_keys`, people allowed to change policy by hand).
- A Ritmo-signed commit with `Ritmo-Policy: <blob>` puts that blob in force, whatever the
  commit changes; it also vouches for any earlier untrusted change to that content.
- Any other change is untrusted: the policy in force stays, and the change is listed
  until a later `Ritmo-Policy` vouches for its content. A change back to the content in
  force changes nothing and is not listed.

The server and `ritmo verify` both ask this module, so they agree, and a restart (or a
second replica) reaches the same decision from git.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

GOOD_SIGNATURES = frozenset("GU")  # git's %G?: G good; U good, validity unknown


@dataclass(frozen=True)
class PolicyCommit:
    """A first-parent commit that changes the policy file or may vouch for a policy."""

    sha: str
    signature: str  # git's %G?
    signer: str  # the primary key's fingerprint (%GP, else %GF), upper case
    trailers: dict[str, list[str]] = field(default_factory=dict)
    changes_file: bool = False
    blob: str | None = None  # the file's blob after the commit; None: no file

    def one(self, key: str) -> str | None:
        values = self.trailers.get(key)
        return values[0].strip() if values else None


@dataclass(frozen=True)
class TrustKeys:
    """Fingerprints (upper case) of Ritmo's keys, and of the keys allowed to change policy."""

    ritmo: frozenset[str]
    policy: frozenset[str] = frozenset()

    def by_ritmo(self, commit: PolicyCommit) -> bool:
        return commit.signature in GOOD_SIGNATURES and commit.signer in self.ritmo

    def by_policy_key(self, commit: PolicyCommit) -> bool:
        return commit.signature in GOOD_SIGNATURES and commit.signer in self.policy


@dataclass(frozen=True)
class Untrusted:
    """A change to the policy file that is not obeyed."""

    sha: str
    blob: str | None  # what it set the file to (None: deleted it)
    signature: str
    signer: str
    by_ritmo: bool = False  # Ritmo's signature, but no Ritmo-Policy vouch


@dataclass(frozen=True)
class PolicyTrust:
    """The decision so far: when the policy was adopted, the blob in force, what is not
    obeyed."""

    adopted_at: str | None = None
    in_force: str | None = None  # blob sha; None: no file, the shipped default
    untrusted: tuple[Untrusted, ...] = ()

    @property
    def adopted(self) -> bool:
        return self.adopted_at is not None

    def untrusted_shas(self) -> list[str]:
        return [u.sha for u in self.untrusted]


def step(state: PolicyTrust, commit: PolicyCommit, keys: TrustKeys) -> PolicyTrust:
    """The decision after one more commit of the first-parent line."""
    ritmo = keys.by_ritmo(commit)
    vouched = commit.one("Ritmo-Policy") if ritmo else None
    if not state.adopted:
        adopts = (commit.one("Ritmo-Policy-Adopted") or "").casefold() == "yes"
        if vouched and adopts:
            return PolicyTrust(adopted_at=commit.sha, in_force=vouched)
        return state
    if vouched:
        kept = tuple(u for u in state.untrusted if u.blob != vouched)
        return replace(state, in_force=vouched, untrusted=kept)
    if not commit.changes_file:
        return state
    # Ritmo's own commits change policy only with a Ritmo-Policy vouch (above): its signed
    # merge of a promotion branch that carried a policy edit puts nothing in force.
    if keys.by_policy_key(commit) and not ritmo:
        return replace(state, in_force=commit.blob)
    if commit.blob == state.in_force:
        return state
    found = Untrusted(commit.sha, commit.blob, commit.signature, commit.signer, ritmo)
    return replace(state, untrusted=(*state.untrusted, found))


def follow(state: PolicyTrust, commits: Iterable[PolicyCommit], keys: TrustKeys) -> PolicyTrust:
    for commit in commits:
        state = step(state, commit, keys)
    return state


def describe(untrusted: Untrusted) -> str:
    """Why a change is not obeyed, for an alert or a `verify` line."""
    if untrusted.by_ritmo:
        return "is signed by Ritmo but carries no Ritmo-Policy trailer vouching for it"
    how = {
        "N": "is not signed",
        "B": "has a bad signature",
        "E": "is signed by a key Ritmo cannot check",
        "X": "has an expired signature",
        "Y": "is signed by an expired key",
        "R": "is signed by a revoked key",
    }.get(untrusted.signature)
    if how is None:  # good, but neither Ritmo's key nor a policy key
        how = f"is signed by {untrusted.signer or 'a key'}, which is not in signing.policy_keys"
    return how
