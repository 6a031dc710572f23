"""The GitHub forge: promotion requests are pull requests, reviews and teams come from GitHub.

Ritmo runs as a GitHub App: PyGithub signs an RS256 JWT with the app's key, exchanges it for
an installation token, caches the token and refreshes it before it expires. Every HTTP
request is counted per operation (`GitHubForge.calls`): the installation's rate limit
(5,000 requests an hour) is a budget, see DESIGN.md "Scale".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.InstallationAuthorization import InstallationAuthorization
from github.Issue import Issue
from github.Repository import Repository
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from bot.auth import is_among
from bot.config import ConfigError, Settings
from bot.forge import DeploymentView, RequestView
from bot.policy.evaluate import Decision, Review, ReviewState
from bot.policy.model import Policy

log = logging.getLogger(__name__)

STATUS_CONTEXT = "ritmo/approval"
_POSTED_LIMIT = 10_000  # commits whose last status is remembered
STATUS_LIMIT = 140  # GitHub truncates nothing: a longer description is a 422
PER_PAGE = 100  # the most GitHub serves per page: fewer requests for reviews and members
# Marks Ritmo's one status comment per issue or pull request; only counts on the bot's own.
STATUS_MARKER = "<!-- ritmo:status -->"
# GET .../collaborators/{user}/permission maps maintain to write and triage to read.
WRITE_PERMISSIONS = frozenset({"admin", "write"})
# Ritmo's deployment states as GitHub deployment status states.
DEPLOYMENT_STATES: dict[str, str] = {
    "progressing": "in_progress",
    "succeeded": "success",
    "failed": "failure",
    "degraded": "failure",  # GitHub has no "degraded": the description says it
    "inactive": "inactive",
}
PRODUCTION_ENVIRONMENTS = frozenset({"production", "prod"})
RETIRE_WINDOW = 30  # earlier deployments looked at when a production one succeeds

# PyGithub's pacing: GitHub asks for a second between mutating requests, or it answers with
# secondary rate limits. Tests set these to 0.
READ_INTERVAL: float | None = 0.25
WRITE_INTERVAL: float | None = 1.0

_REVIEW_STATES: dict[str, ReviewState] = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
    "DISMISSED": "dismissed",
}  # PENDING: a draft review nobody else sees yet; it counts for nothing

_OPERATION: ContextVar[str] = ContextVar("ritmo_github_operation", default="other")

Count = Callable[[], None]


class _CountedAppAuth(Auth.AppAuth):
    """App (JWT) authentication that counts each request it authenticates."""

    def __init__(self, app_id: int, private_key: str, count: Count) -> None:
        super().__init__(app_id, private_key)
        self._count = count

    def authentication(self, headers: dict[str, Any]) -> None:
        self._count()
        super().authentication(headers)


class _CountedInstallationAuth(Auth.AppInstallationAuth):
    """Installation-token authentication that counts each request it authenticates.

    PyGithub caches the token and asks for a new one 20 seconds before it expires; the
    exchange goes through the forge's own app client (JWT auth, counted there), so one
    connection pool serves every app-level call and `close` reaches it."""

    def __init__(
        self,
        app_auth: Auth.AppAuth,
        installation_id: int,
        count: Count,
        exchange: Callable[[], InstallationAuthorization],
    ) -> None:
        self._count = count
        self._exchange = exchange
        super().__init__(app_auth, installation_id)

    def authentication(self, headers: dict[str, Any]) -> None:
        self._count()
        super().authentication(headers)

    def _get_installation_authorization(self) -> InstallationAuthorization:
        return self._exchange()


class _CountedRetry(GithubRetry):
    """GitHub's retry (Retry-After, secondary rate limits, 5xx) counting each re-sent request."""

    def __init__(self, count: Count | None = None, **kwargs: Any) -> None:
        self._count = count
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> _CountedRetry:
        kw["count"] = self._count
        return super().new(**kw)

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[arg-type]
        if self._count is not None:
            self._count()  # only now is another request certain to go out
        return retry


