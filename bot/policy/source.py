"""The policy in force: `.ritmo/policy.yaml` on the default branch as a trusted commit wrote
it, followed as the branch moves (the decision itself is bot/policy/trust.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from bot.manifests.packs import object_id
from bot.manifests.segments import Written, WrittenCommit
from bot.manifests.trailers import parse_trailers
from bot.policy.load import BRANCH_POLICY_PATH
from bot.policy.model import Policy
from bot.policy.trust import PolicyCommit, PolicyTrust, TrustKeys, describe, follow

log = logging.getLogger(__name__)


class PolicyHistory(Protocol):
    """What the source reads from git (bot/policy/commits.py over a Mirror)."""

    def commits(self, since: str | None, tip: str) -> list[PolicyCommit]: ...

    def is_ancestor(self, older: str, newer: str) -> bool: ...

    def blob(self, sha: str) -> bytes: ...

    def file_at(self, commit: str) -> bytes | None: ...


class PolicySource:
    """Holds the policy in force and the decision that led to it.

    Refreshed by the writer thread whenever the branch moves, never from a pull request:
    a change that weakens the policy is judged by the policy it would replace. After
    adoption only trusted commits move it; an untrusted change is logged once as an
    ALERT and listed by `untrusted_commits()`. Before adoption (a moment at first start)
    the file at the tip is read as it is. A trusted policy that turns out invalid keeps
    the last valid one in force (and says so).
    """

    def __init__(
        self,
        load: Callable[[bytes | None], Policy],
        history: PolicyHistory | None,
        keys: TrustKeys,
    ) -> None:
        self._load = load
        self._history = history
        self._keys = keys
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._seen: tuple[str | None, bytes | None] | None = None  # (blob, data) loaded
        self._trust = PolicyTrust()
        self._tip: str | None = None
        self._alerted: set[str] = set()

    def refresh(
        self,
        tip: str | None,
        old: str | None = None,
        written: Written | None = None,
        strict: bool = False,
    ) -> None:
        """Follow the branch to `tip` (None: an empty branch, the shipped default).

        `written` is what this process pushed on top of `old`: its commits are Ritmo's,
        so they are judged from memory instead of from git. `strict` raises on an
        invalid policy."""
        if tip is None or self._history is None:
            self._use(None, None, strict)
            return
        if tip != self._tip:
            self._trust = self._follow(tip, old, written)
            self._tip = tip
        if self._trust.adopted:
            blob = self._trust.in_force
            try:
                data = None if blob is None else self._history.blob(blob)
            except Exception:  # a Ritmo-Policy naming a blob the repository lacks
                if strict or self._policy is None:
                    raise
                log.error("the policy in force, blob %s, cannot be read; the last valid policy "
                          "stays in force", blob, exc_info=True)  # fmt: skip
                return
        else:
            data = self._history.file_at(tip)
            blob = None if data is None else object_id("blob", data)
        self._use(blob, data, strict)
        self._alert()

    def _follow(self, tip: str, old: str | None, written: Written | None) -> PolicyTrust:
        assert self._history is not None
        known = self._tip
        if known is not None and written is not None and old == known:
            return follow(self._trust, [self._from_memory(c) for c in written], self._keys)
        if known is not None and self._history.is_ancestor(known, tip):
            return follow(self._trust, self._history.commits(known, tip), self._keys)
        # First read, or the history was rewritten: decide again from the start.
        return follow(PolicyTrust(), self._history.commits(None, tip), self._keys)

    def _from_memory(self, commit: WrittenCommit) -> PolicyCommit:
        data = commit.files.get(BRANCH_POLICY_PATH)
        signer = min(self._keys.ritmo) if self._keys.ritmo else ""
        return PolicyCommit(
            commit.sha,
            "G",  # this process signed it with Ritmo's key
            signer,
            parse_trailers(commit.message),
            changes_file=data is not None,
            blob=None if data is None else object_id("blob", data),
        )

    def _use(self, blob: str | None, data: bytes | None, strict: bool) -> None:
        if self._policy is not None and self._seen == (blob, data):
            return
        try:
            policy = self._load(data)
        except Exception:
            if strict or self._policy is None:
                raise
            log.error("%s in force (blob %s) is invalid; the last valid policy stays in force",
                      BRANCH_POLICY_PATH, blob, exc_info=True)  # fmt: skip
            return
        with self._lock:
            self._policy, self._seen = policy, (blob, data)

    def _alert(self) -> None:
        for untrusted in self._trust.untrusted:
            if untrusted.sha in self._alerted:
                continue
            self._alerted.add(untrusted.sha)
            # The drift watcher raises the ALERT (and records it once); this says why.
            log.error(
                "commit %s changes %s but %s; it is not obeyed: the trusted policy "
                "(%s) stays in force (untrusted-policy)",
                untrusted.sha, BRANCH_POLICY_PATH, describe(untrusted),
                f"blob {self._trust.in_force}" if self._trust.in_force else "the shipped default",
            )  # fmt: skip

    def adopted(self) -> bool:
        """Whether the branch has adopted a policy (bootstrap done)."""
        return self._trust.adopted

    def untrusted_commits(self) -> list[str]:
        """Commits that changed the policy file and are not obeyed, oldest first."""
        return self._trust.untrusted_shas()

    def in_force_blob(self) -> str | None:
        """The blob of the policy in force (None: the shipped default)."""
        return self._seen[0] if self._seen else None

    def __call__(self) -> Policy:
        with self._lock:
            if self._policy is None:
                raise RuntimeError("the policy has not been read from the branch yet")
            return self._policy
