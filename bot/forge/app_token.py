"""The GitHub App's installation token as git's credential for the manifests remote.

With the GitHub forge, Ritmo pushes as the App unless manifests.token is set: one
credential to set up, and the actor on the ruleset's bypass list is the one that pushes.
Installation tokens expire after an hour, so the mirror asks for the token at each git
invocation and this source mints a new one shortly before the old one expires.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests
from github import Auth, GithubException, GithubIntegration, GithubRetry
from github.InstallationAuthorization import InstallationAuthorization

from bot.config import Settings

# A push is two HTTP requests and may send a large pack: never start one on a token
# that could expire before it is done.
REFRESH_MARGIN = timedelta(minutes=5)


class InstallationTokens:
    """A callable returning a valid installation token, minted again near its expiry."""

    def __init__(
        self,
        mint: Callable[[], InstallationAuthorization],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._mint = mint
        self._now = now
        self._current: InstallationAuthorization | None = None
        self._lock = threading.Lock()  # the writer pushes while other threads fetch

    def __call__(self) -> str:
        with self._lock:
            current = self._current
            if current is None or current.expires_at - REFRESH_MARGIN <= self._now():
                try:
                    current = self._current = self._mint()
                except GithubException as exc:
                    # OSError: the mirror reports it as it does a remote that is down.
                    raise OSError(
                        f"cannot get the GitHub App's installation token (HTTP {exc.status}); "
                        "check forge.github.app_id, installation_id and the private key"
                    ) from None
                except requests.RequestException as exc:
                    raise OSError(
                        f"cannot get the GitHub App's installation token ({type(exc).__name__})"
                    ) from None
            return str(current.token)


def app_push_token(settings: Settings) -> Callable[[], str] | None:
    """The App's token source for git, or None when git needs no App credential: another
    forge, manifests.token set (it wins), or a remote that is not https (ssh uses a key)."""
    if (
        settings.forge.kind != "github"
        or settings.manifests.token
        or not settings.remote_url.startswith("https://")
    ):
        return None
    gh = settings.forge.github
    app_id, key, installation_id = gh.app()
    integration = GithubIntegration(
        auth=Auth.AppAuth(app_id, key),
        base_url=gh.api_url.rstrip("/"),
        timeout=15,
        retry=GithubRetry(total=2, backoff_factor=0.5),  # a push waits on this
    )
    return InstallationTokens(lambda: integration.get_access_token(installation_id))
