"""The policy in force: `.ritmo/policy.yaml` on the default branch, followed as it moves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.manifests.writer import Reader
from bot.policy.load import BRANCH_POLICY_PATH
from bot.policy.model import Policy

log = logging.getLogger(__name__)


class PolicySource:
    """Holds the last valid policy read from the branch.

    Refreshed by the writer thread whenever the branch moves, never from a pull request:
    a change that weakens the policy is judged by the policy it would replace. A policy
    that turns invalid on the branch keeps the last valid one in force (and says so).
    """

    def __init__(self, load: Callable[[Reader], Policy]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._seen: bytes | None = None

    def refresh(self, read: Reader, strict: bool = False) -> None:
        """Re-read the policy if its file changed; `strict` raises on an invalid one."""
        raw = read(BRANCH_POLICY_PATH)
        if self._policy is not None and raw == self._seen:
            return
        try:
            policy = self._load(read)
        except Exception:
            if strict or self._policy is None:
                raise
            log.error("%s on the branch is invalid; the last valid policy stays in force",
                      BRANCH_POLICY_PATH, exc_info=True)  # fmt: skip
            return
        with self._lock:
            self._policy, self._seen = policy, raw

    def __call__(self) -> Policy:
        with self._lock:
            if self._policy is None:
                raise RuntimeError("the policy has not been read from the branch yet")
            return self._policy
