"""One error vocabulary for the domain: what went wrong, never which HTTP status says so.

The domain raises these; `bot/api/errors.py` maps each kind to a status once and
`bot/cli` maps each to an exit code once. `field` names the input at fault, when one is.
"""

from __future__ import annotations


class RitmoError(Exception):
    """A refusal the caller can act on; the message says what to change."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(RitmoError):
    """What was named does not exist."""


class Invalid(RitmoError):
    """The input itself is wrong; `field` names it."""


class Refused(RitmoError):
    """The input is well formed, but the current state does not allow it."""


class Forbidden(RitmoError):
    """The caller may not do this."""


class Unavailable(RitmoError):
    """A part Ritmo needs did not answer in time; nothing was changed, retry later."""

    def __init__(self, message: str, *, retry_after: int = 5, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after
