"""Router: (event, action) -> handlers, composed from one router per behaviour module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

Handler = Callable[["Event", "HandlerContext"], None]


@dataclass(frozen=True)
class Event:
    """One delivery as handlers see it."""

    name: str  # X-GitHub-Event
    delivery_id: str  # X-GitHub-Delivery
    payload: dict[str, Any]

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def installation_id(self) -> int | None:
        installation = self.payload.get("installation")
        if isinstance(installation, dict) and isinstance(installation.get("id"), int):
            return int(installation["id"])
        return None


class Router:
    def __init__(self, *others: Router) -> None:
        self._routes: dict[tuple[str, str | None], list[Handler]] = {}
        for other in others:
            for key, handlers in other._routes.items():
                self._routes.setdefault(key, []).extend(handlers)

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: call the handler for `event` (and only `action`, when given)."""

        def add(handler: Handler) -> Handler:
            self._routes.setdefault((event, action), []).append(handler)
            return handler

        return add

    def handlers(self, event: Event) -> list[Handler]:
        found = list(self._routes.get((event.name, None), []))
        if event.action is not None:
            found += self._routes.get((event.name, event.action), [])
        return found

    def events(self) -> frozenset[str]:
        """Every event name some handler is registered for (the App subscribes to them)."""
        return frozenset(name for name, _action in self._routes)

    def handles(self, event: Event) -> bool:
        return bool(self.handlers(event))

    def dispatch(self, event: Event, context: HandlerContext) -> int:
        """Call every matching handler; returns how many ran."""
        handlers = self.handlers(event)
        for handler in handlers:
            handler(event, context)
        return len(handlers)
