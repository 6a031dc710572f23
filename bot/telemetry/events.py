"""One info line per thing that happened: a registration, a promotion, a request opened,
merged or closed, a deployment, a rollback. The ids go in the message and, in JSON lines,
as fields of their own (`event`, `artifact_id`, `request_id`, ...), so a log search can
follow one artifact or request without parsing text."""

from __future__ import annotations

import logging

log = logging.getLogger("ritmo.events")


def event(name: str, message: str, **ids: str | int | bool | None) -> None:
    fields = {"event": name, **{k: v for k, v in ids.items() if v is not None}}
    log.info(message, extra={"fields": fields})
