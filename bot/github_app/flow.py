"""GitHub's manifest flow, run from a terminal (docs: "Registering a GitHub App from a
manifest"): a page on localhost posts the manifest to GitHub's new-App page, GitHub
redirects back to localhost with a one-hour `code`, and POST
/app-manifests/{code}/conversions trades it for the App's id, private key and webhook
secret, which are written into the settings file."""

from __future__ import annotations

import html
import json
import os
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests
from ruamel.yaml import YAML

CALLBACK_PATH = "/callback"


class FlowError(Exception):
    """The flow cannot go on; the message says what to do."""


@dataclass(frozen=True)
class AppCredentials:
    """What the conversion answers (201), as much of it as Ritmo keeps."""

    id: int
    slug: str
    html_url: str
    pem: str
    webhook_secret: str
    owner: str


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Register Ritmo's GitHub App</title></head>
<body>
<form id="manifest" method="post" action="{action}">
<input type="hidden" name="manifest" value="{manifest}">
<p>Registering Ritmo's GitHub App on {where}.</p>
<button type="submit">Continue to GitHub</button>
</form>
<script>document.getElementById("manifest").submit()</script>
</body></html>
"""

_DONE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Ritmo</title></head>
<body><p>GitHub registered the App. Back to the terminal: Ritmo writes its settings.</p></body>
</html>
"""


class ManifestFlow:
    """A one-shot server on loopback: GET / serves the auto-posting form, GET /callback
    takes the code (with the state it handed out, or 400)."""

    def __init__(self, new_app_page: str, manifest: dict[str, Any], port: int = 0) -> None:
        self.state = secrets.token_urlsafe(24)
        self._page = new_app_page
        self._manifest = dict(manifest)
        self._code: str | None = None
        self._arrived = threading.Event()
        flow = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                flow._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # the terminal shows what matters

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self._manifest["redirect_url"] = f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self._manifest)

    def start(self) -> str:
        self._thread.start()
        return self.url

    def wait(self, timeout: float) -> str:
        """The code GitHub redirected back with; FlowError after `timeout` seconds."""
        if not self._arrived.wait(timeout):
            raise FlowError(
                f"no answer from GitHub within {timeout:g}s; run the command again and "
                f"open {self.url} in a browser signed in to GitHub"
            )
        assert self._code is not None
        return self._code

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path == "/":
            action = f"{self._page}?state={quote(self.state)}"
            body = _PAGE.format(
                action=html.escape(action),
                manifest=html.escape(json.dumps(self._manifest)),
                where=html.escape(self._page),
            )
            _answer(request, 200, body)
        elif parts.path == CALLBACK_PATH:
            query = parse_qs(parts.query)
            code = (query.get("code") or [""])[0]
            state = (query.get("state") or [""])[0]
            if not code or not secrets.compare_digest(state, self.state):
                # Not the redirect of this run's form: someone else's link or a stale tab.
                _answer(request, 400, "code missing or state does not match; start over\n")
                return
            self._code = code
            _answer(request, 200, _DONE)
            self._arrived.set()
        else:
            _answer(request, 404, "not found\n")


def _answer(request: BaseHTTPRequestHandler, status: int, body: str) -> None:
    data = body.encode()
    request.send_response(status)
    kind = "text/html" if body.startswith("<!doctype") else "text/plain"
    request.send_header("Content-Type", f"{kind}; charset=utf-8")
    request.send_header("Content-Length", str(len(data)))
    request.send_header("Cache-Control", "no-store")
    request.end_headers()
    request.wfile.write(data)


def convert(api_url: str, code: str, timeout: float = 30) -> AppCredentials:
    """POST /app-manifests/{code}/conversions: no authentication, the code is the secret."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    try:
        response = requests.post(
            url,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise FlowError(f"cannot reach {api_url}: {exc}") from None
    if response.status_code != 201:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text[:200]
        raise FlowError(
            f"GitHub refused the code ({response.status_code} {message}); a code works once "
            "and for an hour: run the command again"
        )
    body = response.json()
    try:
        owner = body.get("owner") or {}
        return AppCredentials(
            id=int(body["id"]),
            slug=str(body["slug"]),
            html_url=str(body["html_url"]),
            pem=str(body["pem"]),
            webhook_secret=str(body["webhook_secret"] or ""),
            owner=str(owner.get("login", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowError(f"GitHub's answer lacks {exc}; nothing was written") from None


def write_key(path: Path, pem: str) -> None:
    """The App's private key, readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, pem.encode())
    finally:
        os.close(fd)


def write_settings(config: Path, credentials: AppCredentials, key_file: Path) -> None:
    """forge.kind github with the App's id, key file and webhook secret, into `config`
    (created when missing; its comments and other keys kept). The file now holds a
    secret, so it is made readable by its owner only."""
    yaml = YAML()  # round-trip: the user's comments and order survive
    data: Any = None
    if config.exists():
        data = yaml.load(config.read_text(encoding="utf-8"))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FlowError(f"config file {config}: the top level must be a mapping of settings")
    forge = data.setdefault("forge", {})
    forge["kind"] = "github"
    github = forge.setdefault("github", {})
    github["app_id"] = credentials.id
    github["private_key_file"] = str(key_file.resolve())
    github["webhook_secret"] = credentials.webhook_secret
    github.pop("private_key", None)  # one key only: the new App's
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.dump(data, out)
