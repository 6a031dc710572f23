"""Every credential header is compared as bytes: whatever a client sends in it, a wrong
credential is a 401, never a 5xx (a non-ASCII X-Hub-Signature-256 used to raise inside
hmac.compare_digest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.app import create_app
from bot.config import Settings
from bot.runtime import build_runtime
from tests.forge.github_sandbox import with_github
from tests.helpers import kill_gpg_agent


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "cd": {"argocd_token": "argocd-token-0123456789", "flux_secret": "flux-secret-0123456789"}
    }


@pytest.fixture
def github_client(settings: Settings) -> Iterator[FlaskClient]:
    """The GitHub webhook needs forge.kind github (nothing here reaches GitHub)."""
    runtime = build_runtime(with_github(settings))
    yield create_app(runtime.settings, runtime).test_client()
    runtime.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


# What an HTTP header can carry as text: latin-1 without control characters.
HEADER_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)

ENDPOINTS = [
    (
        "/webhooks/github",
        "X-Hub-Signature-256",
        {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d"},
    ),
    ("/webhooks/argocd", "X-Ritmo-Token", {}),
    ("/webhooks/flux", "X-Signature", {}),
    ("/api/v1/artifacts", "Authorization", {}),
]


@pytest.mark.parametrize(("path", "header", "extra"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_any_credential_is_401_never_5xx(
    request: pytest.FixtureRequest, path: str, header: str, extra: dict[str, str]
) -> None:
    github = path == "/webhooks/github"
    client: FlaskClient = request.getfixturevalue("github_client" if github else "client")

    @hypothesis_settings(
        max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(value=HEADER_VALUES)
    @example(value="sha256=" + "é" * 64)
    @example(value="Bearer ritmo_é")
    @example(value="sha256=" + "0" * 64)
    def check(value: str) -> None:
        resp = client.post(
            path, data=b"{}", headers={header: value, "Content-Type": "application/json", **extra}
        )
        assert resp.status_code == 401, (value, resp.status_code, resp.get_data(as_text=True))

    check()
