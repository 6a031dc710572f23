"""`ritmo doctor`: one line per check, ok or the fix; exit 0 when all are ok, else 1."""

from __future__ import annotations

import sys

import click

from bot.cli.errors import EXIT_REFUSED


@click.command("doctor")
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check the settings, the remote, the signing key, the policy, the database, the GitHub
    App (installation, branch rules, webhook) and the CD endpoints, in that order."""
    from bot.doctor.run import diagnose

    config = ctx.find_root().obj.get("config")
    failed = False
    for finding in diagnose(config):
        click.echo(finding.line())
        failed = failed or finding.status == "fail"
    sys.exit(EXIT_REFUSED if failed else 0)
