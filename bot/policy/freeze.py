"""Freeze windows: a cron start in a time zone plus a duration (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from bot.policy.rules import Freeze

# Standard cron counts days of the week from Sunday = 0 (and 7); APScheduler from Monday.
_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _standard_dow(field: str) -> str:
    """`field` with numeric parts spelled as day names, so APScheduler (Monday = 0, and no
    steps over named ranges) fires on the days standard cron would: `*/2` is Sun,Tue,Thu,Sat."""
    out: list[str] = []
    for part in field.split(","):
        days = _standard_days(part)
        out.extend(days if days is not None else [part])
    return ",".join(dict.fromkeys(out))


def _standard_days(part: str) -> list[str] | None:
    """The days a numeric part (`n`, `a-b`, `*`, each with an optional `/step`) names, or
    None to leave the part to APScheduler (names, and mistakes it reports)."""
    span, _, step = part.partition("/")
    bounds = ["0", "6"] if span == "*" else span.split("-")
    if not all(b.isdigit() for b in bounds) or len(bounds) > 2 or (step and not step.isdigit()):
        return None
    if step and len(bounds) == 1 and span != "*":
        raise ValueError(f"day of week {part!r}: write a range with the step, e.g. 1-5/2")
    first, last = int(bounds[0]), int(bounds[-1])
    if last > 7 or first > last or step == "0" or (span == "*" and not step):
        return None
    return [_DOW_NAMES[d] for d in range(first, last + 1, int(step or 1))]


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
            # Step in UTC: in the hour a DST change repeats, wall-clock 02:30 + 1 minute is
            # 02:31 of the first pass, which led back to the second 02:30 forever.
            step = (start.astimezone(UTC) + timedelta(minutes=1)).astimezone(zone)
            start = trigger.get_next_fire_time(start, step)
    return latest


_DST_SLACK = timedelta(hours=3)


def _wall_clock_end(start: datetime, duration: timedelta, zone: ZoneInfo) -> datetime:
    wall = start.astimezone(zone).replace(tzinfo=None) + duration
    return wall.replace(tzinfo=zone)
