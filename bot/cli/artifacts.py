"""`ritmo artifact push|show|list`: register and read artifacts through the API."""

from __future__ import annotations

import json
from typing import Any

import click

from bot.cli.errors import EXIT_REFUSED, checked, fail
from bot.cli.options import client_for, server_option, token_option
from bot.cli.tables import echo_table


@click.group()
def artifact() -> None:
    """Register and read artifacts."""


@artifact.command("push")
@server_option
@token_option
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
        fail("--file must hold a JSON object")
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
            fail(f"--metadata {item!r}: use KEY=VALUE")
        fields.setdefault("metadata", {})[key] = value
    if signature_file:
        fields["signature"] = signature_file.read()
    client = client_for(server, token_value)
    resp = checked(server, lambda: client.register_artifact(fields, correlation_id))
    state = "recorded" if resp.status == 201 else "already recorded"
    click.echo(f"{state}: {resp.body['id']} {resp.body['name']} {resp.body['version']}")
    click.echo(f"commit: {resp.body['commit']}")


@artifact.command("show")
@server_option
@token_option
@click.argument("artifact_id")
def artifact_show(server: str, token_value: str, artifact_id: str) -> None:
    """Print one artifact record as JSON."""
    resp = client_for(server, token_value).get_artifact(artifact_id)
    if not resp.ok:
        fail(f"({resp.status}) {resp.error_text()}", EXIT_REFUSED)
    click.echo(json.dumps(resp.body, indent=2))


@artifact.command("list")
@server_option
@token_option
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
    resp = client_for(server, token_value).list_artifacts(
        name=name, version=version, promotion_status=promotion_status, page=page
    )
    if not resp.ok:
        fail(f"({resp.status}) {resp.error_text()}", EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    rows = [
        [item["id"], item["name"], item["version"], item["promotion_status"], item["created_at"]]
        for item in resp.body["items"]
    ]
    echo_table(["ID", "NAME", "VERSION", "STATUS", "CREATED"], rows)
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")
