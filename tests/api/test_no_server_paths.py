"""No answer shows where the server keeps its files: git's reasons reach a response
without the remote's path or URL, or the mirror's (the log keeps git's whole message)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.config import Settings
from bot.manifests.remote import public_reason
from tests.helpers import artifact_body, bearer

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "argocd"
ARGOCD_TOKEN = "argocd-shared-token-0123456789"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"argocd_token": ARGOCD_TOKEN}}


def _no_paths(text: str, *paths: Path) -> None:
    for path in paths:
        assert str(path) not in text, text
    assert "/tmp/" not in text and "file://" not in text, text


def test_git_reasons_lose_their_paths() -> None:
    said = (
        "fatal: '/srv/ritmo/remote.git' does not appear to be a git repository\n"
        "fatal: Could not read from remote repository.\n"
    )
    assert public_reason(said) == "fatal: '<path>' does not appear to be a git repository"
    url = "https://git.example.com/acme/manifests.git"
    assert public_reason(f"fatal: unable to access '{url}/': Could not resolve host", url) == (
        "fatal: unable to access '<manifests remote>/': Could not resolve host"
    )
    lock = "error: cannot lock ref 'refs/heads/main': /var/lib/ritmo/m/refs/heads/main.lock"
    assert public_reason(lock) == "error: cannot lock ref 'refs/heads/main': <path>"
    assert public_reason("fatal: bad revision 'origin/main~3'") == (
        "fatal: bad revision 'origin/main~3'"
    )


def test_an_unknown_revision_is_refused_without_the_remote_path(
    client: FlaskClient, tokens: dict[str, str], remote: Path, settings: Settings
) -> None:
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert resp.status_code == 201, resp.get_json()
    body = json.loads((SAMPLES / "on-deployed.json").read_text())
    body.update(app="web-dev", revision="f" * 40)
    resp = client.post("/webhooks/argocd", json=body, headers={"X-Ritmo-Token": ARGOCD_TOKEN})
    text = resp.get_data(as_text=True)
    assert f"{'f' * 40} is not a commit of the manifests repository" in text, text
    _no_paths(text, remote, settings.data_dir)


def test_an_unreachable_remote_is_a_503_without_its_path(
    client: FlaskClient, tokens: dict[str, str], remote: Path, settings: Settings
) -> None:
    remote.rename(remote.with_name("moved.git"))
    resp = client.get("/api/v1/audit", headers=bearer(tokens["reader"]))
    assert resp.status_code == 503
    error = resp.get_json()["error"]
    assert error.startswith(
        "the manifests remote is unavailable: git fetch from the manifests remote failed: "
        "fatal: '<manifests remote>' does not appear to be a git repository"
    )
    _no_paths(error, remote, settings.data_dir)
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert resp.status_code == 503, resp.get_json()
    _no_paths(resp.get_data(as_text=True), remote, settings.data_dir)


def test_a_file_system_error_is_answered_by_its_kind_only() -> None:
    from bot.api.errors import reason_of
    from bot.manifests.remote import GitFailed

    gone = FileNotFoundError(2, "No such file or directory", "/srv/ritmo/data/index.db")
    assert reason_of(gone) == "FileNotFoundError (the server log has the details)"
    said = GitFailed("git log failed: fatal: bad revision 'x'", "git log failed: ...")
    assert reason_of(said) == "git log failed: fatal: bad revision 'x'"
    assert reason_of(RuntimeError("no policy read yet")) == "no policy read yet"
