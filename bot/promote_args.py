"""`ritmo promote`'s two forms: ARTIFACT_ID --from F --to T, or APP VERSION --to T."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.client import ApiResponse, RitmoClient


def promote_call(
    client: RitmoClient,
    target: tuple[str, ...],
    from_env: str | None,
    to_env: str,
    correlation_id: str | None,
    **extra: str | None,
) -> Callable[[], ApiResponse]:
    """The API call the arguments ask for; ValueError (a usage message) when they fit
    neither form."""
    fields: dict[str, Any] = {"to": to_env}
    if from_env is not None:
        fields["from"] = from_env
    fields.update({key: value for key, value in extra.items() if value is not None})
    if len(target) == 2:
        app, version = target
        named = {**fields, "app": app, "version": version}
        return lambda: client.promote_by_name(named, correlation_id)
    if len(target) != 1:
        raise ValueError(
            f"promote takes ARTIFACT_ID or APP VERSION, not {len(target)} arguments, "
            "e.g. `ritmo promote web 1.2.3 --to production`"
        )
    if from_env is None:
        raise ValueError(
            "--from is required with an artifact id (or name it by app and version: "
            "`ritmo promote web 1.2.3 --to production`)"
        )
    return lambda: client.promote(target[0], fields, correlation_id)
