"""Freeze windows: a cron start in a time zone plus a duration (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from bot.policy.model import Freeze

# Standard cron counts days of the week from Sunday = 0 (and 7); APScheduler from Monday.
_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _standard_dow(field: str) -> str:
    def one(token: str) -> str:
        return _DOW_NAMES[int(token)] if token.isdigit() and int(token) <= 7 else token

    out = []
    for part in field.split(","):
        step = ""
        if "/" in part:
            part, step = part.split("/", 1)
            step = "/" + step
        out.append("-".join(one(t) for t in part.split("-")) + step)
    return ",".join(out)


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """A five-field cron expression with standard day-of-week numbering."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expression!r} needs five fields: minute hour day month weekday")
    minute, hour, day, month, dow = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_standard_dow(dow),
            timezone=ZoneInfo(timezone),
        )
    except ValueError as exc:
        raise ValueError(f"cron {expression!r}: {exc}") from None


def frozen_until(freezes: Iterable[Freeze], now: datetime) -> tuple[datetime, str] | None:
    """When the freeze that covers `now` ends (the latest, if several), and why; else None.

    A window runs in wall-clock time: Friday 16:00 plus 64h ends Monday 08:00 local,
    whether or not the clocks changed over the weekend.
    """
    latest: tuple[datetime, str] | None = None
    for freeze in freezes:
        zone = ZoneInfo(freeze.timezone)
        local_now = now.astimezone(zone)
        trigger = cron_trigger(freeze.cron, freeze.timezone)
        # Look back a little further than the duration: a DST change can stretch a window.
        start = trigger.get_next_fire_time(None, local_now - freeze.duration - _DST_SLACK)
        while start is not None and start <= local_now:
            end = _wall_clock_end(start, freeze.duration, zone)
            if end > local_now and (latest is None or end > latest[0]):
                latest = (end, freeze.reason)
            start = trigger.get_next_fire_time(start, start + timedelta(minutes=1))
    return latest


_DST_SLACK = timedelta(hours=3)


def _wall_clock_end(start: datetime, duration: timedelta, zone: ZoneInfo) -> datetime:
    wall = start.astimezone(zone).replace(tzinfo=None) + duration
    return wall.replace(tzinfo=zone)