class GitHubForge:
    """Promotion requests as pull requests on `repository`, merged by Ritmo's signed push."""

    kind = "github"

    def __init__(
        self,
        *,
        app_id: int,
        private_key: str,
        installation_id: int,
        repository: str,
        default_branch: str,
        policy: Callable[[], Policy],
        api_url: str = "https://api.github.com",
        membership_ttl: float = 300,
        bot_login: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 5,
        secondary_rate_wait: float = 60,
        max_rate_limit_wait: float = 300,
        timeout: int = 15,
    ) -> None:
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        # Told each call's operation as it happens: metrics shared by worker processes.
        self.on_call: Callable[[str], None] = lambda operation: None
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
        self._status_comments: dict[int, int] = {}  # issue number -> Ritmo's comment id
        self._comments_lock = threading.Lock()
        # sha -> (state, description) last posted: the scheduler re-evaluates every pass,
        # and GitHub keeps at most 1,000 statuses per commit and context.
        self._posted: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._posted_lock = threading.Lock()
        retry = _CountedRetry(
            self._count,
            total=retries,
            backoff_factor=0.5,
            secondary_rate_wait=secondary_rate_wait,
            max_rate_limit_wait=max_rate_limit_wait,
        )
        options: dict[str, Any] = {
            "base_url": api_url.rstrip("/"),
            "timeout": timeout,
            "per_page": PER_PAGE,
            "retry": retry,
            "seconds_between_requests": READ_INTERVAL,
            "seconds_between_writes": WRITE_INTERVAL,
        }
        app_auth = _CountedAppAuth(app_id, private_key, self._count)
        self._app = GithubIntegration(auth=app_auth, **options)
        installation = _CountedInstallationAuth(
            app_auth, installation_id, self._count,
            lambda: self._app.get_access_token(installation_id),
        )  # fmt: skip
        # lazy: objects are URLs until read, so writing to a PR costs no GET of the PR first.
        self._github = Github(auth=installation, lazy=True, **options)
        self._installation = installation

    def installation_token(self) -> str:
        """The installation token (PyGithub refreshes it), for the outbox's dispatches."""
        self._count()
        return str(self._installation.token)

    def close(self) -> None:
        self._github.close()
        self._app.close()

    def rate_limit(self) -> tuple[int, int] | None:
        """(remaining, limit) as the last installation response said; None before one.
        Never asks GitHub (Github.rate_limiting would, when nothing is known yet)."""
        remaining, limit = self._github.requester.rate_limiting
        return None if limit < 0 else (remaining, limit)

    # -- counting ------------------------------------------------------------------
    def _count(self) -> None:
        operation = _OPERATION.get()
        with self._calls_lock:
            self.calls[operation] += 1
        self.on_call(operation)

    @contextmanager
    def _operation(self, name: str) -> Iterator[None]:
        token = _OPERATION.set(name)
        try:
            yield
        finally:
            _OPERATION.reset(token)

    def _repo(self) -> Repository:
        return self._github.get_repo(self._repository)

    # -- the Forge protocol --------------------------------------------------------
    def author(self) -> str:
        """The app's bot user, who opens every pull request: never an approver."""
        with self._login_lock:
            if self._bot_login is None:
                with self._operation("author"):
                    self._bot_login = f"{self._app.get_app().slug}[bot]"
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
                        _message(exc),
                    )  # fmt: skip
            try:
                self._status(request.head, "pending", _describe(_required(self._policy(), request)))
            except GithubException as exc:
                # The pull request exists: losing its number over a status would orphan it.
                log.warning(
                    "could not set %s on %s: %s %s", STATUS_CONTEXT, request.head[:12],
                    exc.status, _message(exc),
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
                    exc.status, _message(exc),
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
                    _message(exc),
                )  # fmt: skip

    def flagged(self, sha: str, why: str) -> None:
        """The `ritmo/approval` status turns red on a commit Ritmo did not allow."""
        with self._operation("flagged"):
            try:
                self._status(sha, "failure", why)
            except GithubException as exc:
                log.warning(
                    "could not set %s on %s: %s %s", STATUS_CONTEXT, sha[:12], exc.status,
                    _message(exc),
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
                    _message(exc),
                )  # fmt: skip

    def deployed(self, deployment: DeploymentView) -> str | None:
        """Mirror a deployment as a GitHub Deployment in the app's source repository.

        Without `forge_ref`: create the deployment, then add its status (two requests);
        with it, only add the status (one). Returns the GitHub deployment id, or None when
        nothing could be mirrored: the repository may be outside the installation, or the
        ref unknown there. Best effort: GitHub's refusals are logged, never raised, since
        Ritmo's own record is in git."""
        if deployment.repository is None:
            return None
        state = DEPLOYMENT_STATES.get(deployment.status)
        if state is None:
            log.warning(
                "deployment %s: no GitHub deployment state for status %r; not mirrored",
                deployment.id, deployment.status,
            )  # fmt: skip
            return deployment.forge_ref
        repository = deployment.repository
        with self._operation("deployed"):
            forge_ref = deployment.forge_ref
            if forge_ref is None and deployment.mirrored_before:
                forge_ref = self._find_deployment(repository, deployment)
            if forge_ref is None:
                try:
                    created = self._github.get_repo(repository).create_deployment(
                        ref=deployment.ref,
                        auto_merge=False,  # never merge the default branch into the ref
                        required_contexts=[],  # CI already ran: the artifact exists
                        payload={"ritmo_deployment": deployment.id},
                        environment=deployment.environment,
                        description=_clip(deployment.description),
                        transient_environment=False,
                        production_environment=_is_production(deployment.environment),
                    )
                except GithubException as exc:
                    # 404/403: not in this installation; 422: the ref is not in the repository.
                    log.warning(
                        "could not create a GitHub deployment of %s in %s for %s (%s): %s %s",
                        deployment.ref[:40], repository, deployment.id, deployment.environment,
                        exc.status, _message(exc),
                    )  # fmt: skip
                    return None
                if created.id is None:  # a 202 "Auto-merged": not with auto_merge False
                    log.warning(
                        "GitHub created no deployment in %s for %s", repository, deployment.id
                    )
                    return None
                forge_ref = str(created.id)
            try:
                self._deployment_status(repository, forge_ref, state, deployment)
            except GithubException as exc:
                log.warning(
                    "could not set the status of GitHub deployment %s in %s (%s, %s): %s %s",
                    forge_ref, repository, deployment.id, state, exc.status, _message(exc),
                )  # fmt: skip
                if deployment.forge_ref is not None and exc.status in (403, 404):
                    return None  # gone, or no longer accessible
                return forge_ref
            if state == "success" and _is_production(deployment.environment):
                self._retire_earlier(repository, int(forge_ref), deployment)
            return forge_ref

    def _retire_earlier(self, repository: str, newest: int, deployment: DeploymentView) -> None:
        """GitHub's auto_inactive skips production environments: mark the environment's
        earlier deployments that still show success inactive, newest first, up to one
        already inactive (the success that retired it retired those before it too).

        One list, one status read per earlier deployment looked at, one write per one
        retired: usually four requests. Best effort, like the mirroring itself."""
        path = f"/repos/{repository}/deployments"
        try:
            _, listed = self._github.requester.requestJsonAndCheck(
                "GET", path, parameters={"environment": deployment.environment,
                                         "per_page": RETIRE_WINDOW},
            )  # fmt: skip
            earlier = sorted(
                (int(d["id"]) for d in listed or [] if int(d["id"]) < newest), reverse=True
            )
            for deployment_id in earlier:
                _, statuses = self._github.requester.requestJsonAndCheck(
                    "GET", f"{path}/{deployment_id}/statuses", parameters={"per_page": 1}
                )
                latest = statuses[0]["state"] if statuses else None
                if latest == "inactive":
                    break
                if latest != "success":
                    continue  # failed or never finished: it was never the live one
                self._github.requester.requestJsonAndCheck(
                    "POST",
                    f"{path}/{deployment_id}/statuses",
                    input={
                        "state": "inactive",
                        "description": _clip(f"superseded by {deployment.description}"),
                    },
                    headers={"Accept": "application/vnd.github+json"},
                )
        except GithubException as exc:
            log.warning(
                "could not retire the earlier %s deployments in %s: %s %s",
                deployment.environment, repository, exc.status, _message(exc),
            )  # fmt: skip
        except requests.RequestException as exc:  # the id made above must not be lost
            log.warning(
                "could not retire the earlier %s deployments in %s: %s",
                deployment.environment, repository, exc,
            )  # fmt: skip

    def _find_deployment(self, repository: str, deployment: DeploymentView) -> str | None:
        """The GitHub deployment made for `deployment` before, found by the payload Ritmo
        gave it, among the newest of its ref and environment (one request)."""
        try:
            listed = self._github.get_repo(repository).get_deployments(
                ref=deployment.ref, environment=deployment.environment
            )
            for found in listed.get_page(0):
                if (found.payload or {}).get("ritmo_deployment") == deployment.id:
                    return str(found.id)
        except GithubException as exc:
            log.warning(
                "could not look up the GitHub deployment of %s in %s: %s %s",
                deployment.id, repository, exc.status, _message(exc),
            )  # fmt: skip
        return None

    def _deployment_status(
        self, repository: str, forge_ref: str, state: str, deployment: DeploymentView
    ) -> None:
        """POST .../deployments/{id}/statuses: PyGithub's create_status has no log_url."""
        description = deployment.description
        if deployment.status == "degraded":
            description = f"degraded: {description}"
        body: dict[str, Any] = {
            "state": state,
            "description": _clip(description),
            # Only a success retires the environment's earlier deployments: a failed
            # rollout leaves the previous one live (GitHub's default would be true).
            "auto_inactive": state == "success",
        }
        if deployment.log_url is not None:
            body["log_url"] = deployment.log_url
        if deployment.environment_url is not None:
            body["environment_url"] = deployment.environment_url
        self._github.requester.requestJsonAndCheck(
            "POST",
            f"/repos/{repository}/deployments/{forge_ref}/statuses",
            input=body,
            headers={"Accept": "application/vnd.github+json"},
        )

    # -- comments and permissions ----------------------------------------------------
    def can_write(self, login: str) -> bool:
        """Whether `login` may push to the repository: admin, maintain or write access."""
        with self._operation("permission"):
            try:
                permission = self._repo().get_collaborator_permission(login)
            except GithubException as exc:
                if exc.status != 404:
                    raise
                return False  # no such user: no access
            return permission in WRITE_PERMISSIONS

    def upsert_comment(self, number: int, body: str) -> int:
        """Ritmo's one status comment on issue or pull request `number`: edited in place when
        it exists, posted otherwise. Returns the comment's id."""
        text = f"{STATUS_MARKER}\n{body}"
        with self._operation("comment"):
            issue = self._repo().get_issue(number)
            with self._comments_lock:
                known = self._status_comments.get(number)
            if known is None:
                known = self._find_status_comment(issue)
            if known is not None:
                try:
                    issue.get_comment(known).edit(text)
                except GithubException as exc:
                    if exc.status != 404:
                        raise
                    # Deleted by someone since: a fresh one takes its place.
                    known = None
            if known is None:
                known = int(issue.create_comment(text).id)
            with self._comments_lock:
                self._status_comments[number] = known
            return known

    def _find_status_comment(self, issue: Issue) -> int | None:
        """The oldest comment by Ritmo's bot carrying the marker: anyone can paste the
        marker, and a write-access app could edit their comment, so the author decides."""
        me = self.author()
        for comment in issue.get_comments():
            user = comment.user
            mine = user is not None and is_among(user.login, [me])
            if mine and STATUS_MARKER in (comment.body or ""):
                return int(comment.id)
        return None

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
                team, exc.status, _message(exc),
            )  # fmt: skip
            return frozenset()
        with self._teams_lock:
            self._teams[team] = (now, logins)
        return logins

    def _status(self, sha: str, state: str, description: str) -> None:
        """Post the status only when it differs from the one this process last posted."""
        wanted = (state, _clip(description))
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


