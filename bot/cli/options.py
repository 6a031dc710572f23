"""What the commands share: the settings (admin commands) and the server, token and client
(HTTP-client commands)."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.errors import fail
from bot.client import RitmoClient
from bot.config import ConfigError, Settings, load_settings


def settings_from(ctx: click.Context) -> Settings:
    """The settings `--config` and RITMO_* name, loaded once per run; exit 2 when invalid."""
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except ConfigError as exc:
            fail(str(exc))
    settings: Settings = obj["settings"]
    return settings


def client_for(server: str, token_value: str) -> RitmoClient:
    return RitmoClient(server, token_value)


server_option = click.option(
    "--server", envvar="RITMO_SERVER", required=True, help="Ritmo URL (RITMO_SERVER)."
)
token_option = click.option(
    "--token", "token_value", envvar="RITMO_TOKEN", required=True, help="API token (RITMO_TOKEN)."
)
