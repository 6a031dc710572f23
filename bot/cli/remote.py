"""HTTP-client commands that move versions and read what happened: promote, approve,
status, deployments list, rollback, outbox list|retry, audit."""

from __future__ import annotations

import json

import click

from bot.cli.errors import checked, fail
from bot.cli.options import client_for, server_option, token_option
from bot.cli.tables import audit_row, echo_table, needs_text, request_line
from bot.promotions.environments import label
from bot.promotions.status import open_requests
from bot.statuses import AuditKind, DeploymentStatus, RequestStatus, values


@click.command()
@server_option
@token_option
@click.argument("target", nargs=-1, required=True, metavar="ARTIFACT_ID | APP VERSION")
@click.option(
    "--from",
    "from_env",
    help="The environment it is in now (default with APP VERSION: the one before --to).",
)
@click.option("--to", "to_env", required=True, help="The next environment.")
@click.option("--notes", help="Recorded in the commit (and the request).")
@click.option("--approval-ticket", help="A change ticket, e.g. CHG-42.")
@click.option("--correlation-id")
def promote(
    server: str,
    token_value: str,
    target: tuple[str, ...],
    from_env: str | None,
    to_env: str,
    notes: str | None,
    approval_ticket: str | None,
    correlation_id: str | None,
) -> None:
    """Promote ARTIFACT_ID (with --from), or APP VERSION (e.g. `web 1.2.3 --to production`);
    or open a request when the policy wants approvals.

    Exit 0: promoted, or request opened; 1: refused; 3: retry later.
    """
    from bot.promote_args import promote_call

    client = client_for(server, token_value)
    try:
        call = promote_call(client, target, from_env, to_env, correlation_id,
                            notes=notes, approval_ticket=approval_ticket)  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    resp = checked(server, call)
    body = resp.body
    if resp.status == 202:
        click.echo(request_line(body["request"]))
        return
    promotion = body.get("promotion") or {}
    what = f"{promotion['app']} {promotion['version']}" if promotion else " ".join(target)
    if body.get("status") == "unchanged" or not body.get("commit"):
        click.echo(f"unchanged: {what} is already pinned in {body['environment']}")
        return
    click.echo(f"promoted: {what} to {body['environment']} (commit {body['commit']})")


@click.command()
@server_option
@token_option
@click.argument("request_id")
@click.option(
    "--changes-requested", is_flag=True, help="Request changes (blocks the merge) instead."
)
@click.option("--commit", help="The request head you reviewed; refused if it is not current.")
def approve(
    server: str, token_value: str, request_id: str, changes_requested: bool, commit: str | None
) -> None:
    """Approve REQUEST_ID (a req-... id); it merges once the policy holds.

    Exit 0: review recorded; 1: refused; 3: retry later.
    """
    state = "changes_requested" if changes_requested else "approved"
    client = client_for(server, token_value)
    resp = checked(server, lambda: client.review(request_id, state, commit))
    click.echo(request_line(resp.body))


@click.command()
@server_option
@token_option
@click.option("--app", "app_name", help="Only this app.")
@click.option("--json", "as_json", is_flag=True, help="Print the data as JSON.")
def status(server: str, token_value: str, app_name: str | None, as_json: bool) -> None:
    """Which version each environment holds, per app, as git pins it (a pin Ritmo did not
    record is marked unrecorded, with its commit); then the open promotion requests."""
    client = client_for(server, token_value)
    table = checked(server, lambda: client.environments(app_name)).body
    pending = checked(
        server,
        lambda: client.all_pages("/api/v1/promotions", app=app_name, status=RequestStatus.PENDING),
    ).body["items"]
    data = {**table, "open_requests": open_requests(pending)}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    envs = data["environments"]
    rows = [
        [entry["app"], *(label(entry["environments"].get(e) or {}) for e in envs)]
        for entry in data["apps"]
    ]
    echo_table(["APP", *(e.upper() for e in envs)], rows)
    if not rows:
        click.echo("(no apps)")
    requests_open = data["open_requests"]
    click.echo("")
    if not requests_open:
        click.echo("No open promotion requests.")
        return
    click.echo(f"Open promotion requests ({len(requests_open)}):")
    for r in requests_open:
        needs = r["decision"] == "pending" and r["missing"]
        waits = f"needs {needs_text(r['missing'])}" if needs else f"{r['decision']}: {r['reason']}"
        click.echo(
            f"  {r['id']}  {r['app']} {r['version']}  {r['from']} -> {r['to']}  "
            f"{r['progress']}  {waits}  (by {r['requested_by']}, opened {r['opened_at']})"
        )


@click.group("deployments")
def deployment_commands() -> None:
    """Deployments ArgoCD, Flux or a CD system reported."""


