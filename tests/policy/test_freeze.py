"""policy/freeze.py as a table: cron day-of-week numbering and when freeze windows end.

Times are written in UTC; the comments give the local wall clock the window is defined in.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.policy.freeze import cron_trigger, frozen_until
from bot.policy.rules import Freeze


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def weekdays(dow: str) -> list[str]:
    """The days of one week (from Sunday 2026-01-04) that `0 0 * * dow` fires on."""
    trigger = cron_trigger(f"0 0 * * {dow}", "UTC")
    days, fire = [], trigger.get_next_fire_time(None, utc("2026-01-04T00:00:00"))
    while fire is not None and fire < utc("2026-01-11T00:00:00"):
        days.append(fire.strftime("%a"))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(minutes=1))
    return days


@pytest.mark.parametrize(
    ("dow", "days"),
    [
        ("*", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
        # Standard cron: Sunday is 0 and 7 (APScheduler alone would read 0 as Monday).
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1", ["Mon"]),
        ("5", ["Fri"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("5-7", ["Sun", "Fri", "Sat"]),
        ("6-7", ["Sun", "Sat"]),
        ("0,6", ["Sun", "Sat"]),
        # Steps and ranges from Sunday count in standard numbering too.
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("0-5", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0-6", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
        ("0-7", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
        ("6,0-1", ["Sun", "Mon", "Sat"]),
        ("fri", ["Fri"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ],
)
def test_day_of_week_is_standard_cron(dow: str, days: list[str]) -> None:
    assert weekdays(dow) == days


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 16 * *", "needs five fields"),
        ("0 16 * * 5 2026", "needs five fields"),
        ("", "needs five fields"),
        ("61 16 * * 5", "cron '61 16 * * 5'"),
        ("0 24 * * 5", "cron '0 24 * * 5'"),
        ("0 16 * * 8", "cron '0 16 * * 8'"),
        ("0 16 * * 5-1", "cron '0 16 * * 5-1'"),
        ("0 16 * * */0", "cron '0 16 * * */0'"),
        ("0 16 * * 1/2", "write a range with the step, e.g. 1-5/2"),
        ("0 16 * * funday", "cron '0 16 * * funday'"),
    ],
)
def test_cron_refusals_name_the_expression(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        cron_trigger(expression, "UTC")


def test_cron_runs_in_its_time_zone() -> None:
    trigger = cron_trigger("0 16 * * 5", "Europe/Berlin")
    fire = trigger.get_next_fire_time(None, utc("2026-01-01T00:00:00"))
    assert fire is not None and fire.astimezone(UTC) == utc("2026-01-02T15:00:00")


def freeze(cron: str, duration: str, timezone: str = "UTC", reason: str = "") -> Freeze:
    return Freeze(cron=cron, duration=duration, timezone=timezone, reason=reason)


WEEKEND = freeze("0 16 * * 5", "64h", "Europe/Berlin", "weekend")  # Fri 16:00 to Mon 08:00
NIGHTLY = freeze("0 22 * * *", "8h", "UTC", "nightly")


@pytest.mark.parametrize(
    ("freezes", "now", "until"),
    [
        ([], "2026-01-02T15:00:00", None),
        # Winter, CET (UTC+1): Fri 16:00 local is 15:00 UTC; the start is inside the window.
        ([WEEKEND], "2026-01-02T14:59:59", None),
        ([WEEKEND], "2026-01-02T15:00:00", "2026-01-05T07:00:00"),
        ([WEEKEND], "2026-01-04T12:00:00", "2026-01-05T07:00:00"),
        # The end is outside: at Mon 08:00 local promotions go again.
        ([WEEKEND], "2026-01-05T06:59:59", "2026-01-05T07:00:00"),
        ([WEEKEND], "2026-01-05T07:00:00", None),
        # Summer, CEST (UTC+2).
        ([WEEKEND], "2026-07-03T13:59:59", None),
        ([WEEKEND], "2026-07-03T14:00:00", "2026-07-06T06:00:00"),
        # Clocks go forward on Sun 2026-03-29: the window still ends Mon 08:00 local (63h).
        ([WEEKEND], "2026-03-27T15:00:00", "2026-03-30T06:00:00"),
        ([WEEKEND], "2026-03-30T05:59:59", "2026-03-30T06:00:00"),
        ([WEEKEND], "2026-03-30T06:00:00", None),
        # Clocks go back on Sun 2026-10-25: ends Mon 08:00 local again (65h).
        ([WEEKEND], "2026-10-23T14:00:00", "2026-10-26T07:00:00"),
        ([WEEKEND], "2026-10-26T06:59:59", "2026-10-26T07:00:00"),
        ([WEEKEND], "2026-10-26T07:00:00", None),
        # A window across midnight, found from the day after its start.
        ([NIGHTLY], "2026-01-02T05:00:00", "2026-01-02T06:00:00"),
        ([NIGHTLY], "2026-01-02T21:59:00", None),
        # Overlapping windows: the latest end wins, whatever the order they are listed in.
        ([NIGHTLY, WEEKEND], "2026-01-02T23:00:00", "2026-01-05T07:00:00"),
        ([WEEKEND, NIGHTLY], "2026-01-02T23:00:00", "2026-01-05T07:00:00"),
        ([WEEKEND, NIGHTLY], "2026-01-05T06:30:00", "2026-01-05T07:00:00"),
        ([WEEKEND, NIGHTLY], "2026-01-05T07:00:00", None),
        # A window longer than the time between its starts: covered throughout.
        ([freeze("0 0 * * *", "36h")], "2026-01-02T13:00:00", "2026-01-03T12:00:00"),
    ],
)
def test_frozen_until(freezes: list[Freeze], now: str, until: str | None) -> None:
    found = frozen_until(freezes, utc(now))
    if until is None:
        assert found is None
    else:
        assert found is not None
        assert found[0].astimezone(UTC) == utc(until)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging the suite if the code under test loops."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Starts at 02:30 local on Sundays: on 2026-10-25 02:30 happens twice (CEST, then CET),
# on 2026-03-29 not at all (02:00 jumps to 03:00).
SMALL_HOURS = freeze("30 2 * * 0", "1h", "Europe/Berlin", "small hours")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-10-25T00:29:00", None),
        # 02:30 CEST: the first 02:30 has come, the window ends at 03:30 local (CET).
        ("2026-10-25T00:30:00", "2026-10-25T02:30:00"),
        ("2026-10-25T01:45:00", "2026-10-25T02:30:00"),
        ("2026-10-25T02:29:59", "2026-10-25T02:30:00"),
        ("2026-10-25T02:30:00", None),
        # The start that does not exist fires at 03:00 CEST, and the window still ends 03:30.
        ("2026-03-29T00:59:00", None),
        ("2026-03-29T01:00:00", "2026-03-29T01:30:00"),
        ("2026-03-29T01:30:00", None),
    ],
)
def test_a_start_in_a_repeated_or_skipped_hour(now: str, until: str | None) -> None:
    with deadline(5):
        found = frozen_until([SMALL_HOURS], utc(now))
    if until is None:
        assert found is None
    else:
        assert found is not None and found[0].astimezone(UTC) == utc(until)


def test_frozen_until_says_why_and_answers_in_local_time() -> None:
    found = frozen_until([NIGHTLY, WEEKEND], utc("2026-01-02T23:00:00"))
    assert found is not None
    end, reason = found
    assert reason == "weekend"
    assert (end.hour, end.utcoffset()) == (8, timedelta(hours=1))


@pytest.mark.parametrize(
    "now", [utc("2026-01-02T15:30:00"), datetime.fromisoformat("2026-01-02T10:30:00-05:00")]
)
def test_now_in_any_zone(now: datetime) -> None:
    found = frozen_until([WEEKEND], now)
    assert found is not None and found[0].astimezone(UTC) == utc("2026-01-05T07:00:00")


def test_input_model_validates_cron_and_zone() -> None:
    bad: list[dict[str, Any]] = [
        {"cron": "0 16 * *", "duration": "1h"},
        {"cron": "0 16 * * 5", "duration": "1h", "timezone": "Mars/Olympus"},
    ]
    for fields in bad:
        with pytest.raises(ValueError):
            Freeze.model_validate(fields)
