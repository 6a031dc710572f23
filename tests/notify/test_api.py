"""GET /api/v1/outbox and POST /api/v1/outbox/<id>/retry (admin), and `ritmo outbox`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from bot.api.errors import register_error_handlers
from bot.api.outbox import blueprint
from bot.auth import Scope
from bot.cli import main
from bot.notify.outbox import Outbox
from bot.store.schema import make_engine
from bot.store.tokens import TokenStore
from tests.notify.conftest import PolicyHolder, RecordingServer, Reply, context, policy_with


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(make_engine(f"sqlite:///{tmp_path / 'tokens.sqlite3'}"))


@pytest.fixture
def outbox(
    make_outbox: Callable[..., Outbox], policy: PolicyHolder, server: RecordingServer
) -> Outbox:
    policy.policy = policy_with(
        [{"on": ["promoted"], "name": "cd", "webhook": {"url": server.url + "/deploy"}}]
    )
    return make_outbox(max_attempts=2)


@pytest.fixture
def app(outbox: Outbox, store: TokenStore) -> Flask:
    app = Flask("outbox-test")
    register_error_handlers(app)
    app.register_blueprint(blueprint)
    app.extensions["ritmo"] = SimpleNamespace(outbox=outbox, tokens=store)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin(store: TokenStore) -> dict[str, str]:
    return {"Authorization": "Bearer " + store.create("ops", [Scope.ADMIN])}


def dead_letter(outbox: Outbox, server: RecordingServer, event_id: str) -> int:
    """Emit, and fail it for good (500 until out of attempts)."""
    server.reply = Reply(500, {}, b"down")
    [row_id] = outbox.emit("promoted", context(event_id))
    outbox.deliver_due(now=1e12)
    outbox.deliver_due(now=2e12)
    row = outbox.get(row_id)
    assert row is not None and row.status == "dead"
    return row_id


def test_dead_letters_are_listed_and_a_retry_delivers(
    client: FlaskClient, admin: dict[str, str], outbox: Outbox, server: RecordingServer
) -> None:
    row_id = dead_letter(outbox, server, "pro-1")
    outbox.emit("promoted", context("pro-2"))  # queued, not dead

    listed = client.get("/api/v1/outbox?status=dead", headers=admin)
    assert listed.status_code == 200
    body = listed.get_json()
    assert (body["total"], body["page"], body["per_page"]) == (1, 1, 50)
    [item] = body["items"]
    assert item["id"] == row_id
    assert item["status"] == "dead" and item["attempts"] == 2
    assert item["integration"] == "cd" and item["target"] == "webhook"
    assert item["last_error"] == "gave up after 2 attempts; last: HTTP 500: down"
    assert item["request"]["target"]["url"] == server.url + "/deploy"
    assert client.get("/api/v1/outbox", headers=admin).get_json()["total"] == 2

    retried = client.post(f"/api/v1/outbox/{row_id}/retry", headers=admin)
    assert retried.status_code == 200
    assert (retried.get_json()["status"], retried.get_json()["attempts"]) == ("queued", 0)
    server.reply = Reply(200)
    outbox.deliver_due()
    row = outbox.get(row_id)
    assert row is not None and row.status == "delivered"
    assert client.get("/api/v1/outbox?status=dead", headers=admin).get_json()["total"] == 0


def test_paging(client: FlaskClient, admin: dict[str, str], outbox: Outbox) -> None:
    for i in range(5):
        outbox.emit("promoted", context(f"pro-{i}"))
    first = client.get("/api/v1/outbox?per_page=2", headers=admin)
    ids = [item["id"] for item in first.get_json()["items"]]
    assert ids == [5, 4]  # newest first
    assert first.headers["Link"] == '</api/v1/outbox?per_page=2&page=2>; rel="next"'
    last = client.get("/api/v1/outbox?per_page=2&page=3", headers=admin)
    assert [item["id"] for item in last.get_json()["items"]] == [1]
    assert "Link" not in last.headers


def test_refusals(
    client: FlaskClient,
    admin: dict[str, str],
    store: TokenStore,
    outbox: Outbox,
) -> None:
    assert client.get("/api/v1/outbox").status_code == 401
    reader = {"Authorization": "Bearer " + store.create("ci", [Scope.ARTIFACTS_READ])}
    refused = client.get("/api/v1/outbox", headers=reader)
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "token 'ci' lacks the scope admin"}
    bad = client.get("/api/v1/outbox?status=lost&page=0", headers=admin)
    assert bad.status_code == 400
    assert [f["field"] for f in bad.get_json()["fields"]] == ["status", "page"]
    missing = client.post("/api/v1/outbox/99/retry", headers=admin)
    assert missing.status_code == 404
    [queued] = outbox.emit("promoted", context())
    conflict = client.post(f"/api/v1/outbox/{queued}/retry", headers=admin)
    assert conflict.status_code == 409
    assert conflict.get_json()["error"] == (
        f"notification {queued} is queued, not dead; only dead letters are retried"
    )
    assert client.get(f"/api/v1/outbox/{queued}", headers=admin).get_json()["status"] == "queued"


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join()
    srv.server_close()


def test_cli_lists_and_retries(
    live: str, store: TokenStore, outbox: Outbox, server: RecordingServer
) -> None:
    row_id = dead_letter(outbox, server, "pro-1")
    env = {"RITMO_SERVER": live, "RITMO_TOKEN": store.create("ops", [Scope.ADMIN])}
    runner = CliRunner(env=env)
    listed = runner.invoke(main, ["outbox", "list", "--status", "dead"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TRIES", "EVENT", "APP", "TARGET", "ERROR"]
    assert lines[1].split()[:6] == [str(row_id), "dead", "2", "promoted", "web", "webhook"]
    assert lines[-1] == "(1 of 1)"

    retried = runner.invoke(main, ["outbox", "retry", str(row_id)])
    assert retried.exit_code == 0, retried.output
    assert retried.output == f"requeued: {row_id} (promoted web -> webhook)\n"
    again = runner.invoke(main, ["outbox", "retry", str(row_id)])
    assert again.exit_code == 1
    assert "is queued, not dead" in again.output
