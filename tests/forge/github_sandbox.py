"""GitHub over `responses`: serves the recorded-shape samples in tests/samples/github/.

One `GitHubSandbox` per test (the tests and benchmarks/github_calls.py share it). Any URL
it did not register fails the request with a ConnectionError: there is no live network.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import responses

from bot.config import ForgeSettings, GitHubSettings, Settings
from bot.forge.github import GitHubForge
from bot.forge.github_session import GitHubSession, Pacing
from bot.policy.load import load_policy
from bot.policy.model import Policy
from bot.runtime import Runtime, build_runtime

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "github"
RECORDED_API = "https://api.github.com"  # the base the samples were recorded against
APP_ID = 4242
INSTALLATION_ID = 77
REPOSITORY = "acme/manifests"
SOURCE_REPOSITORY = "acme/web"  # an artifact's source repository, where deployments show
DEPLOYMENT_ID = 1880000042  # the GitHub deployment in deployment-created.json
WEBHOOK_SECRET = "It's a Secret to Everybody"  # the example in GitHub's webhook docs
PRIVATE_KEY = (SAMPLES / "app-key.pem").read_text()
PUBLIC_KEY = (SAMPLES / "app-key.pub.pem").read_text()

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}, {group: security-team, count: 1}]
    approval_timeout: 7d
groups:
  ops-team: {kind: github-team, team: acme/ops}
  security-team: {kind: github-team, team: acme/security}
  release-managers: {kind: local}
apps:
  web: {}
"""


def policy() -> Policy:
    return load_policy(POLICY, "policy.yaml")


