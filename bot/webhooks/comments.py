"""`/ritmo` commands in comments on the manifests repository: promote, rollback, status,
help."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.auth import is_among
from bot.deploy.rollback import RollbackRefused
from bot.errors import Forbidden, NotFound
from bot.forge.github import GitHubForge
from bot.manifests.records import NAME_PATTERN, VERSION_PATTERN, artifact_id
from bot.manifests.writer import Conflict
from bot.policy.model import Policy
from bot.promotions.environments import label as cell_label
from bot.promotions.service import PromotionInput, PromotionRefused
from bot.promotions.status import open_requests
from bot.statuses import RequestStatus
from bot.webhooks.payloads import for_manifests
from bot.webhooks.router import Event, Router

if TYPE_CHECKING:
    from bot.webhooks.context import HandlerContext

log = logging.getLogger(__name__)
router = Router()

# A command line: at most three spaces in, as Markdown would still show it as text.
COMMAND_LINE = re.compile(r"^ {0,3}/ritmo(?:[ \t]+(?P<rest>.*?))?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
PROMOTE_ARGS = re.compile(r"^(?P<app>\S+)[ \t]+(?P<version>\S+)[ \t]+to[ \t]+(?P<env>\S+)$")
REPLY_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
ALL = 10_000  # the API's own bound on "every" request or promotion

ROLLBACK_ARGS = re.compile(r"^(?P<app>\S+)[ \t]+in[ \t]+(?P<env>\S+)$")
PROMOTE_USAGE = "/ritmo promote <app> <version> to <env>"
ROLLBACK_USAGE = "/ritmo rollback <app> in <env>"
HELP = f"""\
Ritmo answers one command per comment, at the start of a line:

| Command | What it does |
|---|---|
| `{PROMOTE_USAGE}` | Promote that artifact from the environment it is in to `<env>`; \
when the policy wants approvals, open a promotion request instead. |
| `{ROLLBACK_USAGE}` | Pin the version that ran before the environment's latest \
deployment again (a signed rollback commit), if it arrived there through Ritmo and is \
neither held nor failed there; the rolled-back version is held out of automatic \
promotion there. |
| `/ritmo status` | Which version each environment holds, per app, and the open promotion \
requests. |
| `/ritmo help` | This list. |

`promote`, `rollback` and `status` need write access to this repository or membership of a group \
in Ritmo's policy. Ritmo edits this one comment to answer each command."""


@dataclass(frozen=True)
class Promote:
    app: str
    version: str
    env: str


@dataclass(frozen=True)
class Rollback:
    app: str
    env: str


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Help:
    problem: str | None = None  # why the command was not understood, if it was not


Command = Promote | Rollback | Status | Help


@dataclass(frozen=True)
class Invocation:
    """The first `/ritmo` line of a comment, and what it asks for."""

    line: str
    command: Command


def find_command(body: str) -> Invocation | None:
    """The comment's command: its first `/ritmo` line outside code blocks; None if none."""
    fenced = False
    for raw in body.splitlines():
        if FENCE.match(raw):
            fenced = not fenced
            continue
        found = None if fenced else COMMAND_LINE.match(raw)
        if found is not None:
            return Invocation(raw.strip(), parse_command(found.group("rest") or ""))
    return None


def parse_command(rest: str) -> Command:
    """What follows `/ritmo`; anything not understood asks for help, saying why."""
    verb, args = (rest.split(None, 1) + ["", ""])[:2]
    args = args.strip()
    if verb == "status" and not args:
        return Status()
    if verb == "help" or not verb:
        return Help()
    if verb == "rollback":
        rolled = ROLLBACK_ARGS.match(args)
        if rolled is None:
            return Help(f"`rollback` takes `{ROLLBACK_USAGE}`.")
        for value in rolled.group("app", "env"):
            if not re.match(NAME_PATTERN, value):
                return Help(f"`{_quote(value)}` is not a valid app or environment name.")
        return Rollback(rolled["app"], rolled["env"])
    if verb != "promote":
        return Help(f"`{_quote(verb)}` is not a Ritmo command.")
    found = PROMOTE_ARGS.match(args)
    if found is None:
        return Help(f"`promote` takes `{PROMOTE_USAGE}`.")
    app, version, env = found.group("app", "version", "env")
    for label, value, pattern in (
        ("app", app, NAME_PATTERN),
        ("version", version, VERSION_PATTERN),
        ("environment", env, NAME_PATTERN),
    ):
        if not re.match(pattern, value):
            return Help(f"`{_quote(value)}` is not a valid {label} name.")
    return Promote(app, version, env)


