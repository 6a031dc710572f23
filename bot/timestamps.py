"""The one timestamp format Ritmo writes: UTC to the second, e.g. 2026-11-26T01:02:03Z."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(FORMAT)


def stamp_epoch(seconds: float) -> str:
    """A git commit time (or any epoch seconds) in that format."""
    return datetime.fromtimestamp(seconds, UTC).strftime(FORMAT)
