"""`ritmo verify`'s rules over the default branch's history (pure).

The input is the branch's history, oldest first: every commit on its first-parent line
(what the branch was, one state after another) with the pins it changed and the artifact
records it added, plus the other commits of the checked range (those merged in from
request branches) for their signatures. Problems are reported only for commits in the
range (`in_range`); the history before it only tells what was recorded and pinned.

The rules, each a problem kind:

- `untrusted-signature`: a commit whose message has a `Ritmo-` trailer is not signed by a
  trusted key (unsigned, a bad signature, an unknown key). Ritmo signs every commit it
  writes; a person's commits (the repository's seed, manifest edits) need no signature.
- `unsigned-pin`: a commit without `Ritmo-` trailers, not signed by a trusted key, changes
  the pinned version of an app that has artifact records: a pin that bypassed promotion.
  (A merge a person made on the forge is judged by the next two rules instead.)
- `unrecorded-merge`: a merge commit on the first-parent line that changes a pin, is not
  Ritmo's signed merge, and no Ritmo commit records it (`Ritmo-Merge-Commit: <sha>`).
- `policy-not-held`: Ritmo recorded a merge a person made before the policy held
  (`Ritmo-Policy-Held: no`); or Ritmo pinned directly (a `Ritmo-Promotion` without a
  `Ritmo-Request`) a hop that the trusted policy in force then required approval for,
  or had no rule for.
- `untrusted-policy`: a commit changes `.ritmo/policy.yaml` without being trusted (signed
  by Ritmo's key or a policy key), and no later Ritmo commit vouches for its content
  (`Ritmo-Policy: <blob>`); see bot/policy/trust.py.
- `unknown-version`: a commit pins a version that no artifact record has (a record on the
  branch at that commit, `artifacts/<app>/<version>.yaml`, whose image tag or digest is
  the pinned value).
- `skipped-environment`: a commit pins a version in an environment (not the policy's
  first) that was never pinned in, nor promoted into, the environment before it, in any
  earlier commit of the branch, e.g. in production without having passed staging.

Once the branch has adopted a policy (`Ritmo-Policy-Adopted`), the commits before the
adoption are not judged: they are reported as before adoption. A history without an
adoption is judged as before this rule existed, with the policy file as it was.
A key in `signing.policy_keys` is trusted for policy changes only: its signature on any
other commit counts as no trusted signature.

Pins are checked only for apps that have at least one artifact record at that commit:
until CI registers an app's first artifact its overlays are the team's own (the scaffold's
example pins, `0.1.0`, are not artifacts). A pin is checked where it changes, on the
first-parent line (the merge of a request, not the commits on its branch); a pin set
before the range was checked when it landed and is not checked again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.manifests.trailers import Trailered
from bot.policy.model import Policy
from bot.policy.trust import GOOD_SIGNATURES
from bot.trust.drift import PinMove

REGISTERED = "registered"  # the "from" of a new record's first pin


@dataclass(frozen=True)
class RecordFact:
    """An artifact record: the values (image tag, digest) an overlay pins it by."""

    artifact_id: str
    app: str
    version: str
    values: frozenset[str]


@dataclass(frozen=True)
class VerifyCommit(Trailered):
    sha: str
    parents: tuple[str, ...]
    trailers: dict[str, list[str]]
    in_range: bool = True
    first_parent: bool = True
    signature: str = "N"  # git's %G?: G, U good; B bad; E cannot check; N none; ...
    signer: str = ""  # %GP (else %GF), the signing key's fingerprint when known
    policy_key: bool = False  # signed by a key trusted for policy changes only
    environments: tuple[str, ...] = ()  # the policy's, in force when the commit landed
    pins: tuple[PinMove, ...] = ()
    records: tuple[RecordFact, ...] = ()
    policy: Policy | None = None  # the trusted policy in force then (None: none adopted)
    before_adoption: bool = False  # the branch adopted a policy later: not judged
    adopts_policy: bool = False
    untrusted_policy: str = ""  # why its change to the policy file is not trusted

    @property
    def ritmo_trailers(self) -> list[str]:
        return [k for k in self.trailers if k.startswith("Ritmo-")]

    @property
    def signed(self) -> bool:
        """Signed by Ritmo's key (a policy key's signature vouches for policy only)."""
        return self.signature in GOOD_SIGNATURES and not self.policy_key

    @property
    def how_signed(self) -> str:
        """How an unsigned one stands, for a problem's message: `is not signed`, or
        e.g. `has a bad signature (<signer>)`."""
        how = SIGNATURE_STATES.get(self.signature, f"has signature status {self.signature}")
        key = f" ({self.signer})" if self.signer and self.signature != "N" else ""
        return how + key


@dataclass(frozen=True, order=True)
class Problem:
    sha: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.sha} {self.kind}: {self.message}"


@dataclass
class _State:
    records: dict[str, dict[str, RecordFact]] = field(default_factory=dict)  # app -> value
    by_id: dict[str, RecordFact] = field(default_factory=dict)
    pinned: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (app, env)

    def add_record(self, record: RecordFact) -> None:
        self.by_id[record.artifact_id] = record
        known = self.records.setdefault(record.app, {})
        for value in record.values:
            known.setdefault(value, record)

    def was_in(self, app: str, env: str, value: str) -> bool:
        return value in self.pinned.get((app, env), set())

    def pin(self, app: str, env: str, values: frozenset[str] | set[str]) -> None:
        self.pinned.setdefault((app, env), set()).update(values)


SIGNATURE_STATES = {
    "N": "is not signed",
    "B": "has a bad signature",
    "E": "is signed by a key that is not trusted",
    "X": "has an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
}


def verify(history: Sequence[VerifyCommit]) -> list[Problem]:
    """Every problem in the range, in the history's order (oldest first)."""
    recorded_merges = {
        sha
        for commit in history
        for sha in commit.trailers.get("Ritmo-Merge-Commit", [])
        if commit.signed or not commit.in_range
    }
    state = _State()
    problems: list[Problem] = []
    for commit in history:
        for record in commit.records:
            state.add_record(record)
        judged = commit.in_range and not commit.before_adoption
        if judged:
            problems += _signature_problems(commit)
        if commit.first_parent:
            if judged:
                problems += _policy_problems(commit, state)
                problems += _pin_problems(commit, state, recorded_merges)
            _remember(commit, state)
    return problems