@router.register("issue_comment", "created")
def answer_command(event: Event, context: HandlerContext) -> None:
    """Run the comment's `/ritmo` command and answer in Ritmo's status comment."""
    forge = context.forge
    if not isinstance(forge, GitHubForge):
        return
    payload = event.payload
    comment, issue = _mapping(payload, "comment"), _mapping(payload, "issue")
    user = _mapping(comment, "user")
    login, number = user.get("login"), issue.get("number")
    if not isinstance(login, str) or not isinstance(number, int):
        return
    repository = str(_mapping(payload, "repository").get("full_name", ""))
    if not for_manifests(event, context):
        log.info("delivery %s: a comment on %s, not the manifests repository; ignored",
                 event.delivery_id, repository)  # fmt: skip
        return
    # Ritmo's own replies quote commands; other bots' text is nobody's instruction.
    if user.get("type") == "Bot" or login.casefold().endswith("[bot]"):
        return
    invocation = find_command(str(comment.get("body") or ""))
    if invocation is None:
        return
    command = invocation.command
    log.info("delivery %s: %s on %s#%s: %s", event.delivery_id, login, repository, number,
             invocation.line)  # fmt: skip
    if isinstance(command, Help):
        answer = f"{command.problem}\n\n{HELP}" if command.problem else HELP
    else:
        refusal = _refusal(forge, context.policy(), login, repository)
        if refusal is not None:
            answer = refusal
        elif isinstance(command, Promote):
            link = str(comment.get("html_url") or f"{repository}#{number}")
            answer = _promote(context, command, login, link, event.delivery_id)
        elif isinstance(command, Rollback):
            link = str(comment.get("html_url") or f"{repository}#{number}")
            answer = _rollback(context, command, login, link, event.delivery_id)
        else:
            answer = _status(context)
    forge.upsert_comment(number, _reply(login, invocation.line, answer))


# -- permission ------------------------------------------------------------------------


def _policy_groups(policy: Policy) -> list[str]:
    """Every group the policy names: declared ones and those its rules name."""
    names = list(policy.groups)
    for rule in policy.promotion_rules:
        names += rule.groups
    for app in policy.apps.values():
        for rule in app.promotion_rules or ():
            names += rule.groups
    return list(dict.fromkeys(names))


def _refusal(forge: GitHubForge, policy: Policy, login: str, repository: str) -> str | None:
    """None when `login` may run commands; else why not and how to get there."""
    # The permission endpoint, not `author_association`: MEMBER and COLLABORATOR say
    # nothing about write access (an org member or a collaborator may only read).
    if forge.can_write(login):
        return None
    groups = _policy_groups(policy)
    members = forge.memberships(policy, groups)
    if any(is_among(login, members.get(group, frozenset())) for group in groups):
        return None
    # Local groups have no members on GitHub: only teams are worth joining.
    teams = [(g, policy.group(g).team) for g in groups if policy.group(g).kind == "github-team"]
    if not teams:
        return (
            f"Refused: @{login} has no write access to {repository}, and Ritmo's policy "
            "names no GitHub team that could stand in for it. Ask a maintainer for write "
            "access."
        )
    named = ", ".join(f"`{group}` ({team})" for group, team in teams)
    return (
        f"Refused: @{login} has no write access to {repository} and is in none of the "
        f"policy's groups: {named}. Ask a maintainer for write access, or to be added to "
        "one of those teams."
    )


# -- promote ---------------------------------------------------------------------------


