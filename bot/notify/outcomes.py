"""What a target's response means for its delivery: delivered, retry later, or dead.

- 2xx: delivered.
- 408, 429, 5xx, and a 403 that is GitHub's rate limit (Retry-After, or
  X-RateLimit-Remaining: 0): retry later, no sooner than the response's Retry-After
  (seconds or an HTTP date) or X-RateLimit-Reset.
- any other status (other 4xx, 3xx: redirects are not followed): dead at once; retrying
  cannot help.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

RETRYABLE = frozenset({408, 429})
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    status: Literal["delivered", "retry", "dead"]
    detail: str
    retry_after: float | None = None  # seconds: wait at least this long


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or X-RateLimit-Reset."""
    value = headers.get("Retry-After")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when: datetime = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now)
    if headers.get("X-RateLimit-Remaining") == "0":
        reset = headers.get("X-RateLimit-Reset", "")
        if reset.isdigit():
            return max(0.0, float(reset) - now)
    return None


def _detail(status: int, body: str) -> str:
    message = body.strip()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("message", "error", "detail"):
            if isinstance(parsed.get(key), str):
                message = parsed[key]
                break
    message = " ".join(message.split())[:_DETAIL_CHARS]
    return f"HTTP {status}" + (f": {message}" if message else "")


def classify(status: int, headers: Mapping[str, str], body: str, now: float) -> Outcome:
    """What a response means for the delivery (see the module docstring)."""
    if 200 <= status < 300:
        return Outcome("delivered", f"HTTP {status}")
    wait = retry_after(headers, now)
    detail = _detail(status, body)
    if status in RETRYABLE or status >= 500:
        return Outcome("retry", detail, wait)
    rate_limited = "Retry-After" in headers or headers.get("X-RateLimit-Remaining") == "0"
    if status == 403 and rate_limited:
        return Outcome("retry", detail + " (rate limited)", wait)
    if 300 <= status < 400:
        where = headers.get("Location", "elsewhere")
        return Outcome(
            "dead", f"HTTP {status}: redirected to {where}; point the integration at the final URL"
        )
    return Outcome("dead", detail)
