"""The fast path of POST /webhooks/github, in front of Flask: check the HMAC, insert one
row, answer, and nothing else on the way.

A burst of deliveries queues on the server's one interpreter, so each step an
acknowledgement takes is paid a hundred times over: here there is no routing, no request
object, no before/after hooks. What the hooks give is kept and done cheaply here: the
request counted and timed under the same labels, the access line (JSON logs), the
correlation id (the one sent, or a new one, in X-Correlation-ID) and the delivery id on
the log lines written meanwhile.

Only well-formed signed deliveries are answered here. Everything else (no Content-Length,
a body past max_body_bytes, a bad signature, a malformed delivery, GitHub webhooks not
configured) goes on to Flask with the body as it came, where the view answers it as it
always did: one place says what a refusal looks like."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from werkzeug.http import HTTP_STATUS_CODES

from bot.errors import Invalid
from bot.telemetry import correlation, logs
from bot.telemetry.middleware import observe
from bot.webhooks.acknowledge import Answer, acknowledge
from bot.webhooks.delivery import SIGNATURE, parse
from bot.webhooks.router import Event
from bot.webhooks.verify import valid_signature

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.telemetry.metrics import Metrics

PATH = "/webhooks/github"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

log = logging.getLogger("bot.app")  # where Flask's handler logs an unexpected error
INTERNAL = Answer(500, {"error": "internal error; the server log has the details"})


class EnvironHeaders:
    """A request's headers read straight from the WSGI environ (what delivery.parse needs)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    def get(self, key: str) -> str | None:
        value = self._environ.get("HTTP_" + key.upper().replace("-", "_"))
        return value if isinstance(value, str) else None

    def items(self) -> Iterator[tuple[str, str]]:
        for key, value in self._environ.items():
            if key.startswith("HTTP_") and isinstance(value, str):
                yield key[5:].replace("_", "-").title(), value


class _Sent:
    """The answer's body; the server closes it once the body is written."""

    def __init__(self, body: bytes, on_close: Callable[[], None] | None) -> None:
        self._body = body
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


def _json(body: dict[str, Any]) -> bytes:
    # As Flask's jsonify writes it (compact, ASCII, a final newline): one format for both.
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


class WebhookAck:
    """WSGI middleware: answers signed, well-formed GitHub deliveries; passes the rest on."""

    def __init__(self, app: WSGIApp, runtime: Runtime, metrics: Metrics) -> None:
        self._app = app
        self._runtime = runtime
        self._metrics = metrics
        self._access_lines = runtime.settings.log_format == "json"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        started = time.perf_counter()
        body = self._body(environ)
        if body is None:
            return self._app(environ, start_response)
        headers = EnvironHeaders(environ)
        secret = self._runtime.settings.forge.github.webhook_secret or ""
        if not valid_signature(secret, body, headers.get(SIGNATURE)):
            return self._to_flask(environ, start_response, body)
        self._runtime.webhooks.arriving()  # the worker holds back while a burst is answered
        try:
            event = parse(headers, body)
        except Invalid:
            return self._to_flask(environ, start_response, body)
        given = headers.get("X-Correlation-ID")
        cid = given if given is not None and correlation.valid(given) else str(uuid.uuid4())
        bound: list[tuple[ContextVar[str | None], Token[str | None]]] = [
            (logs.correlation_id, logs.correlation_id.set(cid))
        ]
        if correlation.valid(event.delivery_id):
            bound.append((logs.delivery_id, logs.delivery_id.set(event.delivery_id)))
        try:
            answer = self._answer(event, body)
            on_close = self._runtime.webhooks.notify if answer.queued else None
            payload = _json(answer.body)
            status = f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}"
            start_response(status, [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Correlation-ID", cid),
            ])  # fmt: skip
            observe(self._metrics, self._access_lines, "POST", PATH, PATH, answer.status, started)
        finally:
            for var, token in reversed(bound):
                var.reset(token)
        return _Sent(payload, on_close)

    def _answer(self, event: Event, body: bytes) -> Answer:
        runtime = self._runtime
        installation = runtime.settings.forge.github.installation_id
        try:
            return acknowledge(event, body, installation, runtime.router, runtime.deliveries)
        except Exception:
            # Not acknowledged (nothing was committed): a 5xx, and GitHub may redeliver it.
            log.exception("unhandled error")
            return INTERNAL

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The raw body when this path can take the request; None leaves it to Flask."""
        settings = self._runtime.settings
        if settings.forge.kind != "github" or not settings.forge.github.webhook_secret:
            return None
        if environ.get("HTTP_TRANSFER_ENCODING") or environ.get("HTTP_CONTENT_ENCODING"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 <= length <= settings.max_body_bytes:
            return None  # Flask answers 413, or 400 for a negative length
        body: bytes = environ["wsgi.input"].read(length)
        if len(body) != length:  # the client went away: Flask says what it got
            environ["wsgi.input"] = io.BytesIO(body)
            return None
        return body

    def _to_flask(
        self, environ: dict[str, Any], start_response: StartResponse, body: bytes
    ) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)  # the body as it came, read once more
        return self._app(environ, start_response)


def install(app: Any, runtime: Runtime, metrics: Metrics) -> None:
    """Put the fast path in front of `app`'s WSGI callable (the Flask app keeps the route,
    for OpenAPI and for what the fast path leaves to it)."""
    app.wsgi_app = WebhookAck(app.wsgi_app, runtime, metrics)