def _promote(
    context: HandlerContext, command: Promote, login: str, link: str, delivery: str
) -> str:
    app, version, env = command.app, command.version, command.env
    artifact = context.index.get(artifact_id(app, version))
    if artifact is None:
        return (
            f"Refused: no artifact {app} {version} is recorded; check the version "
            "(CI records each build with `ritmo artifact register`)."
        )
    if artifact.promotion_status == env:
        return f"{app} {version} is already in {env}; nothing to do."
    pending = context.requests_index.open_for(app, env)
    if pending is not None and pending.artifact_id == artifact.record.id:
        # A second identical command (or GitHub redelivering one) must not supersede
        # the open request and throw its approvals away.
        where = f" (#{pending.forge_ref})" if pending.forge_ref else ""
        return f"{app} {version} already has an open promotion request to {env}: " + (
            f"`{pending.id}`{where}."
        )
    ask = PromotionInput(artifact.promotion_status, env, notes=f"Requested by {login} in {link}")
    try:
        rule = context.promotions.check(artifact, ask)
        if rule.requires_approval:
            opened = context.requests.open(artifact, ask, rule, login, delivery)
            return _opened(opened)
        outcome = context.promotions.promote(artifact, ask, login, delivery)
    except (PromotionRefused, Conflict) as exc:
        return f"Refused: {exc}"
    if not outcome["commit"]:
        return f"{app} {version} was already pinned in {env}; nothing changed."
    return (
        f"Promoted {app} {version} from {ask.from_env} to {env} "
        f"(commit {outcome['commit']}, pinned `{outcome['pinned']}`)."
    )


def _rollback(
    context: HandlerContext, command: Rollback, login: str, link: str, delivery: str
) -> str:
    latest = context.deployments.current(command.app, command.env)
    if latest is None:
        return (
            f"Refused: no deployment of {command.app} in {command.env} is recorded; Ritmo "
            "rolls back what ArgoCD, Flux or a CD system reported."
        )
    try:
        done = context.deployments.rollbacks.rollback(
            latest.id, login, delivery, reason=f"Asked for by {login} in {link}"
        )
    except (RollbackRefused, NotFound, Forbidden) as exc:
        return f"Refused: {exc}"
    if done["status"] == RequestStatus.PENDING:
        return "The policy wants approvals for this rollback. " + _opened(done["request"])
    return (
        f"Rolled {command.app} in {command.env} back from {latest.version} to "
        f"{done['restored_version']} (commit {done['commit']}). {latest.version} is held "
        f"out of {command.env}'s automatic promotion until someone promotes it there."
    )


def _opened(request: Mapping[str, Any]) -> str:
    where = f" as #{request['forge_ref']}" if request.get("forge_ref") else ""
    needs = ", ".join(f"{m['count']} from {m['group']}" for m in request.get("missing") or ())
    return (
        f"Opened promotion request `{request['id']}`{where}: {request['app']} "
        f"{request['version']} {request['from']} -> {request['to']}, "
        f"{request.get('progress', '')}" + (f"; needs {needs}." if needs else ".")
    )


# -- status ----------------------------------------------------------------------------


def _status(context: HandlerContext) -> str:
    """What `ritmo status` shows (GET /api/v1/environments and the open requests), as
    Markdown."""
    table = context.environments.table()
    found = context.requests_index.search(status=RequestStatus.PENDING, limit=ALL)[0]
    data = {**table, "open_requests": open_requests(
        [context.requests.describe(r.id) for r in found]
    )}  # fmt: skip
    envs = data["environments"]
    lines = ["| App | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]
    for entry in data["apps"]:
        cells = entry["environments"]
        versions = (cell_label(cells.get(env) or {}) for env in envs)
        lines.append(f"| {entry['app']} | " + " | ".join(versions) + " |")
    if not data["apps"]:
        lines = ["No apps recorded yet."]
    pending = data["open_requests"]
    lines += ["", f"Open promotion requests ({len(pending)}):" if pending else "No open "
              "promotion requests."]  # fmt: skip
    for r in pending:
        needs = ", ".join(f"{m['count']} from {m['group']}" for m in r["missing"] or ())
        waits = f"needs {needs}" if r["decision"] == "pending" and needs else r["reason"]
        lines.append(
            f"- `{r['id']}` {r['app']} {r['version']} {r['from']} -> {r['to']}: "
            f"{r['progress']}, {waits} (by {r['requested_by']}, opened {r['opened_at']})"
        )
    return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------


def _reply(login: str, line: str, answer: str) -> str:
    text = f"@{login} ran `{_quote(line)}`:\n\n{answer}"
    if len(text) > REPLY_LIMIT:
        text = text[:REPLY_LIMIT] + "\n\n(cut short: run `ritmo status` for everything)"
    return text


def _quote(text: str) -> str:
    """User text inside a code span: no backticks to break out of it, and short."""
    return text.replace("`", "'")[:200]


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}
