"""The `ritmo` command: serve, init, token, artifact, reindex, keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import requests

from bot.auth import Scope, TokenError, TokenStore
from bot.config import ConfigError, Settings, load_settings

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"ritmo: {message}", err=True)
    sys.exit(code)


def _settings(ctx: click.Context) -> Settings:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except ConfigError as exc:
            _fail(str(exc))
    settings: Settings = obj["settings"]
    return settings


@click.group()
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


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the server (gunicorn). With nothing configured, it sets itself up in ./.ritmo/."""
    from bot.embedded import create_first_tokens, prepare_embedded, seed_embedded
    from bot.runtime import build_runtime
    from bot.server import run_gunicorn

    settings = _settings(ctx)
    try:
        notes = prepare_embedded(settings)
        runtime = build_runtime(settings)
        seed_embedded(runtime)
        notes += create_first_tokens(settings)
    except ConfigError as exc:
        _fail(str(exc))
    for line in notes:
        click.echo(line)
    click.echo(f"Ritmo listening on http://{settings.listen}")
    sys.stdout.flush()
    run_gunicorn(settings)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def init(path: Path) -> None:
    """Write the manifests-repo scaffold (an example app with three overlays) into PATH."""
    from bot.scaffold import write_scaffold

    try:
        written = write_scaffold(path)
    except FileExistsError as exc:
        _fail(str(exc))
    click.echo(f"Wrote {len(written)} files to {path}. Render one with:")
    click.echo(f"  kubectl kustomize {path / 'apps/web/overlays/dev'}")


@main.group()
def token() -> None:
    """Manage API tokens."""


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
    settings = _settings(ctx)
    try:
        value = TokenStore(settings.tokens_file).create(name, list(scopes), list(groups))
    except TokenError as exc:
        _fail(str(exc))
    click.echo(f"Created token {name!r} with scopes {', '.join(scopes)}; it is not shown again:")
    click.echo(value)


def _client(server: str, token_value: str) -> Any:
    from bot.client import RitmoClient

    return RitmoClient(server, token_value)


_server_option = click.option(
    "--server", envvar="RITMO_SERVER", required=True, help="Ritmo URL (RITMO_SERVER)."
)
_token_option = click.option(
    "--token", "token_value", envvar="RITMO_TOKEN", required=True, help="API token (RITMO_TOKEN)."
)


@main.group()
def artifact() -> None:
    """Register and read artifacts."""


@artifact.command("push")
@_server_option
@_token_option
@click.option("--file", "file_", type=click.File("r"), help="JSON file of fields ('-': stdin).")
@click.option("--name")
@click.option("--version")
@click.option("--build-id")
@click.option("--storage-url")
@click.option("--image")
@click.option("--checksum")
@click.option("--metadata", "meta", multiple=True, help="KEY=VALUE; repeat.")
@click.option("--signature-file", type=click.File("r"), help="Armoured detached signature.")
@click.option("--correlation-id")
def artifact_push(
    server: str,
    token_value: str,
    file_: Any,
    name: str | None,
    version: str | None,
    build_id: str | None,
    storage_url: str | None,
    image: str | None,
    checksum: str | None,
    meta: tuple[str, ...],
    signature_file: Any,
    correlation_id: str | None,
) -> None:
    """Register an artifact. Exit 0: recorded; 1: refused (fix the input); 3: retry later."""
    fields: dict[str, Any] = json.load(file_) if file_ else {}
    if not isinstance(fields, dict):
        _fail("--file must hold a JSON object")
    flags = {
        "name": name,
        "version": version,
        "build_id": build_id,
        "storage_url": storage_url,
        "image": image,
        "checksum": checksum,
    }
    fields.update({k: v for k, v in flags.items() if v is not None})
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--metadata {item!r}: use KEY=VALUE")
        fields.setdefault("metadata", {})[key] = value
    if signature_file:
        fields["signature"] = signature_file.read()
    try:
        resp = _client(server, token_value).register_artifact(fields, correlation_id)
    except requests.RequestException as exc:
        _fail(f"cannot reach {server}: {exc}", EXIT_UNAVAILABLE)
    if not resp.ok:
        code = EXIT_UNAVAILABLE if resp.status >= 500 else EXIT_REFUSED
        _fail(f"refused ({resp.status}): {resp.error_text()}", code)
    state = "recorded" if resp.status == 201 else "already recorded"
    click.echo(f"{state}: {resp.body['id']} {resp.body['name']} {resp.body['version']}")
    click.echo(f"commit: {resp.body['commit']}")


@artifact.command("show")
@_server_option
@_token_option
@click.argument("artifact_id")
def artifact_show(server: str, token_value: str, artifact_id: str) -> None:
    """Print one artifact record as JSON."""
    resp = _client(server, token_value).get_artifact(artifact_id)
    if not resp.ok:
        _fail(f"({resp.status}) {resp.error_text()}", EXIT_REFUSED)
    click.echo(json.dumps(resp.body, indent=2))


@artifact.command("list")
@_server_option
@_token_option
@click.option("--name")
@click.option("--version")
@click.option("--promotion-status")
@click.option("--page", type=int, default=1)
@click.option("--json", "as_json", is_flag=True)
def artifact_list(
    server: str,
    token_value: str,
    name: str | None,
    version: str | None,
    promotion_status: str | None,
    page: int,
    as_json: bool,
) -> None:
    """List artifacts, newest first."""
    resp = _client(server, token_value).list_artifacts(
        name=name, version=version, promotion_status=promotion_status, page=page
    )
    if not resp.ok:
        _fail(f"({resp.status}) {resp.error_text()}", EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    click.echo(f"{'ID':26} {'NAME':20} {'VERSION':16} {'STATUS':12} CREATED")
    for item in resp.body["items"]:
        click.echo(
            f"{item['id']:26} {item['name']:20} {item['version']:16} "
            f"{item['promotion_status']:12} {item['created_at']}"
        )
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


@main.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the index from the manifests repository's history alone."""
    from bot.runtime import open_index, open_mirror
    from bot.store.reindex import reindex as rebuild

    settings = _settings(ctx)
    try:
        mirror = open_mirror(settings)
        mirror.check_reachable()
        count = rebuild(open_index(settings), mirror)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"Indexed {count} artifact records from {settings.remote_url}")


@main.group("policy")
def policy_commands() -> None:
    """Check promotion policy files."""


@policy_commands.command("check")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def policy_check(file: Path | None) -> None:
    """Validate FILE (default: ./.ritmo/policy.yaml, else the shipped default policy).

    Prints every problem as file:line:column: message and exits 1; exits 0 when valid.
    """
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
        _fail(f"{file}: {exc.strerror}")
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        sys.exit(EXIT_REFUSED)
    envs, rules = len(checked.environments), len(checked.promotion_rules)
    click.echo(
        f"{file}: ok ({envs} environment{'s' * (envs != 1)}, "
        f"{rules} promotion rule{'s' * (rules != 1)})"
    )


@main.group()
def keys() -> None:
    """The key Ritmo signs commits with."""


@keys.command("export")
@click.pass_context
def keys_export(ctx: click.Context) -> None:
    """Print the armoured public key (for ArgoCD's GnuPG keys or Flux's verify secret)."""
    from bot.runtime import signing_key

    try:
        click.echo(signing_key(_settings(ctx)).export_public_key(), nl=False)
    except ConfigError as exc:
        _fail(str(exc))
