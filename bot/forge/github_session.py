"""GitHub over HTTP as the App: authentication, retries, pacing, and a count of every request.

PyGithub signs an RS256 JWT with the app's key, exchanges it for an installation token,
caches the token and refreshes it before it expires. Every HTTP request is counted per
operation (`GitHubSession.calls`): the installation's rate limit (5,000 requests an hour)
is a budget, see DESIGN.md "Scale".
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.InstallationAuthorization import InstallationAuthorization
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

STATUS_LIMIT = 140  # GitHub truncates nothing: a longer description is a 422
PER_PAGE = 100  # the most GitHub serves per page: fewer requests for reviews and members


@dataclass(frozen=True)
class Pacing:
    """PyGithub's pause between requests, in seconds (None: no pause). GitHub asks for a
    second between mutating requests, or it answers with secondary rate limits."""

    read: float | None = 0.25
    write: float | None = 1.0


PACING = Pacing()

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
    exchange goes through the session's own app client (JWT auth, counted there), so one
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


class GitHubSession:
    """The App's two clients: `app` (JWT) and `github` (installation token, lazy)."""

    def __init__(
        self,
        *,
        app_id: int,
        private_key: str,
        installation_id: int,
        api_url: str = "https://api.github.com",
        pacing: Pacing = PACING,
        retries: int = 5,
        secondary_rate_wait: float = 60,
        max_rate_limit_wait: float = 300,
        timeout: int = 15,
    ) -> None:
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        # Told each call's operation as it happens: metrics shared by worker processes.
        self.on_call: Callable[[str], None] = lambda operation: None
        retry = _CountedRetry(
            self.count,
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
            "seconds_between_requests": pacing.read,
            "seconds_between_writes": pacing.write,
        }
        app_auth = _CountedAppAuth(app_id, private_key, self.count)
        self.app = GithubIntegration(auth=app_auth, **options)
        installation = _CountedInstallationAuth(
            app_auth, installation_id, self.count,
            lambda: self.app.get_access_token(installation_id),
        )  # fmt: skip
        # lazy: objects are URLs until read, so writing to a PR costs no GET of the PR first.
        self.github = Github(auth=installation, lazy=True, **options)
        self._installation = installation

    def installation_token(self) -> str:
        """The installation token (PyGithub refreshes it), for the outbox's dispatches."""
        self.count()
        return str(self._installation.token)

    def close(self) -> None:
        self.github.close()
        self.app.close()

    def rate_limit(self) -> tuple[int, int] | None:
        """(remaining, limit) as the last installation response said; None before one.
        Never asks GitHub (Github.rate_limiting would, when nothing is known yet)."""
        remaining, limit = self.github.requester.rate_limiting
        return None if limit < 0 else (remaining, limit)

    def request(self, method: str, path: str, **options: Any) -> Any:
        """One raw call with the installation token, for what PyGithub does not wrap."""
        _, data = self.github.requester.requestJsonAndCheck(method, path, **options)
        return data

    def count(self) -> None:
        operation = _OPERATION.get()
        with self._calls_lock:
            self.calls[operation] += 1
        self.on_call(operation)

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Counts the calls made inside under `name`."""
        token = _OPERATION.set(name)
        try:
            yield
        finally:
            _OPERATION.reset(token)


def clip(text: str) -> str:
    """One line, at most STATUS_LIMIT characters: a status or deployment description."""
    text = " ".join(text.split())
    return text if len(text) <= STATUS_LIMIT else text[: STATUS_LIMIT - 1] + "…"


def message(exc: GithubException) -> str:
    """GitHub's own words for a refusal, if it gave any."""
    data = exc.data
    return str(data.get("message", "")) if isinstance(data, dict) else ""