def _is_production(environment: str) -> bool:
    return environment.casefold() in PRODUCTION_ENVIRONMENTS


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= STATUS_LIMIT else text[: STATUS_LIMIT - 1] + "…"


def _message(exc: GithubException) -> str:
    data = exc.data
    return str(data.get("message", "")) if isinstance(data, dict) else ""


# -- building from settings -------------------------------------------------------------


def _missing(setting: str, fix: str) -> ConfigError:
    env = "RITMO_FORGE__GITHUB__" + setting.upper()
    return ConfigError(f"setting forge.github.{setting} ({env}) is not set; set it to {fix}")


def _read_key(private_key: str | None, key_file: Path | None) -> str:
    if private_key and key_file:
        raise ConfigError(
            "forge.github.private_key (RITMO_FORGE__GITHUB__PRIVATE_KEY) and "
            "forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE) are both "
            "set; keep one"
        )
    if key_file is not None:
        try:
            private_key = Path(key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"setting forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE): "
                f"{key_file}: {exc.strerror}; point it at the app's .pem private key"
            ) from None
        where = "forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE)"
    elif private_key:
        where = "forge.github.private_key (RITMO_FORGE__GITHUB__PRIVATE_KEY)"
    else:
        raise ConfigError(
            "setting forge.github.private_key (RITMO_FORGE__GITHUB__PRIVATE_KEY) is not set; "
            "set it to the GitHub App's PEM private key, or set forge.github.private_key_file "
            "(RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE) to the .pem file"
        )
    try:
        key = load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(
            f"setting {where} is not an unencrypted PEM RSA private key; use the .pem file "
            "generated on the GitHub App's settings page"
        )
    return private_key


def github_forge(settings: Settings, policy: Callable[[], Policy]) -> GitHubForge | None:
    """The GitHub forge when forge.kind is github (None otherwise); fails closed on gaps."""
    if settings.forge.kind != "github":
        return None
    gh = settings.forge.github
    if gh.app_id is None:
        raise _missing("app_id", "the GitHub App's id (its settings page, About)")
    key = _read_key(gh.private_key, gh.private_key_file)
    if gh.installation_id is None:
        raise _missing(
            "installation_id",
            "the id of the app's installation on the manifests repository's account "
            "(the number at the end of the installation's settings URL)",
        )
    if gh.repository is None:
        raise _missing("repository", "owner/name of the manifests repository on GitHub")
    if not gh.webhook_secret:
        # Without it no delivery can be verified: refuse rather than accept unsigned ones.
        raise _missing("webhook_secret", "the webhook secret configured on the GitHub App")
    return GitHubForge(
        app_id=gh.app_id,
        private_key=key,
        installation_id=gh.installation_id,
        repository=gh.repository,
        default_branch=settings.manifests.branch,
        policy=policy,
        api_url=gh.api_url,
        membership_ttl=gh.membership_ttl,
        bot_login=gh.bot_login,
    )