def _policy_problems(commit: VerifyCommit, state: _State) -> list[Problem]:
    found = []
    if commit.untrusted_policy:
        found.append(
            Problem(
                commit.sha,
                "untrusted-policy",
                f"changes .ritmo/policy.yaml but {commit.untrusted_policy}, and no Ritmo commit "
                "vouches for it (Ritmo-Policy): the policy before it stayed in force",
            )
        )
    hop = (commit.one("Ritmo-Promotion") or "").partition(" -> ")
    direct = hop[1] and not commit.one("Ritmo-Request") and commit.signed
    artifact = state.by_id.get(commit.one("Ritmo-Artifact") or "")
    if not direct or commit.policy is None or artifact is None or hop[0].strip() == REGISTERED:
        return found
    src, dst = hop[0].strip(), hop[2].strip()
    rule = commit.policy.rule(artifact.app, src, dst)
    if rule is None or rule.requires_approval:
        why = "has no rule for it" if rule is None else "required approval for it"
        found.append(
            Problem(
                commit.sha,
                "policy-not-held",
                f"pins {artifact.app} {artifact.version} {src} -> {dst} directly, but the "
                f"trusted policy in force then {why}",
            )
        )
    return found


def _signature_problems(commit: VerifyCommit) -> list[Problem]:
    found = []
    named = commit.ritmo_trailers
    if named and not commit.signed:
        found.append(
            Problem(
                commit.sha,
                "untrusted-signature",
                f"carries Ritmo trailers ({', '.join(named[:3])}) but {commit.how_signed}",
            )
        )
    if (commit.one("Ritmo-Policy-Held") or "").lower() == "no":
        request = commit.one("Ritmo-Request") or "a request"
        merge = commit.one("Ritmo-Merge-Commit") or "a merge"
        by = commit.one("Ritmo-Merged-By") or "someone"
        found.append(
            Problem(
                commit.sha,
                "policy-not-held",
                f"{by} merged {request} in {merge} before its policy held",
            )
        )
    return found


def _pin_problems(commit: VerifyCommit, state: _State, recorded_merges: set[str]) -> list[Problem]:
    # Only apps with a record: the others' overlays are not under Ritmo yet.
    pins = [p for p in commit.pins if p.app in state.records]
    if not pins:
        return []
    found = []
    what = ", ".join(f"{p.app} {p.env} {p.before} -> {p.after}" for p in pins)
    ritmo_signed = commit.signed and bool(commit.ritmo_trailers)
    if len(commit.parents) > 1 and not ritmo_signed and commit.sha not in recorded_merges:
        found.append(
            Problem(
                commit.sha,
                "unrecorded-merge",
                f"merges a pin change ({what}) that is neither Ritmo's signed merge nor "
                "recorded by Ritmo (no Ritmo-Merge-Commit names it)",
            )
        )
    elif not commit.signed and not commit.ritmo_trailers and commit.sha not in recorded_merges:
        found.append(
            Problem(
                commit.sha,
                "unsigned-pin",
                f"changes a pin ({what}) without a trusted signature or a Ritmo record: "
                "a pin that bypassed promotion",
            )
        )
    for pin in pins:
        if pin.after is None:
            continue
        record = state.records[pin.app].get(pin.after)
        if record is None:
            found.append(
                Problem(
                    commit.sha,
                    "unknown-version",
                    f"pins {pin.app} {pin.after} in {pin.env} ({pin.path}), but no artifact "
                    f"record of {pin.app} has that version",
                )
            )
            continue
        envs = commit.environments
        if pin.env not in envs or envs.index(pin.env) == 0:
            continue
        previous = envs[envs.index(pin.env) - 1]
        if not any(state.was_in(pin.app, previous, v) for v in record.values):
            found.append(
                Problem(
                    commit.sha,
                    "skipped-environment",
                    f"pins {pin.app} {record.version} ({record.artifact_id}) in {pin.env}, "
                    f"but it was never pinned in {previous} before",
                )
            )
    return found


def _remember(commit: VerifyCommit, state: _State) -> None:
    for pin in commit.pins:
        if pin.after is not None:
            state.pin(pin.app, pin.env, {pin.after})
    # A promotion recorded without a change (the overlay was pinned already) counts too,
    # when Ritmo signed it (before the range: it was judged when it landed).
    if commit.in_range and not commit.signed:
        return
    hop = (commit.one("Ritmo-Promotion") or "").partition(" -> ")
    artifact = state.by_id.get(commit.one("Ritmo-Artifact") or "")
    if hop[1] and artifact is not None:
        state.pin(artifact.app, hop[2].strip(), artifact.values)
