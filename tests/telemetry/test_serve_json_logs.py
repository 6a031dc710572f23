"""`ritmo serve` with log_format json (the default): every log line is JSON, gunicorn's own
included, and each request gets one access line with route, status, duration and
correlation id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import kill_gpg_agent
from tests.test_cli import _Server, free_port, printed_token


@pytest.fixture
def serve_cwd(short_tmp_path: Path) -> Iterator[Path]:
    cwd = short_tmp_path / "cwd"
    cwd.mkdir()
    yield cwd
    kill_gpg_agent(cwd / ".ritmo" / "gnupg")
    kill_gpg_agent(cwd / ".ritmo" / "trusted-gnupg")


def test_every_log_line_is_json_and_requests_get_access_lines(serve_cwd: Path) -> None:
    server = _Server(serve_cwd, free_port())
    try:
        printed = server.wait_ready()
        ci = printed_token(printed, "ci")
        headers = {"Authorization": f"Bearer {ci}", "X-Correlation-ID": "build-42"}
        got = requests.get(server.base + "/api/v1/artifacts/art-0000", headers=headers, timeout=60)
        assert got.status_code == 404
    finally:
        server.stop()
    assert server.stdout_lines[-1].startswith("Ritmo listening")  # no text access log
    assert server.stdout.empty()
    lines = [json.loads(line) for line in server.stderr_lines]  # each one parses
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"]
               for line in lines), lines  # fmt: skip
    access_lines = [line for line in lines if line["logger"] == "ritmo.access"]
    (access,) = [line for line in access_lines if line.get("correlation_id") == "build-42"]
    assert access["route"] == "/api/v1/artifacts/<artifact_id>"
    assert access["path"] == "/api/v1/artifacts/art-0000"
    assert access["status"] == 404 and access["method"] == "GET"
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] >= 0
    assert ci not in "\n".join(server.stderr_lines)
