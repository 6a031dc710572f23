"""GET /: the read-only dashboard, its data, and the page in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from flask.testing import FlaskClient

from bot.api.dashboard import (
    _request_link,
    age,
    dashboard_data,
    pull_request_url,
    render_dashboard,
)
from bot.auth import Scope
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - name: staging
    rollback: {on_failure: automatic, strategy: previous_version}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}, {group: security-team, count: 1}]
    approval_timeout: 7d
groups:
  ops-team: {kind: local}
  security-team: {kind: local}
apps:
  "*": {}  # by pattern: a declared name would be a row before any record
"""

WIDTH, HEIGHT = 1280, 900


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _register(client: FlaskClient, token: str, version: str, name: str = "web") -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(name=name, version=version), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _deployed(client: FlaskClient, token: str, art: str, env: str, status: str) -> Any:
    resp = client.post(
        "/api/v1/deployments",
        json={"artifact_id": art, "environment": env, "status": status, "deployed_by": "argo"},
        headers=bearer(token),
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture
def state(client: FlaskClient, runtime: Runtime, tokens: dict[str, str]) -> dict[str, Any]:
    """web: 1.0.0 everywhere below production, 1.1.0 rolled back in staging, a request
    for 1.0.0 into production with one of two approvals."""
    store = runtime.tokens
    cd = store.create("argocd", [Scope.DEPLOYMENTS_WRITE])
    alice = store.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    good = _register(client, tokens["ci"], "1.0.0")  # pinned in dev and staging
    _deployed(client, cd, good, "dev", "succeeded")
    _deployed(client, cd, good, "staging", "succeeded")
    bad = _register(client, tokens["ci"], "1.1.0")
    _deployed(client, cd, bad, "dev", "succeeded")
    failed = _deployed(client, cd, bad, "staging", "degraded")
    assert failed["rollback"]["restored_artifact"] == good, failed
    resp = client.post(
        f"/api/v1/artifacts/{good}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(tokens["promoter"]),
    )
    assert resp.status_code == 202, resp.get_json()
    request = resp.get_json()["request"]
    resp = client.post(
        f"/api/v1/promotions/{request['id']}/approvals", json={}, headers=bearer(alice)
    )
    assert resp.status_code == 201 and resp.get_json()["progress"] == "1/2 approvals"
    return {"good": good, "bad": bad, "request": request["id"]}


# -- data assembly and rendering, without a browser -----------------------------------


def test_the_data_says_what_runs_where(runtime: Runtime, state: dict[str, Any]) -> None:
    now = datetime.now(UTC) + timedelta(hours=3)
    data = dashboard_data(runtime, now)
    assert data["environments"] == ["dev", "staging", "production"]
    (web,) = data["apps"]
    cells = {c["env"]: c for c in web["cells"]}
    assert cells["dev"]["version"] == "1.1.0" and cells["dev"]["health"] == "succeeded"
    assert cells["dev"]["deployed_matches"] is True
    assert cells["dev"]["age"] == "3h"
    # The rollback pinned 1.0.0 back; the last report there is the degraded 1.1.0.
    staging = cells["staging"]
    assert (staging["version"], staging["rolled_back_from"]) == ("1.0.0", "1.1.0")
    assert (staging["health"], staging["deployed_version"]) == ("rolled back", "1.1.0")
    assert staging["deployed_matches"] is False
    # Production holds the scaffold's pin: what git says, which Ritmo never recorded.
    production = cells["production"]
    assert (production["version"], production["recorded"]) == ("0.1.0", False)
    assert production["health"] is None
    assert all(cells[env]["recorded"] for env in ("dev", "staging"))

    (request,) = data["open_requests"]
    assert request["id"] == state["request"]
    assert (request["version"], request["from"], request["to"]) == (
        "1.0.0",
        "staging",
        "production",
    )
    assert request["progress"] == "1/2 approvals"
    assert request["missing"] == [{"group": "security-team", "count": 1}]
    assert request["approvers"] == ["alice"] and request["requested_by"] == "release-bot"
    assert request["link"] is None  # the local forge has no pull requests

    deployments = data["deployments"]
    assert [(d["environment"], d["version"], d["status"]) for d in deployments] == [
        ("staging", "1.1.0", "degraded"),
        ("dev", "1.1.0", "succeeded"),
        ("staging", "1.0.0", "succeeded"),
        ("dev", "1.0.0", "succeeded"),
    ]
    assert deployments[0]["rolled_back"] is True
    (rollback,) = data["rollbacks"]
    assert (rollback["app"], rollback["environment"]) == ("web", "staging")
    assert (rollback["rolled_back_version"], rollback["restored_version"]) == ("1.1.0", "1.0.0")
    assert (rollback["why"], rollback["failed"]) == ("deployment degraded", True)


def test_a_healthy_deployment_rolled_back_by_hand_is_not_shown_as_failed(
    client: FlaskClient, runtime: Runtime, state: dict[str, Any], tokens: dict[str, str]
) -> None:
    """Rolled back is not failed: the row says who rolled back what, and why."""
    reader = bearer(tokens["reader"])
    found = client.get("/api/v1/deployments?env=dev&status=succeeded", headers=reader)
    dev = next(d for d in found.get_json()["items"] if d["version"] == "1.1.0")
    done = client.post(
        f"/api/v1/deployments/{dev['id']}/rollback",
        json={"reason": "checkout   latency  doubled"},
        headers=bearer(tokens["promoter"]),
    )
    assert done.status_code == 201, done.get_json()
    by_env = {rb["environment"]: rb for rb in dashboard_data(runtime)["rollbacks"]}
    by_hand = by_env["dev"]
    assert (by_hand["rolled_back_version"], by_hand["restored_version"]) == ("1.1.0", "1.0.0")
    assert by_hand["why"] == (
        "rolled back by hand (the deployment had succeeded): checkout latency doubled"
    )
    assert (by_hand["failed"], by_hand["rolled_back_by"]) == (False, "release-bot")
    assert by_env["staging"]["why"] == "deployment degraded"

    page = client.get("/").get_data(as_text=True)
    headings = re.search(r'<table class="rollbacks">.*?</thead>', page, re.S)
    assert headings is not None and ">Failed<" not in headings.group(0)
    assert ">Rolled back</th>" in headings.group(0) and ">Why</th>" in headings.group(0)
    row = re.search(r'<tr class="rollback"[^>]*data-env="dev">.*?</tr>', page, re.S)
    assert row is not None, page
    assert (
        '<td class="why">rolled back by hand (the deployment had succeeded): '
        "checkout latency doubled</td>"
    ) in row.group(0)
    assert '<td class="why failed">deployment degraded</td>' in page


def test_the_page_needs_no_token_and_shows_no_secrets(
    client: FlaskClient, runtime: Runtime, state: dict[str, Any], tokens: dict[str, str]
) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    assert 'data-app="web" data-env="staging">1.0.0</span>' in page
    assert "1/2 approvals" in page
    for secret in tokens.values():
        assert secret not in page
    assert "BEGIN PGP" not in page and "ritmo_" not in page
    assert client.post("/").status_code == 405  # read-only


def test_an_empty_installation(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "No apps recorded yet." in page and "No open promotion requests." in page


def test_untrusted_text_is_escaped(runtime: Runtime) -> None:
    evil = "<script>alert(1)</script>"
    data = dashboard_data(runtime)
    data["open_requests"] = [
        {"id": "req-1", "app": "web", "version": "1", "from": "a", "to": "b", "progress": evil,
         "missing": [], "approvers": [], "decision": "blocked", "reason": evil,
         "requested_by": evil, "opened_at": "2024-01-01T00:00:00Z", "age": "1d", "branch": "b",
         "forge_ref": "7", "link": 'https://x/"><script>'}
    ]  # fmt: skip
    page = render_dashboard(runtime, data)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_pull_request_links_and_ages() -> None:
    assert pull_request_url("https://api.github.com", "acme/manifests", "12") == (
        "https://github.com/acme/manifests/pull/12"
    )
    assert pull_request_url("https://ghe.example.com/api/v3", "acme/m", "3") == (
        "https://ghe.example.com/acme/m/pull/3"
    )
    github = SimpleNamespace(repository="acme/m", api_url="https://ghe.example.com/api/v3")
    on_github = cast(Runtime, SimpleNamespace(
        settings=SimpleNamespace(forge=SimpleNamespace(kind="github", github=github))
    ))  # fmt: skip
    assert _request_link(on_github, "3") == "https://ghe.example.com/acme/m/pull/3"
    assert _request_link(on_github, None) is None
    github.repository = None
    assert _request_link(on_github, "3") is None
    now = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
    assert age("2024-05-02T11:59:30Z", now) == "30s"
    assert age("2024-05-02T11:15:00Z", now) == "45m"
    assert age("2024-05-01T10:00:00Z", now) == "1d"
    assert age(None, now) is None and age("not a time", now) is None


# -- the page in a real browser --------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "chromium is not installed; the dashboard test needs a real headless browser: "
        "apt-get install -y chromium (.ci/run installs it)"
    )


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{command}: {proc.stderr[-2000:]}"
    return proc


class _Elements(HTMLParser):
    """Each element's attributes and its text content, from a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        text: list[str] = []
        self.found.append((tag, {k: v or "" for k, v in attrs}, text))
        self._open.append(text)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for text in self._open:
            text.append(data)

    def text(self, css_class: str, **data: str) -> list[str]:
        return [
            " ".join("".join(text).split())
            for _, attrs, text in self.found
            if css_class in attrs.get("class", "").split()
            and all(attrs.get(f"data-{k}") == v for k, v in data.items())
        ]


VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr"}


def _png_size_and_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_the_page_in_headless_chromium(
    live_server: str, state: dict[str, Any], tmp_path: Path
) -> None:
    dom = _run_chromium(tmp_path, "--dump-dom", f"{live_server}/").stdout
    page = _Elements()
    page.feed(dom)
    assert page.text("version", app="web", env="dev") == ["1.1.0"]
    assert page.text("version", app="web", env="staging") == ["1.0.0"]
    assert page.text("version", app="web", env="production") == ["0.1.0"]
    (mark,) = page.text("unrecorded-mark", app="web", env="production")
    assert mark.startswith("unrecorded, ")
    assert page.text("unrecorded-mark", app="web", env="staging") == []
    assert page.text("health", app="web", env="dev") == ["succeeded"]
    assert page.text("health", app="web", env="staging") == ["rolled back (1.1.0)"]
    assert page.text("health", app="web", env="production") == ["not reported"]
    assert page.text("rolled-back-from") == ["rolled back from 1.1.0"]
    assert page.text("progress", request=state["request"]) == ["1/2 approvals"]
    (row,) = page.text("request", request=state["request"])
    assert "staging → production" in row and "1 from security-team" in row
    assert len(page.text("deployment")) == 4
    assert page.text("restored-version") == ["1.0.0"]
    assert re.search(r"<h1>Ritmo</h1>", dom)

    shot = tmp_path / "dashboard.png"
    _run_chromium(
        tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", f"{live_server}/"
    )
    assert shot.exists(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    width, height, pixels = _png_size_and_pixels(data)
    assert (width, height) == (WIDTH, HEIGHT)
    # A rendered page, not a blank one: many distinct byte values, well past a flat colour.
    assert len(data) > 20_000, len(data)
    assert len(set(pixels)) > 64
    assert sum(1 for b in pixels if b) > len(pixels) // 100


def test_a_forge_outage_leaves_the_request_listed(
    runtime: Runtime, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(request_id: str, fresh: bool = False) -> Any:
        raise ConnectionError("forge unreachable")

    monkeypatch.setattr(runtime.requests, "describe", down)
    (request,) = dashboard_data(runtime)["open_requests"]
    assert (request["id"], request["version"], request["to"]) == (
        state["request"],
        "1.0.0",
        "production",
    )
    assert request["progress"] is None and "unavailable" in str(request["reason"])
    assert "approval state unavailable" in render_dashboard(runtime, dashboard_data(runtime))
