"""With the GitHub forge and no manifests.token, the mirror fetches and pushes as the App.

Against a real smart-HTTP git server over TLS that wants GitHub's `x-access-token` basic
auth, and GitHub's token endpoint over `responses`.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from bot.app import create_app
from bot.auth import Scope
from bot.config import ConfigError, Settings, load_settings
from bot.manifests.mirror import Mirror
from bot.manifests.remote import PushStatus
from bot.runtime import build_runtime, open_mirror
from tests.conftest import make_remote
from tests.forge.github_sandbox import (
    APP_ID,
    INSTALLATION_ID,
    REPOSITORY,
    SAMPLES,
    WEBHOOK_SECRET,
    GitHubSandbox,
    _with_port,
    sample,
    with_github,
)
from tests.git_https import GitHttpsServer
from tests.helpers import (
    artifact_body,
    bearer,
    commits_since,
    kill_gpg_agent,
    remote_refs,
    verify_commit,
)

FIRST = sample("installation-token")[2]["token"]
SECOND = "ghs_2nd7e42F292c6912E7710c838347Ae178B4b"
STATIC = "ghp_static0123456789abcdefghijklmnopqrst"
EXCHANGES = f"/app/installations/{INSTALLATION_ID}/access_tokens"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHttpsServer]:
    root = tmp_path / "served"
    root.mkdir()
    make_remote(root)
    with GitHttpsServer(root, tmp_path) as server:
        monkeypatch.setenv("GIT_SSL_CAINFO", str(server.ca_file))
        yield server


def _settings(tmp_path: Path, url: str, **manifests: Any) -> Settings:
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        manifests={"url": url, **manifests},
        forge={
            "kind": "github",
            "github": {
                "app_id": APP_ID,
                "private_key_file": str(SAMPLES / "app-key.pem"),
                "installation_id": INSTALLATION_ID,
                "repository": REPOSITORY,
                "webhook_secret": WEBHOOK_SECRET,
            },
        },
    )


def _token(gh: GitHubSandbox, token: str, expires: datetime) -> None:
    """One more POST /app/installations/{id}/access_tokens answer (they come in order)."""
    status, headers, body = sample("installation-token")
    body.update(token=token, expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    gh.rsps.add("POST", _with_port(f"{gh.api}{EXCHANGES}"), json=body, status=status, headers={
        k: v for k, v in headers.items() if k.lower() != "content-type"})  # fmt: skip


def _commit(mirror: Mirror, parent: str, message: str) -> str:
    tree = mirror.tree_of(parent)
    data = (
        f"tree {tree}\nparent {parent}\n"
        "author Ritmo <ritmo@example.com> 1767225600 +0000\n"
        f"committer Ritmo <ritmo@example.com> 1767225600 +0000\n\n{message}\n"
    )
    sha = mirror.write("commit", data.encode())
    mirror.flush()
    return sha


def _bare(served: GitHttpsServer) -> Path:
    return served.root / "remote.git"


class TestPushAsTheApp:
    def test_push_uses_the_installation_token(
        self, tmp_path: Path, served: GitHttpsServer, gh: GitHubSandbox
    ) -> None:
        _token(gh, FIRST, datetime.now(UTC) + timedelta(hours=1))
        served.accepted = {FIRST}
        mirror = open_mirror(_settings(tmp_path, served.url("remote.git")))
        mirror.check_reachable()
        tip = mirror.fetch()
        assert tip is not None
        sha = _commit(mirror, tip, "Promote web 1.2.3 to dev")
        assert mirror.push(sha).status is PushStatus.PUSHED
        assert remote_refs(_bare(served))["refs/heads/main"] == sha
        assert set(served.seen) == {FIRST}  # every request carried the App's token
        # One token for the ls-remote, the fetch and the push: it is reused while valid.
        assert len(gh.sent("POST", EXCHANGES)) == 1

    def test_expiring_token_is_replaced_before_the_next_push(
        self, tmp_path: Path, served: GitHttpsServer, gh: GitHubSandbox
    ) -> None:
        issued = datetime.now(UTC)
        _token(gh, FIRST, issued + timedelta(hours=1))
        _token(gh, SECOND, issued + timedelta(hours=2))
        served.accepted = {FIRST}
        mirror = open_mirror(_settings(tmp_path, served.url("remote.git")))
        tip = mirror.fetch()
        assert tip is not None
        first = _commit(mirror, tip, "first")
        assert mirror.push(first).status is PushStatus.PUSHED

        served.accepted = {SECOND}  # GitHub no longer takes the expired one

        class Later(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return issued + timedelta(minutes=57)  # 3 minutes left on FIRST

        second = _commit(mirror, first, "second")
        with mock.patch("bot.forge.app_token.datetime", Later):
            assert mirror.push(second).status is PushStatus.PUSHED
        assert remote_refs(_bare(served))["refs/heads/main"] == second
        assert served.seen[-1] == SECOND
        assert len(gh.sent("POST", EXCHANGES)) == 2

    def test_manifests_token_wins_over_the_app(
        self, tmp_path: Path, served: GitHttpsServer, gh: GitHubSandbox
    ) -> None:
        served.accepted = {STATIC}
        mirror = open_mirror(_settings(tmp_path, served.url("remote.git"), token=STATIC))
        tip = mirror.fetch()
        assert tip is not None
        sha = _commit(mirror, tip, "Promote web 1.2.3 to dev")
        assert mirror.push(sha).status is PushStatus.PUSHED
        assert remote_refs(_bare(served))["refs/heads/main"] == sha
        assert set(served.seen) == {STATIC}
        assert len(gh.rsps.calls) == 0  # no installation token was minted

    def test_token_is_nowhere_on_disk_nor_in_logs(
        self,
        tmp_path: Path,
        served: GitHttpsServer,
        gh: GitHubSandbox,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)  # PyGithub's own "github" logger stays at INFO
        _token(gh, FIRST, datetime.now(UTC) + timedelta(hours=1))
        served.accepted = {FIRST}
        settings = _settings(tmp_path, served.url("remote.git"))
        mirror = open_mirror(settings)
        tip = mirror.fetch()
        assert tip is not None
        assert mirror.push(_commit(mirror, tip, "x")).status is PushStatus.PUSHED
        remotes = subprocess.run(
            ["git", "remote", "-v"], cwd=mirror.path, capture_output=True, text=True, check=True
        ).stdout
        assert served.url("remote.git") in remotes
        written = [p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file()]
        assert "Popen(['git'" in caplog.text  # GitPython logs its git command lines
        for text in [remotes, caplog.text, repr(mirror.__dict__)]:
            assert FIRST not in text
        assert not [blob for blob in written if FIRST.encode() in blob]


class TestWithoutAToken:
    def test_reading_objects_does_not_ask_for_a_token(self, tmp_path: Path) -> None:
        asked: list[bool] = []

        def provider() -> str:
            asked.append(True)
            raise OSError("GitHub is down")

        mirror = Mirror(tmp_path / "m", "https://127.0.0.1:9/acme/m.git", "main", provider)
        assert mirror.tip() is None
        assert asked == []

    def test_refused_app_token_names_the_installation(
        self, tmp_path: Path, served: GitHttpsServer, gh: GitHubSandbox
    ) -> None:
        _token(gh, FIRST, datetime.now(UTC) + timedelta(hours=1))
        served.accepted = set()  # e.g. the installation does not cover this repository
        mirror = open_mirror(_settings(tmp_path, served.url("remote.git")))
        with pytest.raises(ConfigError, match="GitHub App's installation") as caught:
            mirror.check_reachable()
        assert served.seen == [FIRST]
        assert FIRST not in str(caught.value)

    def test_no_token_fails_the_push_with_the_reason(
        self, tmp_path: Path, served: GitHttpsServer, gh: GitHubSandbox
    ) -> None:
        gh.add("POST", EXCHANGES, "repository-not-found", status=404)
        mirror = open_mirror(_settings(tmp_path, served.url("remote.git")))
        with pytest.raises(OSError, match="installation token \\(HTTP 404\\)"):
            mirror.fetch()
        result = mirror.push("0" * 40)
        assert result.status is PushStatus.FAILED
        assert "installation token" in result.detail
        assert served.seen == []  # git never ran without its credential

    def test_ssh_and_local_remotes_need_no_app_token(self, tmp_path: Path) -> None:
        from bot.forge.app_token import app_push_token

        for url in ("git@github.com:acme/manifests.git", str(tmp_path / "m.git")):
            assert app_push_token(_settings(tmp_path, url)) is None


class TestRitmoPushesAsTheApp:
    def test_start_and_register_push_signed_commits_as_the_app(
        self, settings: Settings, served: GitHttpsServer, gh: GitHubSandbox
    ) -> None:
        _token(gh, FIRST, datetime.now(UTC) + timedelta(hours=1))
        served.accepted = {FIRST}
        app = with_github(settings)
        url = served.url("remote.git")
        app = app.model_copy(update={"manifests": app.manifests.model_copy(update={"url": url})})
        before = remote_refs(_bare(served))["refs/heads/main"]
        rt = build_runtime(app)
        try:
            client = create_app(rt.settings, rt).test_client()
            ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE])
            art = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
            assert art.status_code == 201, art.json
        finally:
            rt.close()
            kill_gpg_agent(settings.data_dir / "trusted-gnupg")
        tip = remote_refs(_bare(served))["refs/heads/main"]
        new = commits_since(_bare(served), before)
        assert new and tip == new[-1]
        for sha in new:  # the policy adopted at start, then the artifact's record
            verify_commit(_bare(served), sha, settings.gnupghome)
        assert set(served.seen) == {FIRST}
        assert len(gh.sent("POST", EXCHANGES)) == 1  # one token for the branch and the ledger
