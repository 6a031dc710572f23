"""The `ritmo` command: serve, init, token, artifact, promote, approve, status, reindex, keys.

Admin commands (admin, tokens, doctor, github_app, verify, policy check) act where the
settings are; HTTP-client commands (artifacts, remote, policy apply) call a running server.
Exit codes: bot/cli/errors.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bot.cli import admin, artifacts, policy, remote
from bot.cli.doctor import doctor
from bot.cli.errors import domain_exits
from bot.cli.github_app import github_app
from bot.cli.tokens import token
from bot.cli.verify import verify


class _Commands(click.Group):
    """Every command: an unreachable server or a domain error is one line and its exit code,
    not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        with domain_exits():
            return super().invoke(ctx)


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


for _command in (
    admin.serve,
    admin.init,
    admin.reindex,
    admin.keys,
    token,
    github_app,
    doctor,
    verify,
    policy.policy_commands,
    artifacts.artifact,
    remote.promote,
    remote.approve,
    remote.status,
    remote.deployment_commands,
    remote.rollback,
    remote.outbox_commands,
    remote.audit,
):
    main.add_command(_command)


def _remember_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.find_root().ensure_object(dict)["config"] = value


def _config_after_the_command(group: click.Group) -> None:
    """`ritmo serve --config f` works as `ritmo --config f serve` does."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _config_after_the_command(command)
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


_config_after_the_command(main)
