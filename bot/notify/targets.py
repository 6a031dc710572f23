"""Targets: a rendered integration -> one HTTP request, sent with `requests`, classified.

One class per kind (`SlackHttp`, `WebhookHttp`, `GitHubWorkflowHttp`,
`RepositoryDispatchHttp`, `SpinnakerHttp`) builds the request from the rendered target
(pure, given the secrets); `Sender` sends it, and bot.notify.outcomes `classify` says what
the response means (a connection error or a timeout: retry later; a URL that cannot be
sent to, a secret that is not set: dead at once, retrying cannot help).

update_gitops_repo is no single request: `Sender` hands it to a `GitopsUpdater`
(bot.notify.gitops), with the token below, when the outbox has one; else it is dead.

Every request carries `User-Agent: ritmo` and `Idempotency-Key: <key>`, the same key
on every attempt of one delivery, so a receiver can drop a repeat.

Credentials:
- slack: the secret is the incoming-webhook URL itself.
- webhook: `Authorization: Bearer <secret>` when a secret is named.
- github_workflow, repository_dispatch, update_gitops_repo: `Authorization: Bearer
  <token>`, the named secret or else Ritmo's GitHub App installation token
  (`github_token`); update_gitops_repo also hands it to git for https URLs.
- spinnaker: the secret, when named, in the header `secret_header` (default
  X-Ritmo-Token); Gate itself does not check it, a proxy in front of Gate may. Behind a
  bearer-token proxy set `secret_header: Authorization` and the secret to `Bearer ...`.
Secrets never appear in an error message: they are redacted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

import requests

from bot.notify.outcomes import Outcome, classify
from bot.policy.integration_fields import REPOSITORY, WORKFLOW, secret_env_name

if TYPE_CHECKING:
    from bot.notify.gitops import GitopsUpdater

USER_AGENT = "ritmo"
GITHUB_API = "https://api.github.com"
GITHUB_API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: Any
    redact: tuple[str, ...] = field(default=(), repr=False)  # never shown in errors

    def hide(self, text: str) -> str:
        for secret in sorted(self.redact, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class GitHubAccess:
    """How update_gitops_repo reaches GitHub's REST API for one delivery."""

    api_url: str = GITHUB_API
    token: str | None = None  # the named secret or the installation token; None: none
    session: Callable[[], requests.Session] = requests.Session
    timeout: float = 10.0
    clock: Callable[[], float] = time.time


