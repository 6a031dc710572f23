"""`ritmo token create|list|revoke`: admin commands that act on the database directly.

They run where Ritmo's settings are (the same database_url as the server), need no token
and no running server. Secrets are printed once, at creation; nothing shows them again.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from sqlalchemy.exc import SQLAlchemyError

from bot.auth import Scope, TokenError, reserved_names
from bot.cli.errors import EXIT_REFUSED, fail
from bot.cli.options import settings_from
from bot.cli.tables import table as print_table
from bot.store.tokens import TokenInfo, TokenStore


@click.group()
def token() -> None:
    """Manage API tokens (in the database; every replica sees them at once)."""


def _store(ctx: click.Context) -> TokenStore:
    from bot.store.schema import make_engine
    from bot.store.token_import import TokenFileError, import_tokens_file

    settings = settings_from(ctx)
    github = settings.forge.github
    if settings.database_url is None and not settings.data_dir.is_dir():
        # A new empty database here would hold tokens no server reads.
        fail(
            f"no data directory at {settings.data_dir.resolve()} (setting data_dir, "
            "RITMO_DATA_DIR); run this where `ritmo serve` runs, or point data_dir or "
            "database_url at the server's"
        )
    try:
        store = TokenStore(
            make_engine(settings.index_url),
            reserved_names(settings.forge.kind, github.bot_login),
        )
        import_tokens_file(store, settings.tokens_file)  # what the server would do first
    except (SQLAlchemyError, ImportError) as exc:
        why = " ".join(str(exc).split())[:200]
        fail(f"setting database_url (RITMO_DATABASE_URL): cannot open the database ({why})")
    except TokenFileError as exc:
        fail(str(exc))
    return store


@token.command("create")
@click.option("--name", required=True, help="Who uses the token; it is their identity.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice([s.value for s in Scope]),
    help="Repeat for several scopes.",
)
@click.option("--group", "groups", multiple=True, help="Approver group; repeat for several.")
@click.pass_context
def token_create(
    ctx: click.Context, name: str, scopes: tuple[str, ...], groups: tuple[str, ...]
) -> None:
    """Create a token. It is printed once, as the last line; only its hash is stored."""
    try:
        value = _store(ctx).create(name, list(scopes), list(groups))
    except TokenError as exc:
        fail(str(exc))
    click.echo(f"Created token {name!r} with scopes {', '.join(scopes)}; it is not shown again:")
    click.echo(value)


@token.command("list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """List tokens: name, scopes, groups, created, last used (never the secret)."""
    found = _store(ctx).all()
    for line in table(found):
        click.echo(line)
    click.echo(f"({len(found)} token{'' if len(found) == 1 else 's'})")


@token.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Delete the token NAME (any case): its next request is refused, on every replica."""
    try:
        gone = _store(ctx).revoke(name)
    except TokenError as exc:
        fail(str(exc), EXIT_REFUSED)
    click.echo(f"Revoked token {gone.name!r} ({', '.join(gone.scopes)})")


def table(tokens: Sequence[TokenInfo]) -> list[str]:
    """An aligned table, one token a line."""
    rows = [
        (
            t.name,
            ",".join(t.scopes),
            ",".join(t.groups) or "-",
            t.created_at or "-",
            t.last_used_at or "never",
        )
        for t in tokens
    ]
    return print_table(("NAME", "SCOPES", "GROUPS", "CREATED", "LAST USED"), rows)
