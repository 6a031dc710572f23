"""`ritmo github-app manifest|permissions|create`: register Ritmo's GitHub App with exactly
the permissions and events it uses (bot/github_app/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.cli.errors import EXIT_REFUSED, fail
from bot.config import ConfigError, load_settings
from bot.github_app.manifest import Permission, build_manifest, check_public_url, new_app_page
from bot.github_app.manifest import permissions as needed_permissions

DEFAULT_CONFIG = Path("ritmo.yaml")


def permission_table(rows: tuple[Permission, ...]) -> str:
    width = max(len(p.name) for p in rows)
    lines = [f"{'permission'.ljust(width)}  access  why"]
    lines += [f"{p.name.ljust(width)}  {p.access.ljust(6)}  {p.why}" for p in rows]
    return "\n".join(lines)


def _url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_public_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("github-app")
def github_app() -> None:
    """Register Ritmo's GitHub App: its manifest, its permissions, GitHub's manifest flow."""


@github_app.command("manifest")
@click.option(
    "--url", required=True, callback=_url,
    help="Ritmo's public base URL, where GitHub delivers webhooks: https://ritmo.example.com.",
)  # fmt: skip
@click.option("--name", default="Ritmo", show_default=True, help="The App's name on GitHub.")
@click.option(
    "--workflow-dispatch", is_flag=True,
    help="Add actions: write, for github_workflow integrations without a secret.",
)  # fmt: skip
def manifest_command(url: str, name: str, workflow_dispatch: bool) -> None:
    """Print the App manifest (JSON) on stdout, and why each permission is needed on stderr."""
    manifest = build_manifest(url, name, workflow_dispatch=workflow_dispatch)
    click.echo(json.dumps(manifest, indent=2))
    click.echo(permission_table(needed_permissions(workflow_dispatch)), err=True)


@github_app.command("permissions")
@click.option("--workflow-dispatch", is_flag=True, help="Include actions: write.")
def permissions_command(workflow_dispatch: bool) -> None:
    """Each permission the App needs, its access and why."""
    click.echo(permission_table(needed_permissions(workflow_dispatch)))


@github_app.command("create")
@click.option(
    "--url", required=True, callback=_url,
    help="Ritmo's public base URL, where GitHub delivers webhooks: https://ritmo.example.com.",
)  # fmt: skip
@click.option("--org", help="Register the App on this organization (default: your account).")
@click.option("--name", default="Ritmo", show_default=True, help="The App's name on GitHub.")
@click.option("--key-file", type=click.Path(path_type=Path), help="Where to write the private key.")
@click.option("--port", type=int, default=0, help="Local port for the flow (default: any).")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
@click.option("--no-browser", is_flag=True, help="Only print the local URL to open.")
@click.option("--workflow-dispatch", is_flag=True, help="Include actions: write.")
@click.pass_context
def create_command(
    ctx: click.Context,
    url: str,
    org: str | None,
    name: str,
    key_file: Path | None,
    port: int,
    timeout: float,
    no_browser: bool,
    workflow_dispatch: bool,
) -> None:
    """Run GitHub's manifest flow in a browser; write app_id, the private key file (0600)
    and the webhook secret into the settings file (--config, default ./ritmo.yaml)."""
    from bot.github_app.flow import FlowError, ManifestFlow, convert, write_key, write_settings

    config: Path = ctx.find_root().obj.get("config") or DEFAULT_CONFIG
    try:
        settings = load_settings(config if config.exists() else None)
    except ConfigError as exc:
        fail(str(exc))
    api_url = settings.forge.github.api_url
    manifest = build_manifest(url, name, workflow_dispatch=workflow_dispatch)
    try:
        flow = ManifestFlow(new_app_page(api_url, org), manifest, port)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}")
    try:
        local = flow.start()
        click.echo(f"Open {local} in a browser signed in to GitHub, then name the App.", err=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(local)
        code = flow.wait(timeout)
        credentials = convert(api_url, code)
    except FlowError as exc:
        fail(str(exc), EXIT_REFUSED)
    finally:
        flow.close()
    key_path = key_file or config.parent / f"{credentials.slug}.private-key.pem"
    try:
        write_key(key_path, credentials.pem)
        write_settings(config, credentials, key_path)
    except (OSError, FlowError) as exc:
        # The App exists on GitHub now, and GitHub shows neither secret again: keep them.
        click.echo(f"ritmo: cannot write the settings: {exc}", err=True)
        click.echo(
            f"app_id: {credentials.id}\nwebhook_secret: {credentials.webhook_secret}", err=True
        )
        click.echo(credentials.pem, err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"App {credentials.slug} (id {credentials.id}) registered on GitHub.")
    click.echo(f"wrote the private key to {key_path} (mode 0600)")
    click.echo(
        f"wrote forge.kind, forge.github.app_id, private_key_file and webhook_secret to {config}"
    )
    click.echo(
        f"next: install it on the manifests repository ({credentials.html_url}/installations/new),"
        " set forge.github.installation_id and forge.github.repository, then run `ritmo doctor`"
    )
