"""What an API view acts through: the runtime `create_app` built, with its type.

One accessor, as the Flask tutorial's `get_db()`, instead of each view reading
`current_app.extensions` and asserting the type itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

if TYPE_CHECKING:
    from bot.runtime import Runtime


def current_runtime() -> Runtime:
    """The runtime of the app handling this request."""
    return cast("Runtime", current_app.extensions["ritmo"])
