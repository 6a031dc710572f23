"""GitHub on a real loopback socket, answering from tests/samples/github/ by a script, so
urllib3's retry really sleeps (Retry-After, backoff) as it would against GitHub."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.forge.github_sandbox import INSTALLATION_ID, REPOSITORY, sample

Reply = tuple[int, dict[str, str], Any]
DELAY = "X-Script-Delay"  # a reply header the script acts on and never sends


@dataclass
class Hit:
    method: str
    path: str
    status: int
    at: float
    body: Any


class ScriptedGitHub:
    """Routes (method, path regex) -> replies, answered in order; the last one repeats."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], list[Reply]]] = []
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        script = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                status, headers, payload = script._answer(self.command, self.path)
                if DELAY in headers:  # a slow GitHub: this reply comes after that many seconds
                    time.sleep(float(headers[DELAY]))
                    headers = {k: v for k, v in headers.items() if k != DELAY}
                with script._lock:
                    script.hits.append(Hit(self.command, self.path.split("?")[0], status,
                                           time.monotonic(), body))  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.api = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, method: str, path: str, *replies: str | Reply) -> None:
        """Replies by sample name or as (status, headers, body); a path may hold regexes."""
        resolved = [sample(r, self.api) if isinstance(r, str) else r for r in replies]
        self.routes.append((method, re.compile(path + r"(\?.*)?"), resolved))

    def _answer(self, method: str, path: str) -> Reply:
        with self._lock:
            for want, pattern, replies in self.routes:
                if want == method and pattern.fullmatch(path):
                    return replies.pop(0) if len(replies) > 1 else replies[0]
        return 404, {}, {"message": f"Not Found (no script for {method} {path})"}

    def hits_of(self, method: str, path: str) -> list[Hit]:
        pattern = re.compile(path)
        return [h for h in self.hits if h.method == method and pattern.fullmatch(h.path)]

    def opening(self, pulls: list[str | Reply], statuses: list[str | Reply]) -> None:
        """What opening promotion request #7 takes, with the given answers to its writes."""
        status, headers, token = sample("installation-token", self.api)
        token["expires_at"] = (datetime.now(UTC) + timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        self.add("POST", f"/app/installations/{INSTALLATION_ID}/access_tokens",
                 (status, headers, token))  # fmt: skip
        self.add("POST", f"/repos/{REPOSITORY}/pulls", *pulls)
        self.add("POST", f"/repos/{REPOSITORY}/pulls/7/requested_reviewers",
                 "pull-review-requested")  # fmt: skip
        self.add("POST", f"/repos/{REPOSITORY}/statuses/[0-9a-f]{{40}}", *statuses)
        status, headers, _ = sample("reviews", self.api)
        self.add("GET", f"/repos/{REPOSITORY}/pulls/7/reviews", (status, headers, []))
        self.add("GET", "/app", "app")
        self.add("GET", "/orgs/acme/teams/ops/members", "team-members-page1")
        self.add("GET", "/organizations/9919/team/55/members", "team-members-page2")
        self.add("GET", "/orgs/acme/teams/security/members", "team-members-security")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def scripted_github() -> Iterator[ScriptedGitHub]:
    server = ScriptedGitHub()
    try:
        yield server
    finally:
        server.close()


def with_header(name: str, **headers: str) -> Reply:
    status, recorded, body = sample(name)
    return status, {**recorded, **headers}, body
