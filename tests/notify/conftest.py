"""Real parts for the outbox: a recording HTTP server on loopback, a sqlite file, a clock."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.config import NotifySettings
from bot.notify.outbox import EventContext, Outbox
from bot.policy.model import Policy
from bot.store.schema import make_engine

START = 1_700_000_000.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class RecordingServer:
    """An HTTP server in a thread: records every request, answers with `reply`."""

    def __init__(self, port: int = 0) -> None:
        self.seen: list[Seen] = []
        self.reply = Reply()
        self.got = threading.Event()
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode()
                with recorder._lock:
                    recorder.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                    reply = recorder.reply
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                recorder.got.set()

            do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def free_port() -> int:
    """A loopback port nobody listens on (a target that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class PolicyHolder:
    """The policy in force; tests swap it to show queued work does not change."""

    def __init__(self) -> None:
        self.policy = policy_with([])

    def __call__(self) -> Policy:
        return self.policy


def policy_with(integrations: list[dict[str, Any]]) -> Policy:
    return Policy.model_validate(
        {
            "environments": [{"name": "dev"}, {"name": "staging"}, {"name": "production"}],
            "integrations": integrations,
        }
    )


ARTIFACT: dict[str, Any] = {
    "id": "art-0123456789abcdef",
    "name": "web",
    "version": "1.2.3",
    "storage_url": "s3://artifacts/web-1.2.3.tar",
    "image": "ghcr.io/acme/web:1.2.3",
    "build_id": "build-77",
    "checksum": "sha256:" + "a" * 64,
    "metadata": {"commit": "deadbeef" * 5, "build_number": 77, "tag": "v1.2.3"},
}


def context(
    event_id: str = "pro-1", environment: str | None = "staging", **kw: Any
) -> EventContext:
    return EventContext(
        event_id=event_id,
        app="web",
        artifact=ARTIFACT,
        environment=environment,
        correlation_id="corr-42",
        **kw,
    )


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    yield srv
    srv.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy() -> PolicyHolder:
    return PolicyHolder()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.sqlite3'}"


@pytest.fixture
def engines(db_url: str) -> Iterator[Callable[[], Engine]]:
    """Opens engines on the same sqlite file (a "restart" opens another); all disposed."""
    opened: list[Engine] = []

    def open_engine() -> Engine:
        engine = make_engine(db_url)
        opened.append(engine)
        return engine

    yield open_engine
    for engine in opened:
        engine.dispose()


SECRETS = {"cd_token": "s3cret-cd-token", "gate": "gate-secret"}


@pytest.fixture
def make_outbox(
    engines: Callable[[], Engine], policy: PolicyHolder, clock: Clock
) -> Iterator[Callable[..., Outbox]]:
    """Outbox(new engine on the file, the policy holder, settings) with test defaults:
    full jitter pinned at its ceiling (random 1.0), 3 attempts."""
    made: list[Outbox] = []

    def build(engine: Engine | None = None, **kw: Any) -> Outbox:
        settings = NotifySettings(
            secrets=kw.pop("secrets", SECRETS),
            max_attempts=kw.pop("max_attempts", 3),
            timeout=kw.pop("timeout", 2.0),
        )
        kw.setdefault("clock", clock)
        kw.setdefault("random", lambda: 1.0)
        outbox = Outbox(engine or engines(), policy, settings, **kw)
        made.append(outbox)
        return outbox

    yield build
    for outbox in made:
        outbox.stop()
