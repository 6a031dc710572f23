"""What a signed, well-formed delivery is answered, queuing it when a handler wants it.

The one decision behind both receivers of POST /webhooks/github: the WSGI fast path
(bot/api/webhook_ack.py) and the Flask view (bot/api/webhooks.py). Its only I/O is the
queue's insert (grouped with the deliveries that arrive beside it, committed to disk)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.webhooks.router import Event

# Events about the App's installations are tracked whichever installation sent them.
EVERY_INSTALLATION = frozenset({"installation", "installation_repositories"})


class Queue(Protocol):
    def accept(self, delivery_id: str, event: str, payload: str) -> bool: ...


class Handles(Protocol):
    def handles(self, event: Event) -> bool: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    queued: bool = False  # the worker is to be woken once this answer is sent


def acknowledge(
    event: Event, body: bytes, installation: int | None, router: Handles, queue: Queue
) -> Answer:
    """`event` (signed, `body` its raw bytes) answered: pong, ignored, duplicate or queued."""
    name, delivery, payload = event.name, event.delivery_id, event.payload
    if name == "ping":
        return Answer(200, {"status": "pong", "zen": payload.get("zen")})
    if name not in EVERY_INSTALLATION and event.installation_id not in (None, installation):
        # Another installation of the same app: not the manifests repository Ritmo serves.
        return Answer(202, {"status": "ignored", "installation": event.installation_id})
    if not router.handles(event):
        return Answer(202, {"status": "ignored", "event": name, "action": payload.get("action")})
    if not queue.accept(delivery, name, body.decode()):
        return Answer(200, {"status": "duplicate", "delivery": delivery})
    return Answer(202, {"status": "queued", "delivery": delivery}, queued=True)
