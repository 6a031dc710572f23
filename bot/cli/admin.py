"""Admin commands that run where Ritmo's settings are, with no server: serve, init,
reindex, keys export. (token, doctor, github-app and verify have modules of their own.)"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from bot.cli.errors import fail
from bot.cli.options import settings_from
from bot.config import ConfigError


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the server (gunicorn). With nothing configured, it sets itself up in ./.ritmo/."""
    from bot.app import configure_logging
    from bot.embedded import create_first_tokens, prepare_embedded, seed_embedded
    from bot.listen import check_listen
    from bot.runtime import build_runtime
    from bot.server import run_gunicorn
    from bot.telemetry.logs import console_line

    settings = settings_from(ctx)
    configure_logging(settings)  # the master's lines too, in log_format
    try:
        check_listen(settings.listen)  # before anything is created
        notes = prepare_embedded(settings)
        runtime = build_runtime(settings)
        try:
            seed_embedded(runtime)
        finally:
            runtime.close()  # each worker builds its own after the fork
        notes += create_first_tokens(settings)
    except ConfigError as exc:
        fail(str(exc))
    # The check above may have indexed a large history. Drop what it left before forking,
    # and freeze the rest out of the collector's reach: otherwise every worker's first
    # collections walk (and so copy, page by page) the master's heap, and its first
    # requests are slower the larger the repository.
    del runtime
    gc.collect()
    gc.freeze()
    for line in [*notes, f"Ritmo listening on http://{settings.listen}"]:
        click.echo(console_line(line, settings.log_format))
    sys.stdout.flush()
    run_gunicorn(settings)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
def init(path: Path) -> None:
    """Write the manifests-repo scaffold (an example app with three overlays) into PATH."""
    from bot.scaffold import write_scaffold

    try:
        written = write_scaffold(path)
    except FileExistsError as exc:
        fail(str(exc))
    click.echo(f"Wrote {len(written)} files to {path}. Render one with:")
    click.echo(f"  kubectl kustomize {path / 'apps/web/overlays/dev'}")


@click.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the index from the manifests repository's history alone."""
    from bot.deploy.ledger import rebuild_ledger
    from bot.deploy.records import LEDGER_BRANCH
    from bot.policy.load import PolicyError
    from bot.runtime import open_index, open_mirror, policy_source, signing_key
    from bot.store.deployments import DeploymentIndex
    from bot.store.reindex import reindex as rebuild
    from bot.store.request_index import RequestIndex

    settings = settings_from(ctx)
    try:
        mirror = open_mirror(settings)
        mirror.check_reachable()
        # New records stand in the first environment of the policy in force.
        policy = policy_source(settings, signing_key(settings), mirror)
        with mirror.locked():
            policy.refresh(mirror.fetch())
        index = open_index(settings, policy)
        count = rebuild(index, mirror, RequestIndex(index.engine))
        deployed = rebuild_ledger(
            DeploymentIndex(index.engine), open_mirror(settings, LEDGER_BRANCH)
        )
    except ConfigError as exc:
        fail(str(exc))
    except PolicyError as exc:
        fail(f"the policy in force is invalid: {' | '.join(str(p) for p in exc.problems)}")
    click.echo(f"Indexed {count} artifact records from {settings.remote_url}")
    click.echo(f"Indexed {deployed} deployments from its {LEDGER_BRANCH} branch")


@click.group()
def keys() -> None:
    """The key Ritmo signs commits with."""


@keys.command("export")
@click.pass_context
def keys_export(ctx: click.Context) -> None:
    """Print the armoured public key (for ArgoCD's GnuPG keys or Flux's verify secret)."""
    from bot.runtime import signing_key

    try:
        click.echo(signing_key(settings_from(ctx)).export_public_key(), nl=False)
    except ConfigError as exc:
        fail(str(exc))