@deployment_commands.command("list")
@server_option
@token_option
@click.option("--app")
@click.option("--env")
@click.option("--status", type=click.Choice(values(DeploymentStatus)))
@click.option("--page", type=int, default=1)
@click.option("--json", "as_json", is_flag=True)
def deployments_list(
    server: str,
    token_value: str,
    app: str | None,
    env: str | None,
    status: str | None,
    page: int,
    as_json: bool,
) -> None:
    """List deployments, newest first."""
    client = client_for(server, token_value)
    resp = checked(
        server, lambda: client.list_deployments(app=app, env=env, status=status, page=page)
    )
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    rows = [
        [item["id"], item["app"], item["environment"], item["version"],
         item["status"] + (" (rolled back)" if item.get("rolled_back_by") else ""),
         item["updated_at"]]
        for item in resp.body["items"]
    ]  # fmt: skip
    echo_table(["ID", "APP", "ENV", "VERSION", "STATUS", "UPDATED"], rows)
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


@click.command()
@server_option
@token_option
@click.argument("deployment_id")
@click.option("--reason", help="Recorded in the rollback commit.")
@click.option("--correlation-id")
def rollback(
    server: str,
    token_value: str,
    deployment_id: str,
    reason: str | None,
    correlation_id: str | None,
) -> None:
    """Pin the version that ran before DEPLOYMENT_ID again, as a signed rollback commit.

    Exit 0: rolled back; 1: refused; 3: retry later.
    """
    client = client_for(server, token_value)
    resp = checked(server, lambda: client.rollback(deployment_id, reason, correlation_id))
    body = resp.body
    if body["status"] == RequestStatus.PENDING:
        click.echo(request_line(body["request"]))
        return
    click.echo(
        f"rolled back: {body['environment']} runs {body['restored_version']} again "
        f"(commit {body['commit']}); {body['failed_artifact']} is held out of it"
    )


@click.group("outbox")
def outbox_commands() -> None:
    """Outbound notifications: list them, retry dead letters (admin token)."""


@outbox_commands.command("list")
@server_option
@token_option
@click.option(
    "--status",
    type=click.Choice(["queued", "delivering", "delivered", "dead"]),
    help="Only these, e.g. dead for the dead letters.",
)
@click.option("--page", type=int, default=1)
@click.option("--json", "as_json", is_flag=True)
def outbox_list(
    server: str, token_value: str, status: str | None, page: int, as_json: bool
) -> None:
    """List notifications, newest first."""
    resp = checked(server, lambda: client_for(server, token_value).list_outbox(status, page))
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    rows = [
        [item["id"], item["status"], item["attempts"], item["event"], item["app"],
         item["target"], " ".join(str(item.get("last_error") or "").split())[:80]]
        for item in resp.body["items"]
    ]  # fmt: skip
    heads = ["ID", "STATUS", "TRIES", "EVENT", "APP", "TARGET", "ERROR"]
    echo_table(heads, rows, right=(0, 2))
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


@outbox_commands.command("retry")
@server_option
@token_option
@click.argument("row_id", metavar="ID", type=int)
def outbox_retry(server: str, token_value: str, row_id: int) -> None:
    """Requeue a dead letter: it is sent again, with fresh attempts."""
    resp = checked(server, lambda: client_for(server, token_value).retry_outbox(row_id))
    body = resp.body
    click.echo(f"requeued: {body['id']} ({body['event']} {body['app']} -> {body['target']})")


@click.command("audit")
@server_option
@token_option
@click.option("--app", help="Only this app.")
@click.option("--env", help="Only this environment.")
@click.option(
    "--kind",
    type=click.Choice(values(AuditKind)),
    help="Only events of this kind.",
)
@click.option("--since", help="From this ISO date or date-time, or after this commit.")
@click.option("--until", help="Up to this ISO date or date-time (a date: all of it), or commit.")
@click.option("--page", type=int, default=1)
@click.option("--per-page", type=int, default=50)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
def audit(
    server: str,
    token_value: str,
    app: str | None,
    env: str | None,
    kind: str | None,
    since: str | None,
    until: str | None,
    page: int,
    per_page: int,
    as_json: bool,
) -> None:
    """Who registered, promoted, approved and rolled back what, newest first (from git).

    Exit 0: listed; 1: refused (a bad filter, the token); 3: retry later.
    """
    client = client_for(server, token_value)
    query = {"app": app, "env": env, "kind": kind, "since": since, "until": until}
    resp = checked(server, lambda: client.list_audit(**query, page=page, per_page=per_page))
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    heads = ["AT", "KIND", "APP", "ENV", "VERSION", "ACTOR", "TICKET", "REQUEST", "COMMIT"]
    echo_table(heads, [audit_row(e) for e in resp.body["items"]])
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")
