"""`ritmo github-app`: the manifest (permissions, events, webhook) and GitHub's manifest flow,
driven through a real local redirect; GitHub's API over `responses`."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from bot.cli import main
from bot.config import load_settings
from bot.github_app.flow import ManifestFlow
from bot.github_app.manifest import (
    ALWAYS_DELIVERED,
    EVENT_PERMISSION,
    PERMISSIONS,
    build_manifest,
    new_app_page,
    web_url,
)
from bot.webhooks.routes import build_router
from tests.forge.github_sandbox import PRIVATE_KEY, sample


def test_manifest_prints_json_on_stdout_and_why_on_stderr() -> None:
    result = CliRunner().invoke(
        main, ["github-app", "manifest", "--url", "https://ritmo.example.com/"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["name"] == "Ritmo"
    assert manifest["url"] == "https://ritmo.example.com"
    assert manifest["hook_attributes"] == {
        "url": "https://ritmo.example.com/webhooks/github", "active": True,
    }  # fmt: skip
    assert manifest["default_permissions"] == {
        "contents": "write", "pull_requests": "write", "statuses": "write",
        "deployments": "write", "issues": "write", "members": "read", "metadata": "read",
    }  # fmt: skip
    for permission in PERMISSIONS:
        line = next(ln for ln in result.stderr.splitlines() if ln.startswith(permission.name + " "))
        assert permission.access in line and permission.why in line


def test_the_webhook_path_is_the_one_ritmo_serves() -> None:
    from flask import Flask

    from bot.api.webhooks import blueprint

    app = Flask(__name__)
    app.register_blueprint(blueprint)
    path = urlsplit(build_manifest("https://ritmo.example.com")["hook_attributes"]["url"]).path
    adapter = app.url_map.bind("ritmo.example.com")
    assert adapter.match(path, method="POST")[0] == "webhooks.receive_github"


def test_events_are_the_ones_the_router_handles_and_each_has_its_permission() -> None:
    handled = build_router().events()
    manifest = build_manifest("https://ritmo.example.com")
    assert manifest["default_events"] == sorted(handled - ALWAYS_DELIVERED)
    assert manifest["default_events"] == [
        "issue_comment",
        "pull_request",
        "pull_request_review",
        "push",
    ]
    for event in manifest["default_events"]:
        assert manifest["default_permissions"][EVENT_PERMISSION[event]] in ("read", "write")


def test_workflow_dispatch_adds_actions_write_only_when_asked() -> None:
    assert "actions" not in build_manifest("https://r.example.com")["default_permissions"]
    with_it = build_manifest("https://r.example.com", workflow_dispatch=True)
    assert with_it["default_permissions"]["actions"] == "write"


def test_permissions_table() -> None:
    result = CliRunner().invoke(main, ["github-app", "permissions"])
    assert result.exit_code == 0
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["permission", "access", "why"]
    assert [r.split()[0] for r in rows[1:]] == [p.name for p in PERMISSIONS]


@pytest.mark.parametrize(
    "url", ["http://ritmo.example.com", "ritmo.example.com", "https://x.example?a=1"]
)
def test_manifest_refuses_a_url_github_cannot_deliver_to(url: str) -> None:
    result = CliRunner().invoke(main, ["github-app", "manifest", "--url", url])
    assert result.exit_code == 2
    assert "--url" in result.output and "https://" in result.output


@pytest.mark.parametrize(
    ("api", "org", "page"),
    [
        ("https://api.github.com", None, "https://github.com/settings/apps/new"),
        (
            "https://api.github.com",
            "acme",
            "https://github.com/organizations/acme/settings/apps/new",
        ),
        ("https://ghe.acme.example/api/v3", None, "https://ghe.acme.example/settings/apps/new"),
        (
            "https://ghe.acme.example/api/v3",
            "ops",
            "https://ghe.acme.example/organizations/ops/settings/apps/new",
        ),
    ],
)
def test_new_app_page_for_github_and_enterprise_server(
    api: str, org: str | None, page: str
) -> None:
    assert new_app_page(api, org) == page
    assert web_url(api) == page.split("/settings")[0].split("/organizations")[0]


# -- the flow ---------------------------------------------------------------------------


class FakeGitHubWeb:
    """GitHub's new-App page on loopback: takes the posted manifest and redirects (302) to
    its redirect_url with a code and the state, as GitHub does once the App is named."""

    def __init__(self, code: str = "a180b1a3d263c81bc6441d7b990bae27d4c10679") -> None:
        self.posted: list[tuple[str, dict[str, Any], str]] = []  # (path, manifest, state)
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["Content-Length"])
                form = parse_qs(self.rfile.read(length).decode())
                manifest = json.loads(form["manifest"][0])
                parts = urlsplit(self.path)
                state = parse_qs(parts.query)["state"][0]
                web.posted.append((parts.path, manifest, state))
                self.send_response(302)
                self.send_header(
                    "Location", f"{manifest['redirect_url']}?code={code}&state={state}"
                )
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.code = code
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github_web() -> Iterator[FakeGitHubWeb]:
    web = FakeGitHubWeb()
    yield web
    web.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browser(local: str) -> requests.Response:
    """What the browser does: load Ritmo's page, submit its form, follow GitHub's redirect."""
    for _ in range(100):
        try:
            page = requests.get(local, timeout=5)
            break
        except requests.ConnectionError:
            threading.Event().wait(0.05)  # the command is still starting its server
    else:
        raise AssertionError(f"{local} never answered")
    assert page.status_code == 200
    form = page.text.split('<form id="manifest" method="post" action="', 1)[1]
    import html

    action = html.unescape(form.split('"', 1)[0])
    value = html.unescape(form.split('name="manifest" value="', 1)[1].split('"', 1)[0])
    assert 'document.getElementById("manifest").submit()' in page.text  # posts itself
    return requests.post(action, data={"manifest": value}, timeout=10)  # follows the 302


def _run_create(
    config: Path, web: FakeGitHubWeb, port: int, *more: str
) -> tuple[Result, requests.Response]:
    args = [
        "--config", str(config), "github-app", "create", "--url", "https://ritmo.example.com",
        "--org", "acme", "--port", str(port), "--no-browser", "--timeout", "20", *more,
    ]  # fmt: skip
    env = {"RITMO_FORGE__GITHUB__API_URL": f"{web.base}/api/v3"}  # GitHub Enterprise Server
    box: dict[str, Result] = {}
    thread = threading.Thread(target=lambda: box.update(r=CliRunner().invoke(main, args, env=env)))
    thread.start()
    answer = _browser(f"http://127.0.0.1:{port}/")
    thread.join(30)
    return box["r"], answer


def test_create_runs_the_manifest_flow_and_writes_the_settings(
    tmp_path: Path, github_web: FakeGitHubWeb
) -> None:
    config = tmp_path / "ritmo.yaml"
    config.write_text("# Ritmo for acme\nlisten: 0.0.0.0:8080  # behind the ingress\n")
    port = _free_port()
    status, headers, body = sample("app-manifest-conversion")
    with responses.RequestsMock() as rsps:
        rsps.add_passthru(github_web.base + "/organizations")
        rsps.add_passthru(f"http://127.0.0.1:{port}")
        conversion = rsps.post(
            f"{github_web.base}/api/v3/app-manifests/{github_web.code}/conversions",
            status=status, headers=headers, json=body,
        )  # fmt: skip
        result, answer = _run_create(config, github_web, port)
    assert result.exit_code == 0, result.output
    assert answer.status_code == 200 and "registered" in answer.text  # Ritmo's callback page
    assert conversion.call_count == 1
    # The manifest went to the organization's page of the Enterprise host, with a state.
    path, manifest, state = github_web.posted[0]
    assert path == "/organizations/acme/settings/apps/new" and len(state) >= 24
    assert manifest["hook_attributes"]["url"] == "https://ritmo.example.com/webhooks/github"
    assert manifest["redirect_url"] == f"http://127.0.0.1:{port}/callback"
    # The key: 0600, the PEM GitHub returned; the settings: comments kept, secrets in.
    key = tmp_path / "ritmo-acme.private-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text() == PRIVATE_KEY
    text = config.read_text()
    assert "# Ritmo for acme" in text and "# behind the ingress" in text
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    settings = load_settings(config)
    github = settings.forge.github
    assert settings.forge.kind == "github" and settings.listen == "0.0.0.0:8080"
    assert github.app_id == 4242
    assert github.webhook_secret == "e340154128314309424b7c8e90325147d99fdafa"
    assert github.private_key_file == key.resolve()
    assert github.private_key_pem() == PRIVATE_KEY  # Ritmo can use it
    assert "installations/new" in result.stdout and "ritmo doctor" in result.stdout


def test_a_used_code_is_refused_and_nothing_is_written(
    tmp_path: Path, github_web: FakeGitHubWeb
) -> None:
    config = tmp_path / "ritmo.yaml"
    port = _free_port()
    status, headers, body = sample("app-manifest-code-used")
    with responses.RequestsMock() as rsps:
        rsps.add_passthru(github_web.base + "/organizations")
        rsps.add_passthru(f"http://127.0.0.1:{port}")
        rsps.post(
            f"{github_web.base}/api/v3/app-manifests/{github_web.code}/conversions",
            status=status, headers=headers, json=body,
        )  # fmt: skip
        result, _ = _run_create(config, github_web, port)
    assert result.exit_code == 1
    assert "422 Validation Failed" in result.output and "run the command again" in result.output
    assert not config.exists()
    assert list(tmp_path.glob("*.pem")) == []


def test_the_callback_refuses_a_state_it_did_not_hand_out() -> None:
    flow = ManifestFlow(
        "https://github.com/settings/apps/new", build_manifest("https://r.example.com")
    )
    flow.start()
    try:
        wrong = requests.get(f"{flow.url}callback?code=abc&state=someone-elses", timeout=5)
        assert wrong.status_code == 400
        missing = requests.get(f"{flow.url}callback?state={flow.state}", timeout=5)
        assert missing.status_code == 400
        right = requests.get(f"{flow.url}callback?code=abc&state={flow.state}", timeout=5)
        assert right.status_code == 200
        assert flow.wait(1) == "abc"
    finally:
        flow.close()


def test_an_existing_key_file_is_made_private(tmp_path: Path) -> None:
    from bot.github_app.flow import write_key

    key = tmp_path / "app.pem"
    key.write_text("old")
    os.chmod(key, 0o644)
    write_key(key, PRIVATE_KEY)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text() == PRIVATE_KEY


def test_settings_keep_other_keys_and_drop_an_inline_key(tmp_path: Path) -> None:
    from bot.github_app.flow import AppCredentials, write_settings

    config = tmp_path / "ritmo.yaml"
    config.write_text("forge:\n  github:\n    private_key: OLD\n    repository: acme/manifests\n")
    creds = AppCredentials(
        7, "ritmo", "https://github.com/apps/ritmo", PRIVATE_KEY, "s3cret-s3cret", "acme"
    )
    write_settings(config, creds, tmp_path / "k.pem")
    data = YAML(typ="safe").load(config.read_text())
    assert data["forge"]["github"] == {
        "repository": "acme/manifests", "app_id": 7,
        "private_key_file": str((tmp_path / "k.pem").resolve()), "webhook_secret": "s3cret-s3cret",
    }  # fmt: skip


# -- the README's GitHub setup section ----------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_exactly_the_permissions_the_manifest_asks_for() -> None:
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in _section("GitHub setup").splitlines()
        if line.startswith("| ") and not line.startswith("| permission")
    ]
    listed = {row[0].split()[0]: row[1] for row in rows}
    assert listed == {p.name: p.access for p in PERMISSIONS}


def test_readme_verify_command_uses_the_real_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex

    line = next(
        ln for ln in _section("GitHub setup").splitlines() if ln.startswith("ritmo verify ")
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ritmo.asc").write_text("key")
    args = shlex.split(line)[2:]
    context = main.commands["verify"].make_context("verify", args)  # parses, runs nothing
    assert context.params["repo"] == "." and context.params["trusted_keys"] == (Path("ritmo.asc"),)


# -- every REST call Ritmo makes is covered, by GitHub's "Permissions required for GitHub Apps"

# PyGithub method -> the permissions its REST operations need (any of them suffices).
CALLS: dict[str, dict[str, str]] = {
    "create_pull": {"pull_requests": "write"},  # POST /repos/{o}/{r}/pulls
    "create_review_request": {"pull_requests": "write"},  # POST .../pulls/{n}/requested_reviewers
    "get_pull": {"pull_requests": "read"},
    "get_pulls": {"pull_requests": "read"},
    "get_reviews": {"pull_requests": "read"},
    "get_files": {"pull_requests": "read"},
    "edit": {"pull_requests": "write", "issues": "write"},  # a pull request; an issue comment
    "create_status": {"statuses": "write"},  # POST /repos/{o}/{r}/statuses/{sha}
    "create_comment": {"issues": "write", "contents": "write"},  # issue; commit comments
    "get_issue": {"issues": "read"},
    "get_comment": {"issues": "read"},
    "get_comments": {"issues": "read"},
    "get_commit": {"contents": "read"},
    "create_deployment": {"deployments": "write"},
    "get_deployments": {"deployments": "read"},
    "requestJsonAndCheck": {"deployments": "write"},  # POST .../deployments/{id}/statuses
    "get_collaborator_permission": {"metadata": "read"},
    "get_organization": {"members": "read"},
    "get_team_by_slug": {"members": "read"},
    "get_members": {"members": "read"},  # GET /orgs/{org}/teams/{slug}/members
    "get_repo": {"metadata": "read"},
    "get_page": {},  # a page of a listing above
    "get_app": {},  # GET /app, as the App (JWT)
    "get_access_token": {},  # POST /app/installations/{id}/access_tokens (JWT)
}


def test_every_github_call_in_the_forge_is_covered_by_a_permission() -> None:
    """A new PyGithub call fails this until its permission is in the manifest (or known)."""
    import re

    from bot.github_app.manifest import LEVELS

    source = (Path(__file__).resolve().parent.parent / "bot/forge/github.py").read_text()
    used = set(
        re.findall(r"\.(create_\w+|get_\w+|edit|delete\w*|merge|requestJsonAndCheck)\(", source)
    )
    assert used - set(CALLS) == set(), "map these calls to the permissions they need"
    granted = {p.name: p.access for p in PERMISSIONS}
    for call in used:
        needs = CALLS[call]
        assert not needs or any(
            LEVELS.get(granted.get(name, ""), 0) >= LEVELS[access] for name, access in needs.items()
        ), call


def test_dispatch_integrations_are_covered() -> None:
    from bot.github_app.manifest import WORKFLOW_DISPATCH

    source = (Path(__file__).resolve().parent.parent / "bot/notify/targets.py").read_text()
    assert '/dispatches"' in source  # repository_dispatch: contents write
    assert {p.name: p.access for p in PERMISSIONS}["contents"] == "write"
    assert "/actions/workflows/" in source and WORKFLOW_DISPATCH.name == "actions"


def test_when_the_settings_cannot_be_written_the_secrets_are_not_lost(
    tmp_path: Path, github_web: FakeGitHubWeb
) -> None:
    """GitHub shows the key and the webhook secret once: a failed write prints them."""
    config = tmp_path / "ritmo.yaml"
    port = _free_port()
    status, headers, body = sample("app-manifest-conversion")
    with responses.RequestsMock() as rsps:
        rsps.add_passthru(github_web.base + "/organizations")
        rsps.add_passthru(f"http://127.0.0.1:{port}")
        rsps.post(
            f"{github_web.base}/api/v3/app-manifests/{github_web.code}/conversions",
            status=status, headers=headers, json=body,
        )  # fmt: skip
        (tmp_path / "keys").write_text("a file where the key's folder should be")
        result, _ = _run_create(
            config, github_web, port, "--key-file", str(tmp_path / "keys/k.pem")
        )
    assert result.exit_code == 1
    assert "cannot write the settings" in result.stderr
    assert "webhook_secret: e340154128314309424b7c8e90325147d99fdafa" in result.stderr
    assert PRIVATE_KEY.strip() in result.stderr
