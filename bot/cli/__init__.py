"""The `ritmo` command: serve, init, token, artifact, promote, approve, status, reindex, keys.

Admin commands (admin, tokens, doctor, github_app, verify, policy check) act where the
settings are; HTTP-client commands (artifacts, remote, policy apply) call a running server.
Exit codes: bot/cli/errors.py.

Each command's module is imported when the command is asked for: `ritmo verify` in a CI
job need not import the server, the token store and the GitHub client (about a second).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

# name -> (module, attribute), in the order `ritmo --help` used to list them.
_COMMANDS = {
    "serve": ("bot.cli.admin", "serve"),
    "init": ("bot.cli.admin", "init"),
    "reindex": ("bot.cli.admin", "reindex"),
    "keys": ("bot.cli.admin", "keys"),
    "token": ("bot.cli.tokens", "token"),
    "github-app": ("bot.cli.github_app", "github_app"),
    "doctor": ("bot.cli.doctor", "doctor"),
    "verify": ("bot.cli.verify", "verify"),
    "policy": ("bot.cli.policy", "policy_commands"),
    "artifact": ("bot.cli.artifacts", "artifact"),
    "promote": ("bot.cli.remote", "promote"),
    "approve": ("bot.cli.remote", "approve"),
    "status": ("bot.cli.remote", "status"),
    "deployments": ("bot.cli.remote", "deployment_commands"),
    "rollback": ("bot.cli.remote", "rollback"),
    "outbox": ("bot.cli.remote", "outbox_commands"),
    "audit": ("bot.cli.remote", "audit"),
}


class _LazyCommands(dict[str, click.Command]):
    """The group's commands, each imported on first use."""

    def __missing__(self, name: str) -> click.Command:
        if name not in _COMMANDS:
            raise KeyError(name)
        module, attribute = _COMMANDS[name]
        command: click.Command = getattr(importlib.import_module(module), attribute)
        _config_after_the_command(command)
        self[name] = command
        return command

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in _COMMANDS or super().__contains__(name)


class _Commands(click.Group):
    """Every command: an unreachable server or a domain error is one line and its exit code,
    not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from bot.cli.errors import domain_exits

        with domain_exits():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_COMMANDS, *self.commands.keys()})


@click.group(cls=_Commands)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    envvar="RITMO_CONFIG",
    help="YAML settings file (RITMO_CONFIG). RITMO_<KEY> variables override it.",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Ritmo: CI registers artifacts; Ritmo records them as signed commits."""
    ctx.ensure_object(dict)["config"] = config


main.commands = _LazyCommands()


def _remember_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.find_root().ensure_object(dict)["config"] = value


def _config_after_the_command(command: click.Command) -> None:
    """`ritmo serve --config f` works as `ritmo --config f serve` does."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _config_after_the_command(sub)
    elif not any(param.name == "config" for param in command.params):
        command.params.append(
            click.Option(
                ["--config"],
                type=click.Path(path_type=Path),
                expose_value=False,
                callback=_remember_config,
                help="YAML settings file (as `ritmo --config`).",
            )
        )
