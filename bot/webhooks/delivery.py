"""Accepting a GitHub delivery from its HTTP parts, without I/O (like gidgethub's
`Event.from_http`): the headers, the raw body and the secret give an `Event`, or a
domain error naming the header or the body at fault.

The signature is checked before anything else is read, so `authenticate` is apart:
the receiver learns a delivery is signed before it parses the rest."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Protocol

from bot.errors import Forbidden, Invalid
from bot.webhooks.router import Event
from bot.webhooks.verify import valid_signature

SIGNATURE = "X-Hub-Signature-256"
EVENT = "X-GitHub-Event"
DELIVERY = "X-GitHub-Delivery"
DELIVERY_ID_MAX = 128  # GitHub's are UUIDs; the queue keys on it

HEADERS_REQUIRED = f"{EVENT} and {DELIVERY} headers are required"


class Headers(Protocol):
    """A request's headers: a dict, or the web framework's own (Werkzeug's Headers)."""

    def get(self, key: str) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def header(headers: Headers, name: str) -> str | None:
    """`name`'s value, whatever its case (HTTP header names are case-insensitive)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


def authenticate(headers: Headers, body: bytes, secret: str) -> None:
    """Raise Forbidden unless X-Hub-Signature-256 is `body`'s HMAC under `secret`."""
    # An empty secret would let anyone sign; the receiver refuses to run without one.
    if not secret or not valid_signature(secret, body, header(headers, SIGNATURE)):
        raise Forbidden(f"{SIGNATURE} is missing or does not match the body", field=SIGNATURE)


def parse(headers: Headers, body: bytes) -> Event:
    """The delivery a signed request carries; Invalid names the header or body at fault."""
    name = header(headers, EVENT) or ""
    delivery = header(headers, DELIVERY) or ""
    if not name:
        raise Invalid(HEADERS_REQUIRED, field=EVENT)
    if not delivery or len(delivery) > DELIVERY_ID_MAX:
        raise Invalid(HEADERS_REQUIRED, field=DELIVERY)
    try:
        # UTF-8 only, as GitHub sends it: json.loads would also take UTF-16 and UTF-32,
        # which the queue (it stores the body as UTF-8 text) then cannot.
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise Invalid("body is not valid JSON: nested too deeply", field="body") from None
    if not isinstance(payload, dict):
        raise Invalid("body must be a JSON object", field="body")
    return Event(name, delivery, payload)


def from_http(headers: Headers, body: bytes, secret: str) -> Event:
    """A signed, well-formed delivery; Forbidden when unsigned, Invalid when malformed."""
    authenticate(headers, body, secret)
    return parse(headers, body)
