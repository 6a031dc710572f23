"""JSON log lines with the correlation id and the delivery id; secrets masked in every line.

The ids live in context variables: a Flask before_request hook (correlation.bind) sets
the correlation id from X-Correlation-ID, or a generated one; the webhook worker sets the
delivery id while it handles a delivery. Every line goes through `redact`, which masks
the shapes of Ritmo's secrets (API tokens, bearer and basic credentials, PEM private
keys, GitHub tokens, JWTs, credentials in URLs) and the configured secret values
(`add_secrets`, fed from Settings by `secrets_of`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bot.config import Settings

correlation_id: ContextVar[str | None] = ContextVar("ritmo_correlation_id", default=None)
delivery_id: ContextVar[str | None] = ContextVar("ritmo_delivery_id", default=None)

MASK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A PEM private key, or what is left of one when a message was cut short.
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        "[REDACTED PRIVATE KEY]",
    ),
    (re.compile(r"\britmo_[A-Za-z0-9_-]{4,}"), "ritmo_" + MASK),  # Ritmo API tokens
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.I), r"\1 " + MASK),
    # token=..., "secret": "...", X-Ritmo-Token: ...
    (
        re.compile(r"((?:token|secret|password)[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;]{8,}", re.I),
        r"\1" + MASK,
    ),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), MASK),  # JWTs
    (re.compile(r"(://)[^/\s:@]+:[^/\s@]+@"), r"\1" + MASK + "@"),  # user:secret@host
]

_secrets_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_literal: re.Pattern[str] | None = None
MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words; settings ask for 16+


def add_secrets(values: Iterable[str | None]) -> None:
    """Mask these exact values from now on, in every line of this process."""
    global _secrets, _literal
    with _secrets_lock:
        more = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        if more <= _secrets:
            return
        _secrets = _secrets | more
        ordered = sorted(_secrets, key=len, reverse=True)
        _literal = re.compile("|".join(re.escape(v) for v in ordered))


def secrets_of(settings: Settings) -> list[str | None]:
    """The configured secret values: tokens, the webhook secrets, the private key."""
    gh = settings.forge.github
    found: list[str | None] = [
        settings.manifests.token,
        gh.webhook_secret,
        settings.cd.argocd_token,
        settings.cd.flux_secret,
        *settings.notify.secrets.values(),
    ]
    if gh.private_key:
        found.append(gh.private_key)
        found.append(gh.private_key.strip())
        # Each line of the key's body, so a piece of it is masked too.
        found += [line.strip() for line in gh.private_key.splitlines() if "-----" not in line]
    return found


def redact(text: str) -> str:
    literal = _literal
    if literal is not None:
        text = literal.sub(MASK, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def bound(*, correlation: str | None = None, delivery: str | None = None) -> Iterator[None]:
    """Lines logged inside carry these ids."""
    tokens = []
    if correlation is not None:
        tokens.append((correlation_id, correlation_id.set(correlation)))
    if delivery is not None:
        tokens.append((delivery_id, delivery_id.set(delivery)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message (other handlers see the masked text too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, correlation_id, delivery_id,
    the record's `fields` (ids, an access line's route and status), exc_info; every
    string masked."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        did = getattr(record, "delivery_id", None) or delivery_id.get()
        if cid:
            line["correlation_id"] = redact(str(cid))
        if did:
            line["delivery_id"] = redact(str(did))
        for key, value in getattr(record, "fields", {}).items():  # e.g. an access line's
            line.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_info:
            line["exc_info"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            line["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def console_line(text: str, log_format: Literal["json", "text"]) -> str:
    """A line `ritmo serve` prints for the person who started it (the first tokens, where
    it listens): as it is, or as a JSON line like the logs. Not masked: it is meant to be
    read, once."""
    if log_format == "text":
        return text
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "logger": "ritmo.serve",
        "message": text,
    }
    return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic text line, with the ids, masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        cid, did = correlation_id.get(), delivery_id.get()
        ids = "".join(
            f" [{k}={v}]" for k, v in (("correlation_id", cid), ("delivery_id", did)) if v
        )
        record.ids = ids
        return redact(super().format(record))


def configure_logging(
    log_format: Literal["json", "text"] = "json",
    level: int = logging.INFO,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Replace Ritmo's handler on the root logger (calling it again is harmless)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "ritmo", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.ritmo = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's own lines (starting, booting a worker, a worker timing out) as JSON lines on
    stderr. Its access log is off then: Ritmo writes one access line per request instead,
    with the route, status, duration and correlation id (bot/telemetry/middleware.py)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"redact": {"()": RedactingFilter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": []},  # each worker sets up its own
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