class MissingSecret(Exception):
    """The policy names a secret the settings do not hold."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"secret {name!r} is not set; set {secret_env_name(name)} "
            "(then retry the dead letter: ritmo outbox retry ID)"
        )


class Unsendable(Exception):
    """The request cannot be built, and trying again will not change that."""


class Unavailable(Exception):
    """Something the request needs (a token) cannot be had now; try again later."""


def find_secret(secrets: Mapping[str, str], name: str) -> str | None:
    """The setting for a secret name: case-insensitive, '-' and '_' alike."""

    def norm(key: str) -> str:
        return key.lower().replace("-", "_")

    want = norm(name)
    return next((v for k, v in secrets.items() if norm(k) == want), None)


def _base_headers(key: str) -> dict[str, str]:
    return {"User-Agent": USER_AGENT, "Idempotency-Key": key}


class HttpTarget(Protocol):
    """Turns a rendered target (and the event document) into one HTTP request."""

    kind: ClassVar[str]

    def request(
        self, target: Mapping[str, Any], event: Mapping[str, Any], key: str
    ) -> HttpRequest: ...


class _Secrets:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = secrets

    def secret(self, name: str) -> str:
        value = find_secret(self._secrets, name)
        if not value:
            raise MissingSecret(name)
        return value

    def optional(self, name: object) -> str | None:
        return self.secret(name) if isinstance(name, str) else None


class SlackHttp(_Secrets):
    kind: ClassVar[str] = "slack"

    def request(self, target: Mapping[str, Any], event: Mapping[str, Any], key: str) -> HttpRequest:
        url = self.secret(target["secret"])
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise Unsendable(
                f"secret {target['secret']!r} is not a URL; set {secret_env_name(target['secret'])}"
                " to the Slack incoming-webhook URL"
            )
        hidden = (url, parts.path + (f"?{parts.query}" if parts.query else ""))
        return HttpRequest("POST", url, _base_headers(key), {"text": target["text"]}, hidden)


class WebhookHttp(_Secrets):
    kind: ClassVar[str] = "webhook"

    def request(self, target: Mapping[str, Any], event: Mapping[str, Any], key: str) -> HttpRequest:
        headers = {**target.get("headers", {}), **_base_headers(key)}
        secret = self.optional(target.get("secret"))
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        body = target.get("body")
        return HttpRequest(
            target.get("method", "POST"),
            target["url"],
            headers,
            dict(event) if body is None else body,
            (secret,) if secret else (),
        )


class _GitHub(_Secrets):
    def __init__(
        self,
        secrets: Mapping[str, str],
        github_token: Callable[[], str] | None = None,
        api_url: str = GITHUB_API,
    ) -> None:
        super().__init__(secrets)
        self._github_token = github_token
        self._api = api_url.rstrip("/")

    def _token(self, target: Mapping[str, Any]) -> str:
        token = self.token_if_any(target)
        if token is None:
            raise Unsendable(
                "no GitHub token: name one with `secret: NAME` (RITMO_NOTIFY__SECRETS__NAME) "
                "or run Ritmo as a GitHub App"
            )
        return token

    def token_if_any(self, target: Mapping[str, Any]) -> str | None:
        """The named secret, else the installation token, else None (no GitHub App)."""
        named = self.optional(target.get("secret"))
        if named is not None:
            return named
        if self._github_token is None:
            return None
        try:
            return self._github_token()
        except Exception as exc:
            raise Unavailable(f"cannot get the GitHub App installation token: {exc}") from exc

    def _post(self, path: str, body: dict[str, Any], token: str, key: str) -> HttpRequest:
        headers = {
            **_base_headers(key),
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "Authorization": f"Bearer {token}",
        }
        return HttpRequest("POST", self._api + path, headers, body, (token,))

    @staticmethod
    def _repo(target: Mapping[str, Any]) -> str:
        """The API path of the rendered repository; a CI value that made it something
        else than owner/name (`..`, more slashes) is refused, not sent."""
        repository = str(target["repository"])
        owner, _, name = repository.partition("/")
        if not REPOSITORY.match(repository) or name in (".", ".."):
            raise Unsendable(f"refused: the rendered repository {repository!r} is not owner/name")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class GitHubWorkflowHttp(_GitHub):
    """POST {api}/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches -> 204."""

    kind: ClassVar[str] = "github_workflow"

    def request(self, target: Mapping[str, Any], event: Mapping[str, Any], key: str) -> HttpRequest:
        token = self._token(target)
        if not WORKFLOW.match(str(target["workflow"])):
            raise Unsendable(
                f"refused: the rendered workflow {target['workflow']!r} is not a file name "
                "or numeric id"
            )
        workflow = quote(str(target["workflow"]), safe="")
        path = f"{self._repo(target)}/actions/workflows/{workflow}/dispatches"
        body = {"ref": target.get("ref", "main"), "inputs": target.get("inputs", {})}
        return self._post(path, body, token, key)


class RepositoryDispatchHttp(_GitHub):
    """POST {api}/repos/{owner}/{repo}/dispatches -> 204."""

    kind: ClassVar[str] = "repository_dispatch"

    def request(self, target: Mapping[str, Any], event: Mapping[str, Any], key: str) -> HttpRequest:
        token = self._token(target)
        body = {
            "event_type": target["event_type"],
            "client_payload": target.get("client_payload", {}),
        }
        return self._post(f"{self._repo(target)}/dispatches", body, token, key)


class SpinnakerHttp(_Secrets):
    """POST {url}: a Gate webhook trigger, {"parameters", "artifacts", "ritmo"}."""

    kind: ClassVar[str] = "spinnaker"

    def request(self, target: Mapping[str, Any], event: Mapping[str, Any], key: str) -> HttpRequest:
        headers = _base_headers(key)
        secret = self.optional(target.get("secret"))
        if secret is not None:
            headers[str(target.get("secret_header") or "X-Ritmo-Token")] = secret
        body = {
            "parameters": target.get("parameters", {}),
            "artifacts": list(target.get("artifacts", [])),
            "ritmo": dict(event),
        }
        return HttpRequest("POST", target["url"], headers, body, (secret,) if secret else ())


class Sender:
    """Builds and sends one delivery's request; never raises for what the target does."""

    def __init__(
        self,
        secrets: Mapping[str, str],
        timeout: float,
        *,
        github_token: Callable[[], str] | None = None,
        api_url: str = GITHUB_API,
        session: Callable[[], requests.Session] = requests.Session,
        clock: Callable[[], float] = time.time,
        gitops: GitopsUpdater | None = None,
    ) -> None:
        self._timeout = timeout
        self._session = session
        self._clock = clock
        self._api_url = api_url
        self._gitops = gitops
        self._github = _GitHub(secrets, github_token, api_url)
        self.targets: dict[str, HttpTarget] = {
            "slack": SlackHttp(secrets),
            "webhook": WebhookHttp(secrets),
            "github_workflow": GitHubWorkflowHttp(secrets, github_token, api_url),
            "repository_dispatch": RepositoryDispatchHttp(secrets, github_token, api_url),
            "spinnaker": SpinnakerHttp(secrets),
        }

    def build(
        self, kind: str, target: Mapping[str, Any], event: Mapping[str, Any], key: str
    ) -> HttpRequest:
        """The request; raises MissingSecret, Unsendable or Unavailable."""
        builder = self.targets.get(kind)
        if builder is None:
            raise Unsendable(f"unknown target kind {kind!r}")
        return builder.request(target, event, key)

    def send(
        self, kind: str, target: Mapping[str, Any], event: Mapping[str, Any], key: str
    ) -> Outcome:
        if kind == "update_gitops_repo":
            return self._update_gitops_repo(target, event, key)
        try:
            req = self.build(kind, target, event, key)
        except (MissingSecret, Unsendable) as exc:
            return Outcome("dead", str(exc))
        except Unavailable as exc:
            return Outcome("retry", str(exc))
        try:
            with self._session() as session:
                resp = session.request(
                    req.method,
                    req.url,
                    headers=req.headers,
                    json=req.json,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
                with resp:
                    outcome = classify(resp.status_code, resp.headers, resp.text, self._clock())
        except (requests.ConnectionError, requests.Timeout) as exc:
            return Outcome("retry", req.hide(f"{type(exc).__name__}: {exc}"))
        except requests.RequestException as exc:  # an invalid URL, too many redirects, ...
            return Outcome("dead", req.hide(f"{type(exc).__name__}: {exc}"))
        return Outcome(outcome.status, req.hide(outcome.detail), outcome.retry_after)

    def _update_gitops_repo(
        self, target: Mapping[str, Any], event: Mapping[str, Any], key: str
    ) -> Outcome:
        if self._gitops is None:
            return Outcome(
                "dead",
                "update_gitops_repo needs the GitOps updater (Ritmo's signing key and a "
                "data directory for the mirrors); this outbox was built without one",
            )
        try:
            token = self._github.token_if_any(target)
        except MissingSecret as exc:
            return Outcome("dead", str(exc))
        except Unavailable as exc:
            return Outcome("retry", str(exc))
        access = GitHubAccess(self._api_url, token, self._session, self._timeout, self._clock)
        return self._gitops.update(target, event, key, access)
