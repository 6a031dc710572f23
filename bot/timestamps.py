"""Ritmo's timestamps: one format it writes (UTC to the second, e.g. 2026-11-26T01:02:03Z)
and one parser for what it reads (ISO 8601 from GitHub, CD engines, records and the
command line). Naive times are taken as UTC; every parsed result is aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(FORMAT)


def stamp_epoch(seconds: float) -> str:
    """A git commit time (or any epoch seconds) in that format."""
    return datetime.fromtimestamp(seconds, UTC).strftime(FORMAT)


def parse(value: str) -> datetime:
    """`value` as an aware datetime; raises ValueError naming the text when it is no time."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_or_none(value: Any) -> datetime | None:
    """`parse` for values that may be missing or malformed (stored records, payloads)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parse(str(value))
    except ValueError:
        return None
