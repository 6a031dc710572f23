"""The GitHub App checks of `ritmo doctor`, as plain REST calls: GET /app (the App
authenticates), GET /repos/{o}/{r}/installation (it covers the repository, with every
permission), the default branch's rules and classic protection (Ritmo may push), and
GET /app/hook/config (the webhook). App-level calls carry the App's JWT; repository calls
an installation token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests
from github import Auth

from bot.config import ConfigError, Settings, missing_github
from bot.doctor.findings import Finding, fail, ok, one_line, skip
from bot.doctor.github_rules import (
    blocking_rulesets,
    classic_protection_problems,
    delivery_problem,
    hook_problems,
    ruleset_lets_app_push,
)
from bot.github_app.manifest import (
    PERMISSIONS,
    handled_events,
    missing,
    subscribed_events,
    web_url,
)

TIMEOUT = 15.0


class GitHubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status} {message}".strip())


class _Api:
    def __init__(self, api_url: str, app_id: int, private_key: str) -> None:
        self.base = api_url.rstrip("/")
        self._auth = Auth.AppAuth(app_id, private_key)
        self._session = requests.Session()
        self._session.headers.update({
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "ritmo-doctor",
        })  # fmt: skip

    def call(self, method: str, path: str, token: str | None = None) -> Any:
        """The JSON answer, or GitHubError; `token` None: as the App (a fresh JWT)."""
        auth = f"token {token}" if token else f"Bearer {self._auth.token}"
        try:
            response = self._session.request(
                method, self.base + path, headers={"Authorization": auth}, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise GitHubError(0, f"cannot reach {self.base}: {one_line(str(exc), 150)}") from None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except ValueError:
                message = ""
            raise GitHubError(response.status_code, message)
        return response.json()

    def close(self) -> None:
        self._session.close()


class GitHubChecks:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gh = settings.forge.github
        self.web = web_url(self.gh.api_url)
        self._api: _Api | None = None
        self._app: dict[str, Any] = {}
        self._installation: dict[str, Any] | None = None
        self._token: str | None = None

    def run(self) -> Iterator[Finding]:
        yield self.app()
        yield self.installation()
        yield self.branch_rules()
        yield self.webhook()

    # -- the App ---------------------------------------------------------------------
    def app(self) -> Finding:
        name = "github app"
        try:
            if self.gh.app_id is None:
                raise missing_github("app_id", "the GitHub App's id (its settings page, About)")
            key = self.gh.private_key_pem()
        except ConfigError as exc:
            return fail(name, str(exc))
        api = _Api(self.gh.api_url, self.gh.app_id, key)
        try:
            self._app = api.call("GET", "/app")
        except GitHubError as exc:
            api.close()
            fix = (
                "forge.github.app_id and the private key must be the same App's, and the "
                "machine's clock right (the JWT lives 10 minutes)"
                if exc.status == 401 else "check forge.github.api_url"
            )  # fmt: skip
            return fail(name, f"GET /app: {exc}; {fix}")
        self._api = api
        return ok(name, f"{self._app.get('slug')} (id {self._app.get('id')}) authenticates")

    def installation(self) -> Finding:
        name = "github installation"
        if self._api is None:
            return skip(name, "needs the App")
        repository = self.gh.repository
        if repository is None:
            fix = "owner/name of the manifests repository"
            return fail(name, str(missing_github("repository", fix)))
        try:
            found = self._api.call("GET", f"/repos/{repository}/installation")
        except GitHubError as exc:
            if exc.status == 404:
                return fail(
                    name,
                    f"the App is not installed on {repository}: install it from "
                    f"{self._app.get('html_url')}/installations/new and choose {repository}",
                )
            return fail(name, f"GET /repos/{repository}/installation: {exc}")
        if self.gh.installation_id != found.get("id"):
            return fail(
                name,
                f"{repository} is in installation {found.get('id')}, not "
                f"{self.gh.installation_id}: set forge.github.installation_id "
                f"(RITMO_FORGE__GITHUB__INSTALLATION_ID) to {found.get('id')}",
            )
        if found.get("suspended_at"):
            return fail(
                name, f"the installation is suspended; unsuspend it at {found.get('html_url')}"
            )
        self._installation = found
        lacking = missing(found.get("permissions") or {}, PERMISSIONS)
        if lacking:
            wanted = ", ".join(f"{p.name}: {p.access}" for p in lacking)
            app_lacks = missing(self._app.get("permissions") or {}, tuple(lacking))
            where = (
                f"give the App {wanted} on {self.web}/settings/apps/{self._app.get('slug')}"
                "/permissions (`ritmo github-app permissions` says why), then accept them on "
                f"the installation ({found.get('html_url')})"
                if app_lacks
                else f"accept the App's new permissions on {found.get('html_url')}"
            )  # fmt: skip
            return fail(name, f"the installation lacks {wanted}; {where}")
        return ok(name, f"{found.get('id')} covers {repository} with every permission Ritmo needs")

    # -- the default branch's rules ----------------------------------------------------
    def branch_rules(self) -> Finding:
        name = "branch rules"
        if self._api is None or self._installation is None:
            return skip(name, "needs the installation")
        repository = self.gh.repository
        branch = self.settings.manifests.branch
        app_id = int(self._app.get("id") or 0)
        slug = str(self._app.get("slug"))
        problems: list[str] = []
        try:
            token = self._installation_token()
            rules = self._api.call("GET", f"/repos/{repository}/rules/branches/{quote(branch)}",
                                   token)  # fmt: skip
            for ruleset_id, needs in sorted(blocking_rulesets(rules).items()):
                try:
                    ruleset = self._api.call("GET", f"/repos/{repository}/rulesets/{ruleset_id}",
                                             token)  # fmt: skip
                except GitHubError as exc:
                    problems.append(
                        f"ruleset {ruleset_id} requires {', '.join(needs)} and cannot be read "
                        f"({exc}): make sure the App {slug} is on its bypass list, Always allow"
                    )
                    continue
                if not ruleset_lets_app_push(ruleset, app_id):
                    problems.append(
                        f'ruleset "{ruleset.get("name")}" ({ruleset_id}) requires '
                        f"{', '.join(needs)} for {branch}: add the App {slug} to its bypass "
                        f"list, Always allow ({self.web}/{repository}/settings/rules/{ruleset_id})"
                    )
            problems += self._classic(token, repository or "", branch, slug)
        except GitHubError as exc:
            return fail(name, f"cannot read the rules of {branch}: {exc}")
        if problems:
            return fail(name, "; ".join(problems))
        return ok(name, f"{slug} may push signed commits to {branch}")

    def _classic(self, token: str, repository: str, branch: str, slug: str) -> list[str]:
        found = self._api_call("GET", f"/repos/{repository}/branches/{quote(branch)}", token)
        if not found.get("protected"):
            return []
        try:
            protection = self._api_call(
                "GET", f"/repos/{repository}/branches/{quote(branch)}/protection", token
            )
        except GitHubError as exc:
            if exc.status == 404:
                return []  # "Branch not protected": rulesets only
            return [
                f"classic protection on {branch} cannot be read ({exc}; it takes "
                "Administration: read, which Ritmo does not otherwise need): check that it "
                f"requires no pull request, signatures or status checks of the App {slug}, "
                "or replace it with a ruleset that lists the App on its bypass list"
            ]
        return [
            f"classic protection on {branch} {p}"
            for p in classic_protection_problems(protection, slug)
        ]

    # -- the webhook -------------------------------------------------------------------
    def webhook(self) -> Finding:
        name = "github webhook"
        if self._api is None:
            return skip(name, "needs the App")
        try:
            config = self._api.call("GET", "/app/hook/config")
        except GitHubError as exc:
            return fail(name, f"GET /app/hook/config: {exc}")
        where = f"{self.web}/settings/apps/{self._app.get('slug')}"
        needed = subscribed_events(handled_events())
        problems = hook_problems(config, self._app.get("events") or [], needed)
        try:
            deliveries = self._api.call("GET", "/app/hook/deliveries?per_page=30")
        except GitHubError:
            deliveries = []  # older GitHub Enterprise Servers: no delivery log to read
        problem = delivery_problem(deliveries, self.gh.installation_id)
        if problem is not None:
            problems.append(problem)
        if not self.gh.webhook_secret:
            problems.append(
                "forge.github.webhook_secret (RITMO_FORGE__GITHUB__WEBHOOK_SECRET) is not set"
            )
        if problems:
            return fail(name, "; ".join(problems) + f" ({where})")
        return ok(name, f"{config.get('url')}, secret set, events {', '.join(needed)}")

    # -- helpers -----------------------------------------------------------------------
    def _api_call(self, method: str, path: str, token: str | None = None) -> Any:
        assert self._api is not None
        return self._api.call(method, path, token)

    def _installation_token(self) -> str:
        if self._token is None:
            answer = self._api_call(
                "POST", f"/app/installations/{self.gh.installation_id}/access_tokens"
            )
            self._token = str(answer["token"])
        return self._token

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
