"""The `ritmo` command: serve, init, token, artifact, promote, approve, status, reindex, keys."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import requests

from bot.audit.history import KINDS
from bot.cli_doctor import doctor
from bot.cli_github_app import github_app
from bot.cli_table import table
from bot.cli_tokens import token
from bot.config import ConfigError, Settings, load_settings
from bot.promotions.environments import label
from bot.promotions.status import open_requests
from bot.statuses import DeploymentStatus, values

if TYPE_CHECKING:
    from bot.client import ApiResponse

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


class _Commands(click.Group):
    """Every client command: an unreachable server is one line and exit 3, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from bot.client import Unreachable

        try:
            return super().invoke(ctx)
        except Unreachable as exc:
            _fail(f"cannot reach {exc.server}: {exc}", EXIT_UNAVAILABLE)


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


main.add_command(token)
main.add_command(github_app)
main.add_command(doctor)


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the server (gunicorn). With nothing configured, it sets itself up in ./.ritmo/."""
    from bot.app import configure_logging
    from bot.embedded import create_first_tokens, prepare_embedded, seed_embedded
    from bot.listen import check_listen
    from bot.runtime import build_runtime
    from bot.server import run_gunicorn
    from bot.telemetry.logs import console_line

    settings = _settings(ctx)
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
        _fail(str(exc))
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
    rows = [
        [item["id"], item["name"], item["version"], item["promotion_status"], item["created_at"]]
        for item in resp.body["items"]
    ]
    _echo_table(["ID", "NAME", "VERSION", "STATUS", "CREATED"], rows)
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


def _echo_table(
    heads: list[str], rows: Iterable[Iterable[object]], right: Iterable[int] = ()
) -> None:
    for line in table(heads, [list(row) for row in rows], right):
        click.echo(line)


def audit_row(event: dict[str, Any]) -> list[object]:
    """One audit event as `ritmo audit` shows it."""
    env_text = event["environment"]
    if event.get("from_environment") and event["kind"] == "promoted":
        env_text = f"{event['from_environment']}->{event['environment']}"
    actor = event["actor"] or "-"
    # Ritmo's own actor already says so (`ritmo (automatic)`); a token's does not.
    if event.get("automatic") and not actor.endswith("(automatic)"):
        actor += " (automatic)"
    kind = event["kind"] + (" (untrusted)" if event.get("trusted") is False else "")
    version = event["version"]
    if event.get("restored_version"):
        version = f"{version}->{event['restored_version']}"
    return [event["at"], kind, event["app"], env_text, version, actor, event["ticket"],
            event["request_id"], (event["commit"] or "")[:12]]  # fmt: skip


def _checked(server: str, call: Callable[[], ApiResponse]) -> ApiResponse:
    """The response of a successful call; else exit 1 (refused) or 3 (unavailable)."""
    try:
        resp = call()
    except requests.RequestException as exc:
        _fail(f"cannot reach {server}: {exc}", EXIT_UNAVAILABLE)
    if not resp.ok:
        code = EXIT_UNAVAILABLE if resp.status >= 500 else EXIT_REFUSED
        _fail(f"refused ({resp.status}): {resp.error_text()}", code)
    return resp


def _needs(missing: Iterable[dict[str, Any]]) -> str:
    return ", ".join(f"{m['count']} from {m['group']}" for m in missing)


def _request_line(req: dict[str, Any]) -> str:
    """One line on a promotion request: its status and what it waits for."""
    ident, status = req["id"], req["status"]
    if status == "pending":
        progress = req.get("progress") or ""
        if req.get("decision", "pending") == "pending" and req.get("missing"):
            return f"pending: request {ident} needs {_needs(req['missing'])} ({progress})"
        # blocked (changes requested), frozen, or due to settle: the reason says which
        return f"pending: request {ident} {req.get('decision')}: {req.get('reason')} ({progress})"
    what = f"{req['app']} {req['version']} to {req['to']}"
    if req.get("change") == "policy":
        what = f"policy change {req['version']}"
    if status == "merged":
        return f"merged: request {ident} ({what}) merged as {req['merge_commit']}"
    reason = f": {req['reason']}" if req.get("reason") else ""
    return f"{status}: request {ident} ({what}){reason}"


@main.command()
@_server_option
@_token_option
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

    try:
        call = promote_call(_client(server, token_value), target, from_env, to_env, correlation_id,
                            notes=notes, approval_ticket=approval_ticket)  # fmt: skip
    except ValueError as exc:
        _fail(str(exc))
    resp = _checked(server, call)
    body = resp.body
    if resp.status == 202:
        click.echo(_request_line(body["request"]))
        return
    promotion = body.get("promotion") or {}
    what = f"{promotion['app']} {promotion['version']}" if promotion else " ".join(target)
    if body.get("status") == "unchanged" or not body.get("commit"):
        click.echo(f"unchanged: {what} is already pinned in {body['environment']}")
        return
    click.echo(f"promoted: {what} to {body['environment']} (commit {body['commit']})")


@main.command()
@_server_option
@_token_option
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
    client = _client(server, token_value)
    resp = _checked(server, lambda: client.review(request_id, state, commit))
    click.echo(_request_line(resp.body))


@main.command()
@_server_option
@_token_option
@click.option("--app", "app_name", help="Only this app.")
@click.option("--json", "as_json", is_flag=True, help="Print the data as JSON.")
def status(server: str, token_value: str, app_name: str | None, as_json: bool) -> None:
    """Which version each environment holds, per app, as git pins it (a pin Ritmo did not
    record is marked unrecorded, with its commit); then the open promotion requests."""
    client = _client(server, token_value)
    table = _checked(server, lambda: client.environments(app_name)).body
    pending = _checked(
        server, lambda: client.all_pages("/api/v1/promotions", app=app_name, status="pending")
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
    _echo_table(["APP", *(e.upper() for e in envs)], rows)
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
        waits = f"needs {_needs(r['missing'])}" if needs else f"{r['decision']}: {r['reason']}"
        click.echo(
            f"  {r['id']}  {r['app']} {r['version']}  {r['from']} -> {r['to']}  "
            f"{r['progress']}  {waits}  (by {r['requested_by']}, opened {r['opened_at']})"
        )


@main.command()
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

    settings = _settings(ctx)
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
        _fail(str(exc))
    except PolicyError as exc:
        _fail(f"the policy in force is invalid: {' | '.join(str(p) for p in exc.problems)}")
    click.echo(f"Indexed {count} artifact records from {settings.remote_url}")
    click.echo(f"Indexed {deployed} deployments from its {LEDGER_BRANCH} branch")


@main.group("deployments")
def deployment_commands() -> None:
    """Deployments ArgoCD, Flux or a CD system reported."""


@deployment_commands.command("list")
@_server_option
@_token_option
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
    client = _client(server, token_value)
    resp = _checked(
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
    _echo_table(["ID", "APP", "ENV", "VERSION", "STATUS", "UPDATED"], rows)
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


@main.command()
@_server_option
@_token_option
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
    client = _client(server, token_value)
    resp = _checked(server, lambda: client.rollback(deployment_id, reason, correlation_id))
    body = resp.body
    if body["status"] == "pending":
        click.echo(_request_line(body["request"]))
        return
    click.echo(
        f"rolled back: {body['environment']} runs {body['restored_version']} again "
        f"(commit {body['commit']}); {body['failed_artifact']} is held out of it"
    )


@main.group("policy")
def policy_commands() -> None:
    """Check promotion policy files; change the policy in force (admin token)."""


@policy_commands.command("apply")
@_server_option
@_token_option
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
        _fail(f"{file}: {exc}")
    client = _client(server, token_value)
    resp = _checked(server, lambda: client.apply_policy(text, reason, correlation_id))
    body = resp.body
    if resp.status == 202:
        click.echo(_request_line(body["request"]))
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


@main.group("outbox")
def outbox_commands() -> None:
    """Outbound notifications: list them, retry dead letters (admin token)."""


@outbox_commands.command("list")
@_server_option
@_token_option
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
    resp = _checked(server, lambda: _client(server, token_value).list_outbox(status, page))
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    rows = [
        [item["id"], item["status"], item["attempts"], item["event"], item["app"],
         item["target"], " ".join(str(item.get("last_error") or "").split())[:80]]
        for item in resp.body["items"]
    ]  # fmt: skip
    heads = ["ID", "STATUS", "TRIES", "EVENT", "APP", "TARGET", "ERROR"]
    _echo_table(heads, rows, right=(0, 2))
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


@outbox_commands.command("retry")
@_server_option
@_token_option
@click.argument("row_id", metavar="ID", type=int)
def outbox_retry(server: str, token_value: str, row_id: int) -> None:
    """Requeue a dead letter: it is sent again, with fresh attempts."""
    resp = _checked(server, lambda: _client(server, token_value).retry_outbox(row_id))
    body = resp.body
    click.echo(f"requeued: {body['id']} ({body['event']} {body['app']} -> {body['target']})")


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


@main.command("audit")
@_server_option
@_token_option
@click.option("--app", help="Only this app.")
@click.option("--env", help="Only this environment.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
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
    client = _client(server, token_value)
    query = {"app": app, "env": env, "kind": kind, "since": since, "until": until}
    resp = _checked(server, lambda: client.list_audit(**query, page=page, per_page=per_page))
    if as_json:
        click.echo(json.dumps(resp.body, indent=2))
        return
    heads = ["AT", "KIND", "APP", "ENV", "VERSION", "ACTOR", "TICKET", "REQUEST", "COMMIT"]
    _echo_table(heads, [audit_row(e) for e in resp.body["items"]])
    click.echo(f"({len(resp.body['items'])} of {resp.body['total']})")


@main.command("verify")
@click.option(
    "--since",
    metavar="REV|DATE",
    help="Check the commits after REV (any revision of the default branch: a sha, main~5, "
    "HEAD~100), or committed after an ISO date or date-time, only (default: all).",
)
@click.option(
    "--repo",
    "--remote",
    "repo",
    metavar="PATH|URL",
    help="The manifests repository to check (default: manifests.url of the settings).",
)
@click.option("--branch", help="Its default branch (default: manifests.branch).")
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of armoured public keys also trusted to sign; repeat for several.",
)
@click.option(
    "--policy-key",
    "policy_key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of armoured public keys trusted to change the policy only "
    "(besides signing.policy_keys); repeat for several.",
)
@click.pass_context
def verify(
    ctx: click.Context,
    since: str | None,
    repo: str | None,
    branch: str | None,
    trusted_keys: tuple[Path, ...],
    policy_key_files: tuple[Path, ...],
) -> None:
    """Check the default branch's history as an audit trail, from git alone.

    Reports each problem as `<sha> <kind>: <message>`: a commit with Ritmo- trailers
    not signed by a trusted key (untrusted-signature); a pin changed by an unsigned commit
    without Ritmo trailers (unsigned-pin); a merge of a pin change that Ritmo neither made
    nor recorded (unrecorded-merge), or recorded as merged before its policy held
    (policy-not-held); a pinned version no artifact record has (unknown-version); a version
    pinned in an environment it never reached the one before (skipped-environment); a
    change to .ritmo/policy.yaml that neither Ritmo nor a policy key signed
    (untrusted-policy); a direct pin the trusted policy then required approval for
    (policy-not-held); a rollback to a version that never arrived there by a path the policy
    held (illegitimate-rollback); a commit on the ritmo/deployments ledger branch not signed
    by Ritmo (unsigned-ledger, the whole ledger whatever --since says). Commits before the
    policy's adoption are not judged.
    Trusted keys: Ritmo's signing key (signing.key) and each --trusted-key; for policy
    changes also signing.policy_keys (from signing.policy_keyring) and each --policy-key.

    Exit 0: no problem; 1: problems; 2: a usage or configuration error.
    """
    import tempfile

    from bot.audit.history import parse_when
    from bot.audit.log import last_commit_by, resolve
    from bot.audit.repo import (
        TrustedKeyError,
        import_policy_keys,
        trusted_gnupg,
        verify_repository,
    )
    from bot.manifests.mirror import Mirror
    from bot.policy.trust import TrustKeys
    from bot.runtime import signing_key

    settings = _settings(ctx)
    armoured = []
    for path in trusted_keys:
        try:
            armoured.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"--trusted-key {path}: {exc}")
    if repo is None or settings.signing.key is not None:
        try:
            armoured.append(signing_key(settings).export_public_key())
        except ConfigError as exc:
            if repo is None or not armoured:
                _fail(str(exc))
    if not armoured:
        _fail("no trusted key: give --trusted-key FILE (`ritmo keys export` prints Ritmo's)")
    listed = settings.signing.policy_keys
    # Keys trusted for policy changes only: signing.policy_keys' keyring, each --policy-key.
    policy_armoured: list[str] = []
    extra: list[str] = []
    sources = [(settings.signing.policy_keyring, policy_armoured)]
    sources += [(path, extra) for path in policy_key_files]
    for source, into in sources:
        if source is None:
            continue
        try:
            into.append(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"policy key file {source}: {exc}")
    branch = branch or settings.manifests.branch
    with tempfile.TemporaryDirectory(prefix="ritmo-verify-") as scratch:
        if repo is None:
            url, token = settings.remote_url, settings.manifests.token
            root = (settings.data_dir / "verify-mirrors").resolve()
        else:
            local = Path(repo)
            url = str(local.resolve()) if local.exists() else repo
            token = settings.manifests.token if url == settings.remote_url else None
            root = Path(scratch)
        mirror = Mirror(root, url, branch, token)
        try:
            with mirror.locked(), trusted_gnupg(armoured) as (home, fingerprints):
                policy_fprs = import_policy_keys(home, policy_armoured, listed)
                policy_fprs += import_policy_keys(home, extra, None)
                keys = TrustKeys(frozenset(fingerprints), frozenset(policy_fprs))
                try:
                    tip = mirror.fetch()
                except OSError as exc:  # the user's own repository: all git said
                    _fail(f"cannot read {branch} of {url}: {getattr(exc, 'detail', exc)}")
                if tip is None:
                    _fail(f"{url} has no branch {branch}")
                base, after = None, ""
                if since is not None and since.strip("0"):
                    when = parse_when(since)
                    if when is not None:  # a date: what was committed after it
                        base, after = last_commit_by(mirror, tip, when), f" after {since}"
                    else:
                        base, after = resolve(mirror, since), f" after {since}"
                        if base is None:
                            _fail(
                                f"--since {since}: neither a revision git resolves in {url} "
                                f"nor an ISO date (2024-05-01, 2024-05-01T12:00:00Z)"
                            )
                        if not mirror.is_ancestor(base, tip):
                            _fail(f"--since {since}: {base[:12]} is not on {branch}")
                verified = verify_repository(mirror, tip, base, home, keys)
        except TrustedKeyError as exc:
            _fail(f"trusted keys: {exc}")
        finally:
            mirror.close()
    problems, checked = verified.problems, verified.checked
    for problem in problems:
        click.echo(str(problem))
    if verified.before_adoption:
        click.echo(
            f"ritmo verify: {verified.before_adoption} commit(s) before the policy's adoption "
            f"in {verified.adopted_at} are before adoption, not judged",
            err=True,
        )
    where = f"{checked} commit{'s' * (checked != 1)} of {branch}{after}"
    keys_text = f"{len(fingerprints)} trusted key{'s' * (len(fingerprints) != 1)}"
    if problems:
        click.echo(f"ritmo verify: {len(problems)} problem(s) in {where}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"ritmo verify: ok, {where} checked against {keys_text}", err=True)


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
