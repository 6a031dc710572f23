"""The local forge: requests are branches, reviews come through Ritmo's API, groups from tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from bot.forge import DeploymentView, RequestView
from bot.policy.evaluate import Decision, Review
from bot.policy.model import Policy

RITMO = "ritmo"


class LocalForge:
    kind = "local"

    def __init__(self, memberships: Callable[[], Mapping[str, frozenset[str]]]) -> None:
        self._memberships = memberships
        self.calls: Counter[str] = Counter()  # it calls no server
        self.on_call: Callable[[str], None] = lambda operation: None

    def rate_limit(self) -> tuple[int, int] | None:
        return None

    def close(self) -> None:
        return None

    def memberships(self, policy: Policy, groups: Sequence[str]) -> Mapping[str, frozenset[str]]:
        known = self._memberships()
        return {g: known.get(g, frozenset()) for g in groups}

    def author(self) -> str:
        return RITMO

    def opened(self, request: RequestView) -> str | None:
        return None  # the branch and Ritmo's API are the whole of it

    def reviews(self, request: RequestView) -> list[Review] | None:
        return None  # Ritmo records reviews itself, as signed commits on the branch

    def progressed(self, request: RequestView, decision: Decision) -> None:
        return None

    def closed(self, request: RequestView, status: str, comment: str) -> None:
        return None

    def flagged(self, sha: str, why: str) -> None:
        return None  # no commit statuses here: the closing commit and the log say it

    def alert(self, sha: str, text: str, number: str | None = None) -> None:
        return None  # the ALERT log line is the local forge's notification

    def deployed(self, deployment: DeploymentView) -> str | None:
        return None  # Ritmo's deployment record in git is the whole of it
