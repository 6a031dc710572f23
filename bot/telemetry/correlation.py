"""Correlation and delivery ids: which request (X-Correlation-ID) or GitHub delivery
(X-GitHub-Delivery) a log line, a commit trailer and a response belong to.

Both are checked against ID before they are logged or echoed: a client picks them.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

from flask import Flask, Response, g, request

from bot.telemetry import logs

ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def valid(value: str) -> bool:
    return ID.match(value) is not None


def bind(app: Flask) -> None:
    """Each request's lines carry its correlation id (the one sent, or a new one) and its
    delivery id; the response names the correlation id."""

    @app.before_request
    def _bind() -> None:
        given = request.headers.get("X-Correlation-ID")
        if given is None:
            cid = str(uuid.uuid4())  # the API's correlation_id() takes this one too
        elif valid(given):
            cid = given
        else:
            cid = str(uuid.uuid4())  # the API answers 400; the bad value is never logged
        tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
            (logs.correlation_id, logs.correlation_id.set(cid))
        ]
        delivery = request.headers.get("X-GitHub-Delivery")
        if delivery and valid(delivery):
            tokens.append((logs.delivery_id, logs.delivery_id.set(delivery)))
        g.ritmo_log_tokens = tokens

    @app.after_request
    def _name(response: Response) -> Response:
        cid = logs.correlation_id.get()
        if cid and "X-Correlation-ID" not in response.headers:
            response.headers["X-Correlation-ID"] = cid
        return response

    @app.teardown_request
    def _unbind(_exc: BaseException | None) -> None:
        for var, token in reversed(g.pop("ritmo_log_tokens", [])):
            try:
                var.reset(token)
            except ValueError:  # set in another context: just clear it
                var.set(None)
