"""Forges: where promotion requests are shown and reviewed (GitHub, or Ritmo's own API)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.policy.evaluate import Decision, Review
from bot.policy.model import Policy


@dataclass(frozen=True)
class RequestView:
    """What a forge needs to know about a promotion request."""

    id: str
    app: str
    version: str
    from_env: str
    to_env: str
    branch: str
    head: str
    requested_by: str
    title: str
    body: str
    groups: tuple[str, ...]
    forge_ref: str | None = None  # e.g. the pull request number


@dataclass(frozen=True)
class DeploymentView:
    """What a forge needs to know to mirror one of Ritmo's deployments."""

    id: str  # Ritmo's deployment id, e.g. dep-0123abcd...
    # owner/name of the app's source repository as the policy names it; None: no mirror
    repository: str | None
    environment: str  # e.g. staging
    ref: str  # the source commit sha (bot/deploy/forge_target)
    status: str  # progressing | succeeded | failed | degraded | inactive
    description: str  # e.g. "web 1.2.3 to staging" (GitHub caps it at 140 characters)
    log_url: str | None  # a link to the CD app (ArgoCD), if any
    environment_url: str | None = None
    forge_ref: str | None = None  # the forge's id for it once created (Ritmo stores it)
    # An earlier status was mirrored: without forge_ref (a rebuilt index lost it), the
    # forge looks its deployment up rather than creating a second one.
    mirrored_before: bool = False


class Forge(Protocol):
    kind: str
    # Told each call the forge makes to its server, by operation: metrics shared by worker
    # processes count them there.
    on_call: Callable[[str], None]

    @property
    def calls(self) -> Mapping[str, int]:
        """Calls made to the forge's server so far, by operation."""
        ...

    def rate_limit(self) -> tuple[int, int] | None:
        """(remaining, limit) of the forge's rate limit as last seen; None when unknown."""
        ...

    def close(self) -> None:
        """Release the forge's connections; the runtime closes it last."""
        ...

    def memberships(self, policy: Policy, groups: Sequence[str]) -> Mapping[str, frozenset[str]]:
        """group -> members, for the groups a rule names."""
        ...

    def author(self) -> str:
        """Who opens requests on this forge: never an approver."""
        ...

    def opened(self, request: RequestView) -> str | None:
        """The request branch is pushed: show it (a pull request); returns its reference."""
        ...

    def reviews(self, request: RequestView) -> list[Review] | None:
        """The reviews the forge recorded, or None when Ritmo records them itself."""
        ...

    def progressed(self, request: RequestView, decision: Decision) -> None:
        """Show the evaluation (a commit status such as "1/2 approvals")."""
        ...

    def closed(self, request: RequestView, status: str, comment: str) -> None:
        """The request ended without a merge (superseded, expired, rejected)."""
        ...

    def flagged(self, sha: str, why: str) -> None:
        """Mark a commit Ritmo did not allow (a tampered head, a merge without the policy)."""
        ...

    def alert(self, sha: str, text: str, number: str | None = None) -> None:
        """Tell people: on pull request `number`, else on commit `sha` (the forge notifies)."""
        ...

    def deployed(self, deployment: DeploymentView) -> str | None:
        """Mirror a deployment's state; returns the forge's id for it (create once, then add
        statuses). Best effort: None when it could not be mirrored; the forge's refusals
        are logged, not raised (Ritmo's record is in git)."""
        ...
