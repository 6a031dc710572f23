"""JSON errors: every refusal names the field and the fix."""

from __future__ import annotations

import logging
from typing import Any

import requests
from flask import Flask, Response, jsonify
from github import GithubException
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from bot.errors import Forbidden, Invalid, NotFound, Refused, RitmoError, Unavailable
from bot.manifests.remote import GitFailed

log = logging.getLogger(__name__)

_HINTS = {
    "name": "a DNS-label-like slug: lowercase letters, digits and '-', e.g. web",
    "version": "letters, digits and . _ + - (no '/' or '..'), e.g. 1.2.3",
    "checksum": "sha256:<64 lowercase hex digits>",
    "build_id": "one line of printable ASCII, e.g. abc-123",
    "storage_url": "one line of printable ASCII, e.g. s3://artifacts/web-1.2.3.tar",
    "image": "repo:tag or repo@sha256:<64 hex>, e.g. ghcr.io/acme/web:1.2.3",
    "metadata": "a mapping of simple keys to strings, numbers or booleans",
}

_UNION_PARTS = {"str", "constrained-str", "int", "float", "bool", "[key]"}


def reason_of(exc: BaseException) -> str:
    """An error's text fit for a response: git's reason (GitFailed: without the server's
    paths) or a domain message; a file-system error names paths, so only its kind is
    said and the log has the rest."""
    if isinstance(exc, OSError) and not isinstance(exc, GitFailed):
        log.warning("answered without its details: %r", exc)
        return f"{type(exc).__name__} (the server log has the details)"
    return str(exc)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or []
        self.headers = headers or {}

    def response(self) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": self.message}
        if self.fields:
            body["fields"] = self.fields
        response = jsonify(body)
        response.headers.update(self.headers)
        return response, self.status


# Each domain error kind answers with one status, here and nowhere else.
_STATUS: tuple[tuple[type[RitmoError], int], ...] = (
    (NotFound, 404),
    (Invalid, 422),
    (Refused, 409),
    (Forbidden, 403),
    (Unavailable, 503),
)


def status_of(exc: RitmoError) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 400)


def from_domain(exc: RitmoError) -> ApiError:
    """The one mapping from a domain refusal to its HTTP answer."""
    fields = [{"field": exc.field, "message": exc.message}] if exc.field else None
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return ApiError(status_of(exc), exc.message, fields, headers)


def invalid_fields(exc: ValidationError, status: int = 422) -> ApiError:
    fields: list[dict[str, str]] = []
    for err in exc.errors():
        # Union members and dict keys add loc parts ("str", "[key]") that name no field.
        loc = [str(p) for p in err["loc"] if p not in _UNION_PARTS]
        field = ".".join(loc) or "body"
        if any(f["field"] == field for f in fields):
            continue
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "is not a known field; remove it"
        elif "[key]" in err["loc"]:
            message = f"key {message[0].lower()}{message[1:]}"
        elif loc and loc[0] in _HINTS:
            message = f"{message}; expected {_HINTS[loc[0]]}"
        fields.append({"field": field, "message": message})
    return ApiError(status, "invalid request: " + ", ".join(f["field"] for f in fields), fields)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        messages = {
            413: "request body is larger than max_body_bytes; send a smaller body",
            404: "no such resource",
            405: "method not allowed here",
        }
        code = exc.code or 500
        return jsonify({"error": messages.get(code, exc.description or exc.name)}), code

    @app.errorhandler(GithubException)
    @app.errorhandler(requests.RequestException)
    def _forge_unavailable(exc: Exception) -> tuple[Response, int]:
        # GitHub down or out of rate limit after the client's own retries: say so, and
        # when to come back; what Ritmo pushed stays and a retry picks it up.
        status = getattr(exc, "status", None)
        app.logger.warning("GitHub call failed: %s", exc)
        body = {
            "error": f"GitHub did not answer as expected ({status or type(exc).__name__}); "
            "retry later"
        }
        return jsonify(body), 503, {"Retry-After": "30"}  # type: ignore[return-value]

    @app.errorhandler(RitmoError)
    def _domain(exc: RitmoError) -> tuple[Response, int]:
        return from_domain(exc).response()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # The details go to the log only: they may name paths or remotes.
        app.logger.exception("unhandled error")
        return jsonify({"error": "internal error; the server log has the details"}), 500
