"""What every part of the policy model shares: the strict base model, durations, and
problems located at the path of the key or value at fault.

Every problem carries its path (e.g. `("promotion_rules", 1, "to")`), so a loader can
point at its line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")

Loc = tuple[str | int, ...]
"""A path into the policy document, as pydantic reports it: keys and list indexes."""

RULE_ERROR = "policy_rule"
COHERENCE_ERROR = "policy_coherence"
"""The pydantic error type of the problems `Policy` finds across fields."""


def located_error(
    title: str, problems: Sequence[tuple[Loc, str]], kind: str = RULE_ERROR
) -> ValidationError:
    """One ValidationError holding every (path, message) problem at its own path.

    Raised from a model validator, pydantic keeps the paths (prefixed with where the
    model sits), so the errors point at the offending key instead of the whole model.
    """
    details: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError(kind, "{message}", {"message": message}),
            "loc": loc,
            "input": None,
        }
        for loc, message in problems
    ]
    return ValidationError.from_exception_data(title, details)


def parse_duration(value: object) -> timedelta:
    """'7d', '64h', '1d12h', '30m', '90s' -> timedelta; numbers are seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) and value else None
    if not match or not any(match.groupdict().values()):
        raise ValueError(f"{value!r} is not a duration; write e.g. 7d, 64h, 1d12h or 30m")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


class StrictModel(BaseModel):
    """A part of the policy: unknown keys refused, frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def dotted(loc: Loc) -> str:
    """("promotion_rules", 1, "to") -> "promotion_rules[1].to"."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
