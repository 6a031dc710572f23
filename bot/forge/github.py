"""The GitHub forge: promotion requests are pull requests, reviews and teams come from GitHub.

Ritmo runs as a GitHub App (bot/forge/github_session.py: authentication, retries, pacing and
the count of calls); deployments are mirrored by bot/forge/github_deployments.py, and the
comment commands' answers are bot/forge/github_comments.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from github import GithubException
from github.Repository import Repository

from bot.config import Settings, missing_github
from bot.forge import DeploymentView, RequestView
from bot.forge.github_comments import StatusComments
from bot.forge.github_deployments import GitHubDeployments
from bot.forge.github_session import PACING, GitHubSession, Pacing, clip, message
from bot.policy.evaluate import Decision, Review, ReviewState
from bot.policy.model import Policy

log = logging.getLogger(__name__)

STATUS_CONTEXT = "ritmo/approval"
_POSTED_LIMIT = 10_000  # commits whose last status is remembered

_REVIEW_STATES: dict[str, ReviewState] = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
    "DISMISSED": "dismissed",
}  # PENDING: a draft review nobody else sees yet; it counts for nothing


class GitHubForge:
    """Promotion requests as pull requests on `repository`, merged by Ritmo's signed push."""

    kind = "github"

    def __init__(
        self,
        session: GitHubSession,
        *,
        repository: str,
        default_branch: str,
        policy: Callable[[], Policy],
        membership_ttl: float = 300,
        bot_login: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._operation = session.operation
        self._deployments = GitHubDeployments(session)
        self._comments = StatusComments(session, repository, self.author)
        self._github = session.github
        self._repository = repository
        self._owner = repository.split("/", 1)[0]
        self._default_branch = default_branch
        self._policy = policy
        self._ttl = membership_ttl
        self._clock = clock
        self._bot_login = bot_login
        self._login_lock = threading.Lock()
        self._teams: dict[str, tuple[float, frozenset[str]]] = {}
        self._teams_lock = threading.Lock()
        # sha -> (state, description) last posted: the scheduler re-evaluates every pass,
        # and GitHub keeps at most 1,000 statuses per commit and context.
        self._posted: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._posted_lock = threading.Lock()

    @property
    def calls(self) -> Counter[str]:
        """Requests sent to GitHub, per forge operation (retries and token exchanges too)."""
        return self._session.calls

    @property
    def on_call(self) -> Callable[[str], None]:
        """Told each call's operation as it happens: metrics shared by worker processes."""
        return self._session.on_call

    @on_call.setter
    def on_call(self, hook: Callable[[str], None]) -> None:
        self._session.on_call = hook

    def installation_token(self) -> str:
        """The installation token (PyGithub refreshes it), for the outbox's dispatches."""
        return self._session.installation_token()

    def close(self) -> None:
        self._session.close()

    def rate_limit(self) -> tuple[int, int] | None:
        """(remaining, limit) as the last installation response said; None before one."""
        return self._session.rate_limit()

    def _repo(self) -> Repository:
        return self._github.get_repo(self._repository)

    # -- the Forge protocol --------------------------------------------------------
    def author(self) -> str:
        """The app's bot user, who opens every pull request: never an approver."""
        with self._login_lock:
            if self._bot_login is None:
                with self._operation("author"):
                    self._bot_login = f"{self._session.app.get_app().slug}[bot]"
            return self._bot_login

    def opened(self, request: RequestView) -> str | None:
        """Open the pull request, ask the approver teams to review, show 0/N approvals."""
        with self._operation("opened"):
            repo = self._repo()
            try:
                pull = repo.create_pull(
                    base=self._default_branch,
                    head=request.branch,
                    title=request.title,
                    body=request.body,
                )
            except GithubException as exc:
                if exc.status != 422:
                    raise
                pull = self._existing_pull(repo, request)  # e.g. left open by a crash
            teams = self._review_teams(request.groups)
            if teams:
                try:
                    pull.create_review_request(team_reviewers=teams)
                except GithubException as exc:
                    # Reviewers are a courtesy: approvals count by membership, not by request.
                    log.warning(
                        "could not request reviews from %s on %s#%s: %s %s; give the teams "
                        "access to the repository",
                        ", ".join(teams), self._repository, pull.number, exc.status,
                        message(exc),
                    )  # fmt: skip
            try:
                self._status(request.head, "pending", _describe(_required(self._policy(), request)))
            except GithubException as exc:
                # The pull request exists: losing its number over a status would orphan it.
                log.warning(
                    "could not set %s on %s: %s %s", STATUS_CONTEXT, request.head[:12],
                    exc.status, message(exc),
                )  # fmt: skip
            return str(pull.number)

    def reviews(self, request: RequestView) -> list[Review] | None:
        """The pull request's submitted reviews; none at all without a pull request."""
        if request.forge_ref is None:
            return []
        with self._operation("reviews"):
            pull = self._repo().get_pull(int(request.forge_ref))
            found: list[Review] = []
            for review in pull.get_reviews():
                state = _REVIEW_STATES.get(review.state)
                user = review.user
                if state is None or user is None or review.submitted_at is None:
                    continue  # pending (a draft), or by a deleted account ("ghost")
                found.append(
                    Review(
                        reviewer=user.login,
                        state=state,
                        commit=review.commit_id or "",
                        submitted_at=review.submitted_at,
                        is_bot=user.type == "Bot",
                    )
                )
            return found

    def changed_files(self, number: str) -> list[str]:
        """The paths pull request `number` changes (a policy pull request edits the policy)."""
        with self._operation("changed_files"):
            return [f.filename for f in self._repo().get_pull(int(number)).get_files()]

    def memberships(self, policy: Policy, groups: Sequence[str]) -> Mapping[str, frozenset[str]]:
        """Members of each github-team group; local groups have no members on GitHub."""
        with self._operation("memberships"):
            out: dict[str, frozenset[str]] = {}
            for name in groups:
                group = policy.group(name)
                if group.kind == "github-team" and group.team is not None:
                    out[name] = self._team_members(group.team)
                else:
                    out[name] = frozenset()
            return out

    def progressed(self, request: RequestView, decision: Decision) -> None:
        """The `ritmo/approval` status on the head: green when approved, red when it cannot be."""
        state: Literal["success", "failure", "pending"]
        if decision.status == "approved":
            state = "success"
        elif decision.status in ("blocked", "expired"):
            state = "failure"
        else:
            state = "pending"
        with self._operation("progressed"):
            try:
                self._status(request.head, state, f"{decision.progress}: {decision.reason}")
            except GithubException as exc:
                log.warning(
                    "could not set %s on %s: %s %s", STATUS_CONTEXT, request.head[:12],
                    exc.status, message(exc),
                )  # fmt: skip

    def closed(self, request: RequestView, status: str, comment: str) -> None:
        """Say why on the pull request, then close it."""
        if request.forge_ref is None:
            return
        number = int(request.forge_ref)
        with self._operation("closed"):
            repo = self._repo()
            try:
                repo.get_issue(number).create_comment(
                    f"Ritmo closed this promotion request ({status}): {comment}"
                )
                repo.get_pull(number).edit(state="closed")
            except GithubException as exc:
                # GitHub may have closed it already, when Ritmo replaced the branch.
                log.warning(
                    "could not close %s#%s: %s %s", self._repository, number, exc.status,
                    message(exc),
                )  # fmt: skip

    def flagged(self, sha: str, why: str) -> None:
        """The `ritmo/approval` status turns red on a commit Ritmo did not allow."""
        with self._operation("flagged"):
            try:
                self._status(sha, "failure", why)
            except GithubException as exc:
                log.warning(
                    "could not set %s on %s: %s %s", STATUS_CONTEXT, sha[:12], exc.status,
                    message(exc),
                )  # fmt: skip

    def alert(self, sha: str, text: str, number: str | None = None) -> None:
        """A comment GitHub notifies people of: on the pull request, else on the commit."""
        body = f"**Ritmo alert:** {text}"
        with self._operation("alert"):
            try:
                if number is not None:
                    self._repo().get_issue(int(number)).create_comment(body)
                else:
                    self._repo().get_commit(sha).create_comment(body)
            except GithubException as exc:
                log.warning(
                    "could not post the alert on %s: %s %s", number or sha[:12], exc.status,
                    message(exc),
                )  # fmt: skip

    def deployed(self, deployment: DeploymentView) -> str | None:
        """Mirror a deployment as a GitHub Deployment in the app's source repository."""
        return self._deployments.deployed(deployment)

    # -- comments and permissions ----------------------------------------------------
    def can_write(self, login: str) -> bool:
        """Whether `login` may push to the repository: admin, maintain or write access."""
        return self._comments.can_write(login)

    def upsert_comment(self, number: int, body: str) -> int:
        """Ritmo's one status comment on issue or pull request `number`; returns its id."""
        return self._comments.upsert(number, body)

    # -- helpers -------------------------------------------------------------------
    def _existing_pull(self, repo: Repository, request: RequestView) -> Any:
        for pull in repo.get_pulls(state="open", head=f"{self._owner}:{request.branch}"):
            pull.edit(title=request.title, body=request.body)
            return pull
        raise RuntimeError(
            f"GitHub refused a pull request for {request.branch} and none is open; "
            f"check that {request.branch} and {self._default_branch} exist on {self._repository}"
        )

    def _review_teams(self, groups: Sequence[str]) -> list[str]:
        policy = self._policy()
        teams = []
        for name in groups:
            group = policy.group(name)
            if group.kind != "github-team" or group.team is None:
                continue
            org, slug = group.team.split("/", 1)
            if org.casefold() != self._owner.casefold():
                continue  # GitHub only takes review requests from the repository's org
            teams.append(slug)
        return teams

    def _team_members(self, team: str) -> frozenset[str]:
        now = self._clock()
        with self._teams_lock:
            cached = self._teams.get(team)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        org, slug = team.split("/", 1)
        try:
            members = self._github.get_organization(org).get_team_by_slug(slug).get_members()
            logins = frozenset(user.login for user in members)
        except GithubException as exc:
            if exc.status not in (403, 404):
                raise
            # Fail closed: nobody approves for a team Ritmo cannot see. Not cached.
            log.warning(
                "cannot read the members of team %s (%s %s); the app needs the organization "
                "permission Members: read, and the team must exist",
                team, exc.status, message(exc),
            )  # fmt: skip
            return frozenset()
        with self._teams_lock:
            self._teams[team] = (now, logins)
        return logins

    def _status(self, sha: str, state: str, description: str) -> None:
        """Post the status only when it differs from the one this process last posted."""
        wanted = (state, clip(description))
        with self._posted_lock:
            if self._posted.get(sha) == wanted:
                self._posted.move_to_end(sha)
                return
        self._repo().get_commit(sha).create_status(
            state=state, description=wanted[1], context=STATUS_CONTEXT
        )
        with self._posted_lock:
            self._posted[sha] = wanted
            self._posted.move_to_end(sha)
            while len(self._posted) > _POSTED_LIMIT:
                self._posted.popitem(last=False)


def _required(policy: Policy, request: RequestView) -> int:
    rule = policy.rule(request.app, request.from_env, request.to_env)
    return rule.required_approvers if rule and rule.requires_approval else 0


def _describe(required: int) -> str:
    return f"0/{required} approvals" if required else "no approvals required"


# -- building from settings -------------------------------------------------------------


def github_forge(
    settings: Settings, policy: Callable[[], Policy], pacing: Pacing = PACING
) -> GitHubForge | None:
    """The GitHub forge when forge.kind is github (None otherwise); fails closed on gaps."""
    if settings.forge.kind != "github":
        return None
    gh = settings.forge.github
    app_id, key, installation_id = gh.app()
    if gh.repository is None:
        raise missing_github("repository", "owner/name of the manifests repository on GitHub")
    if not gh.webhook_secret:
        # Without it no delivery can be verified: refuse rather than accept unsigned ones.
        raise missing_github("webhook_secret", "the webhook secret configured on the GitHub App")
    session = GitHubSession(
        app_id=app_id, private_key=key, installation_id=installation_id, api_url=gh.api_url,
        pacing=pacing,
    )  # fmt: skip
    return GitHubForge(
        session,
        repository=gh.repository,
        default_branch=settings.manifests.branch,
        policy=policy,
        membership_ttl=gh.membership_ttl,
        bot_login=gh.bot_login,
    )