def sample(name: str, api: str = RECORDED_API) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body) of a sample, its URLs rebased onto `api`."""
    text = (SAMPLES / f"{name}.json").read_text()
    if api != RECORDED_API:
        text = text.replace(RECORDED_API, api)
    data = json.loads(text)
    return int(data["status"]), dict(data["headers"]), data["body"]


class GitHubSandbox:
    """A GitHub App installation on acme/manifests, answered from the samples."""

    def __init__(self, rsps: responses.RequestsMock, api: str = RECORDED_API) -> None:
        self.rsps = rsps
        self.api = api.rstrip("/")
        self.repo = f"{self.api}/repos/{REPOSITORY}"
        self.token_ttl = timedelta(hours=1)

    # -- registering -------------------------------------------------------------
    def add(
        self,
        method: str,
        path: str,
        name: str,
        body: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        replace: bool = False,
    ) -> None:
        code, recorded, payload = sample(name, self.api)
        url = path if path.startswith("http") else f"{self.api}{path}"
        target: str | re.Pattern[str] = _with_port(url)
        if "{sha}" in path:  # a commit Ritmo has yet to make
            target = re.compile(re.escape(str(target)).replace(re.escape("{sha}"), "[0-9a-f]{40}"))
        if replace:
            self.rsps.remove(method, target)
        self.rsps.add(
            method,
            target,
            json=payload if body is None else body,
            status=status or code,
            headers={k: v for k, v in {**recorded, **(headers or {})}.items()
                     if k.lower() != "content-type"},
            content_type=recorded.get("Content-Type", "application/json"),
        )  # fmt: skip

    def token(self) -> None:
        """POST /app/installations/{id}/access_tokens: a token valid for `token_ttl`."""
        _, _, body = sample("installation-token")
        expires = datetime.now(UTC) + self.token_ttl
        body["expires_at"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.add("POST", f"/app/installations/{INSTALLATION_ID}/access_tokens",
                 "installation-token", body)  # fmt: skip

    def app(self) -> None:
        self.add("GET", "/app", "app")

    def create_pull(self, number: int = 7) -> None:
        self.add("POST", f"/repos/{REPOSITORY}/pulls", "pull-created", self._pull(number))

    def request_reviewers(self, number: int = 7) -> None:
        self.add(
            "POST",
            f"/repos/{REPOSITORY}/pulls/{number}/requested_reviewers",
            "pull-review-requested",
            self._pull(number, "pull-review-requested"),
        )

    def status(self, sha: str = "{sha}") -> None:
        self.add("POST", f"/repos/{REPOSITORY}/statuses/{sha}", "status-created")

    def reviews(self, number: int = 7, body: list[dict[str, Any]] | None = None) -> None:
        path = f"/repos/{REPOSITORY}/pulls/{number}/reviews"
        self.add("GET", path, "reviews", body, replace=True)

    def files(self, number: int = 7, paths: list[str] | None = None) -> None:
        """GET /repos/{repo}/pulls/{number}/files: the sample (the policy file), or `paths`."""
        _, _, body = sample("pull-files", self.api)
        if paths is not None:
            body = [{**body[0], "filename": p} for p in paths]
        self.add("GET", f"/repos/{REPOSITORY}/pulls/{number}/files", "pull-files", body,
                 replace=True)  # fmt: skip

    def team(self, slug: str) -> None:
        """acme/ops spans two pages (the next page by id, as GitHub links it); others one."""
        if slug == "ops":
            self.add("GET", "/orgs/acme/teams/ops/members", "team-members-page1")
            self.add("GET", "/organizations/9919/team/55/members", "team-members-page2")
        else:
            self.add("GET", f"/orgs/acme/teams/{slug}/members", f"team-members-{slug}")

    def comment(self, number: int = 7) -> None:
        self.add("POST", f"/repos/{REPOSITORY}/issues/{number}/comments", "comment-created")

    def commit_comment(self, sha: str = "{sha}") -> None:
        self.add("POST", f"/repos/{REPOSITORY}/commits/{sha}/comments", "commit-comment-created")

    def close(self, number: int = 7) -> None:
        self.add("PATCH", f"/repos/{REPOSITORY}/pulls/{number}", "pull-closed")

    def create_deployment(
        self, repository: str = SOURCE_REPOSITORY, deployment_id: int = DEPLOYMENT_ID,
        name: str = "deployment-created",
    ) -> None:  # fmt: skip
        """POST /repos/{repository}/deployments: 201 with deployment `deployment_id`, or the
        sample `name` as is (repository-not-found, deployment-ref-not-found)."""
        body = None
        if name == "deployment-created":
            body = self._deployment(name, repository, deployment_id)
        self.add("POST", f"/repos/{repository}/deployments", name, body)

    def list_deployments(self, repository: str = SOURCE_REPOSITORY, found: bool = True) -> None:
        """GET /repos/{repository}/deployments: two deployments, one of them Ritmo's
        dep-0123abcd4567ef89 (DEPLOYMENT_ID) when `found`, else neither is."""
        _, _, body = sample("deployments-list", self.api)
        if not found:
            body = [d for d in body if d["id"] != DEPLOYMENT_ID]
        self.add("GET", f"/repos/{repository}/deployments", "deployments-list", body)

    def environment_history(
        self, environment: str, history: list[tuple[int, str | None]],
        repository: str = SOURCE_REPOSITORY,
    ) -> None:  # fmt: skip
        """An environment's deployments, newest first, each with its latest status state
        (None: no status yet): GET .../deployments?environment=, GET .../{id}/statuses
        (newest first, as GitHub lists them) and POST .../{id}/statuses for each."""
        _, _, listed = sample("deployments-list", self.api)
        _, _, statuses = sample("deployment-statuses-list", self.api)
        deployments = []
        for deployment_id, state in history:
            deployment = json.loads(
                json.dumps(listed[1]).replace("/deployments/1879999001",
                                              f"/deployments/{deployment_id}")
            )  # fmt: skip
            deployment.update(id=deployment_id, environment=environment,
                              original_environment=environment,
                              production_environment=environment == "production")  # fmt: skip
            deployments.append(deployment)
            path = f"/repos/{repository}/deployments/{deployment_id}/statuses"
            latest = [{**statuses[0], "state": state, "environment": environment}]
            self.add("GET", path, "deployment-statuses-list", latest if state else [])
            self.add(
                "POST",
                path,
                "deployment-status-created",
                self._deployment("deployment-status-created", repository, deployment_id),
            )
        self.add("GET", f"/repos/{repository}/deployments", "deployments-list", deployments)

    def deployment_status(
        self, repository: str = SOURCE_REPOSITORY, deployment_id: int = DEPLOYMENT_ID,
        name: str = "deployment-status-created",
    ) -> None:  # fmt: skip
        """POST /repos/{repository}/deployments/{deployment_id}/statuses."""
        body = None
        if name == "deployment-status-created":
            body = self._deployment(name, repository, deployment_id)
        path = f"/repos/{repository}/deployments/{deployment_id}/statuses"
        self.add("POST", path, name, body)

    def opening(self, head: str = "{sha}", number: int = 7) -> None:
        """Everything opening a promotion pull request takes."""
        self.token()
        self.create_pull(number)
        self.request_reviewers(number)
        self.status(head)

    # -- reading what was sent -----------------------------------------------------
    def sent(self, method: str, path: str) -> list[Any]:
        """The JSON bodies sent to `path` (relative to the API base), in order."""
        want = urlsplit(f"{self.api}{path}").path
        return [
            json.loads(call.request.body) if call.request.body else None
            for call in self.rsps.calls
            if call.request.method == method and urlsplit(call.request.url).path == want
        ]

    def requests(self) -> list[tuple[str, str]]:
        return [(str(c.request.method), urlsplit(c.request.url).path) for c in self.rsps.calls]

    def _pull(self, number: int, name: str = "pull-created") -> Any:
        _, _, body = sample(name, self.api)
        text = json.dumps(body).replace("/pulls/7", f"/pulls/{number}")
        text = text.replace("/issues/7", f"/issues/{number}").replace("/pull/7", f"/pull/{number}")
        pull = json.loads(text)
        pull["number"] = number
        return pull

    def _deployment(self, name: str, repository: str, deployment_id: int) -> Any:
        _, _, body = sample(name, self.api)
        text = json.dumps(body).replace(f"/repos/{SOURCE_REPOSITORY}", f"/repos/{repository}")
        text = text.replace(f"/deployments/{DEPLOYMENT_ID}", f"/deployments/{deployment_id}")
        data = json.loads(text)
        if name == "deployment-created":
            data["id"] = deployment_id
        return data


def _with_port(url: str) -> str:
    """PyGithub always names the port (https://api.github.com:443/...); so must we."""
    parts = urlsplit(url)
    if parts.port is not None:
        return url
    port = 443 if parts.scheme == "https" else 80
    return parts._replace(netloc=f"{parts.hostname}:{port}").geturl()


def review(
    login: str, state: str, commit: str, submitted_at: str, *, bot: bool = False, rid: int = 90
) -> dict[str, Any]:
    """A review shaped like the first one in reviews.json."""
    _, _, recorded = sample("reviews")
    item: dict[str, Any] = copy.deepcopy(recorded[0])
    item.update(id=rid, state=state, commit_id=commit, submitted_at=submitted_at)
    item["user"].update(login=login, type="Bot" if bot else "User")
    return item


# PyGithub's pause between requests is for GitHub, not for `responses`.
UNPACED = Pacing(read=None, write=None)


def session(api: str = RECORDED_API, **options: Any) -> GitHubSession:
    return GitHubSession(
        app_id=APP_ID,
        private_key=PRIVATE_KEY,
        installation_id=INSTALLATION_ID,
        api_url=api,
        pacing=UNPACED,
        **options,
    )


def forge(api: str = RECORDED_API, **options: Any) -> GitHubForge:
    return GitHubForge(
        session(api), repository=REPOSITORY, default_branch="main", policy=policy, **options
    )


@contextmanager
def sandbox(api: str = RECORDED_API) -> Iterator[GitHubSandbox]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield GitHubSandbox(rsps, api)


def sandboxed_runtime(settings: Settings) -> Runtime:
    """A runtime with forge.kind github (`with_github`), unpaced for the sandbox."""
    return build_runtime(with_github(settings), pacing=UNPACED)


def with_github(settings: Settings) -> Settings:
    """`settings` with forge.kind github: the sandbox's app, installation and repository."""
    return settings.model_copy(
        update={
            "forge": ForgeSettings(
                kind="github",
                github=GitHubSettings(
                    app_id=APP_ID,
                    private_key_file=SAMPLES / "app-key.pem",
                    installation_id=INSTALLATION_ID,
                    repository=REPOSITORY,
                    webhook_secret=WEBHOOK_SECRET,
                ),
            )
        }
    )
