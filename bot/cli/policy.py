"""`ritmo policy check` (a local file, no server) and `ritmo policy apply` (through the API)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.cli.errors import EXIT_REFUSED, checked, fail
from bot.cli.options import client_for, server_option, token_option
from bot.cli.tables import request_line


@click.group("policy")
def policy_commands() -> None:
    """Check promotion policy files; change the policy in force (admin token)."""


@policy_commands.command("apply")
@server_option
@token_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", help="One line, recorded in the commit (Ritmo-Reason).")
@click.option("--correlation-id")
def policy_apply(
    server: str, token_value: str, file: Path, reason: str | None, correlation_id: str | None
) -> None:
    """Make FILE the policy in force: judged by the current policy's policy_changes rule,
    committed at once, or opened as a request for approvers.

    Exit 0: changed, unchanged, or request opened; 1: refused (problems as line:column);
    3: retry later.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: {exc}")
    client = client_for(server, token_value)
    resp = checked(server, lambda: client.apply_policy(text, reason, correlation_id))
    body = resp.body
    if resp.status == 202:
        click.echo(request_line(body["request"]))
    elif body["status"] == "unchanged":
        click.echo(f"unchanged: {file} is already the policy in force ({body['policy'][:12]})")
    else:
        click.echo(f"changed: {file} is the policy in force (commit {body['commit']})")


@policy_commands.command("check")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def policy_check(file: Path | None) -> None:
    """Validate FILE (default: ./.ritmo/policy.yaml, else the shipped default policy).

    Prints every problem as file:line:column: message and exits 1; exits 0 when valid,
    with a warning on stderr for what is likely not meant (no apps declared).
    """
    from bot.policy.advice import warnings
    from bot.policy.load import (
        BRANCH_POLICY_PATH,
        DEFAULT_POLICY_PATH,
        PolicyError,
        load_policy_bytes,
    )

    if file is None:
        local = Path(BRANCH_POLICY_PATH)
        file = local if local.is_file() else DEFAULT_POLICY_PATH
    try:
        checked = load_policy_bytes(file.read_bytes(), str(file))
    except OSError as exc:
        fail(f"{file}: {exc.strerror}")
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        sys.exit(EXIT_REFUSED)
    for warning in warnings(checked):  # stderr: stdout stays the one ok line
        click.echo(f"warning: {file}: {warning}", err=True)
    envs, rules = len(checked.environments), len(checked.promotion_rules)
    click.echo(
        f"{file}: ok ({envs} environment{'s' * (envs != 1)}, "
        f"{rules} promotion rule{'s' * (rules != 1)})"
    )
