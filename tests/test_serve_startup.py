"""`ritmo serve` as a user starts it: what it refuses before creating anything, and the
lines it logs (every one JSON with log_format: json)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from bot.auth import Scope
from bot.config import Settings
from bot.store.schema import make_engine
from bot.store.tokens import TokenStore
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body
from tests.test_cli import RITMO, free_port, settings_env


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RITMO_")}
    return {**env, **extra}


def test_a_port_in_use_fails_before_anything_is_created(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [str(RITMO), "serve"],
            cwd=tmp_path,
            env=_env(RITMO_LISTEN=f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        f"ritmo: setting listen (RITMO_LISTEN): 127.0.0.1:{port} is already in use; "
        "stop what holds it or choose another host:port\n"
    )
    assert list(tmp_path.iterdir()) == []  # no data dir, key, remote or database


def _read_lines(stream: IO[str], into: list[str]) -> None:
    for line in stream:
        into.append(line.rstrip("\n"))


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


def test_every_line_is_json_with_an_event_line_per_change(
    settings: Settings, tmp_path: Path
) -> None:
    """`ritmo serve` with log_format json, driven through registration, promotion, requests
    superseded and merged, deployments and a rollback: every line on stdout and stderr is
    a JSON object; access lines carry route, status, duration and correlation id; each
    change has its info line with its ids."""
    settings.data_dir.mkdir(parents=True)
    store = TokenStore(make_engine(settings.index_url))
    admin = store.create("admin", [Scope.ADMIN])
    alice = store.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    bob = store.create("bob", [Scope.PROMOTIONS_APPROVE], ["security-team"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(**settings_env(settings), RITMO_LISTEN=f"127.0.0.1:{port}", RITMO_LOG_FORMAT="json")
    proc = subprocess.Popen(
        [str(RITMO), "serve"], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_read_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_read_lines, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, err
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, err
            time.sleep(0.2)
        ids = _drive(base, admin, alice, bob)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    lines = [line for line in out + err if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all(isinstance(p, dict) and p.get("message") for p in parsed)
    loggers = {p["logger"] for p in parsed}
    assert {"gunicorn.error", "ritmo.access", "ritmo.serve", "ritmo.events"} <= loggers

    access = [p for p in parsed if p["logger"] == "ritmo.access"]
    promote = [p for p in access if p["path"] == "/api/v1/promotions" and p["method"] == "POST"]
    assert [(p["route"], p["status"]) for p in promote] == [("/api/v1/promotions", 202)] * 2
    assert promote[1]["correlation_id"] == "log-test-promote"  # the one the request sent
    approvals = [p for p in access if p["path"].endswith("/approvals")]
    assert approvals[0]["route"] == "/api/v1/promotions/<request_id>/approvals"
    for line in access:
        assert isinstance(line["status"], int) and isinstance(line["duration_ms"], float)
        assert line["correlation_id"], line
        assert admin not in json.dumps(line)

    events: dict[str, list[dict[str, Any]]] = {}
    for p in parsed:
        if p["logger"] == "ritmo.events":
            assert p["level"] == "INFO"
            events.setdefault(p["event"], []).append(p)
    assert [e["artifact_id"] for e in events["registered"]] == ids["artifacts"]
    assert {(e["artifact_id"], e["to"]) for e in events["promoted"]} >= {
        (a, env) for a in ids["artifacts"] for env in ("dev", "staging")
    }
    assert [e["request_id"] for e in events["request_opened"]] == ids["requests"]
    closed = events["request_closed"]
    assert [(e["request_id"], e["status"]) for e in closed] == [(ids["requests"][0], "superseded")]
    (merged,) = events["request_merged"]
    assert merged["request_id"] == ids["requests"][1] and merged["commit"]
    deployments = [(e["deployment_id"], e["status"]) for e in events["deployment"]]
    assert (ids["deployments"][0], "succeeded") in deployments
    assert (ids["deployments"][1], "failed") in deployments
    (rollback,) = events["rollback"]
    assert rollback["failed_artifact"] == ids["artifacts"][1]
    assert rollback["restored_artifact"] == ids["artifacts"][0]
    primary = {"registered": "artifact_id", "promoted": "artifact_id", "request_opened":
               "request_id", "request_closed": "request_id", "request_merged": "request_id",
               "deployment": "deployment_id", "rollback": "failed_artifact"}  # fmt: skip
    assert set(events) == set(primary)
    for name, every in events.items():  # the id is in the message too, for text logs
        for e in every:
            assert e[primary[name]] in e["message"], e


def _drive(base: str, admin: str, alice: str, bob: str) -> dict[str, list[str]]:
    def call(method: str, path: str, token: str, body: Any = None, **headers: str) -> Any:
        headers = {"Authorization": f"Bearer {token}", **headers}
        resp = requests.request(method, base + path, json=body, headers=headers, timeout=120)
        assert resp.status_code < 300, (path, resp.status_code, resp.text)
        return resp.json()

    first = call("POST", "/api/v1/artifacts", admin, artifact_body(version="1.0.0"))["id"]
    ok = call("POST", "/api/v1/deployments", admin,
              {"artifact_id": first, "environment": "staging"})  # fmt: skip
    to_prod = {"app": "web", "version": "1.0.0", "to": "production"}
    older = call("POST", "/api/v1/promotions", admin, to_prod)["request"]["id"]
    second = call("POST", "/api/v1/artifacts", admin, artifact_body(version="1.1.0"))["id"]
    newer = call("POST", "/api/v1/promotions", admin, {**to_prod, "version": "1.1.0"},
                 **{"X-Correlation-ID": "log-test-promote"})["request"]["id"]  # fmt: skip
    call("POST", f"/api/v1/promotions/{newer}/approvals", alice, {"state": "approved"})
    merged = call("POST", f"/api/v1/promotions/{newer}/approvals", bob, {"state": "approved"})
    assert merged["status"] == "merged", merged
    bad = call("POST", "/api/v1/deployments", admin,
               {"artifact_id": second, "environment": "staging", "status": "failed"})  # fmt: skip
    call("POST", f"/api/v1/deployments/{bad['id']}/rollback", admin, {"reason": "log test"})
    return {
        "artifacts": [first, second],
        "requests": [older, newer],
        "deployments": [ok["id"], bad["id"]],
    }
