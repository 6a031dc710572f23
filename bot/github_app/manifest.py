"""What Ritmo's GitHub App must be allowed and told: one table, read by the manifest,
`ritmo github-app permissions`, `ritmo doctor` and the README.

Each permission is there for REST calls in bot/forge/github*.py, bot/notify/targets.py or
for a webhook event a module in bot/webhooks/ handles; nothing else is asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

WEBHOOK_PATH = "/webhooks/github"  # bot/api/webhooks.py

# GitHub sends these to every App whatever it subscribes to; a manifest cannot list them.
ALWAYS_DELIVERED = frozenset({"installation", "installation_repositories"})

LEVELS = {"read": 1, "write": 2, "admin": 3}


@dataclass(frozen=True)
class Permission:
    name: str  # as GitHub's REST API spells it (default_permissions, installation.permissions)
    access: str  # read or write
    why: str


PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "contents",
        "write",
        "push events (a pin made outside Ritmo is seen at once); comments on such commits "
        "(POST /repos/{o}/{r}/commits/{sha}/comments); repository_dispatch and "
        "update_gitops_repo integrations that name no secret",
    ),
    Permission(
        "pull_requests",
        "write",
        "promotion requests are pull requests: open, edit, close, request team reviews, "
        "read reviews and changed files; pull_request and pull_request_review events",
    ),
    Permission(
        "statuses",
        "write",
        "the ritmo/approval commit status on each request's head "
        "(POST /repos/{o}/{r}/statuses/{sha})",
    ),
    Permission(
        "deployments",
        "write",
        "mirror each deployment as a GitHub Deployment with its statuses in the app's "
        "source repository",
    ),
    Permission(
        "issues",
        "write",
        "answer /ritmo commands in one comment it edits (issue comments API); issue_comment events",
    ),
    Permission(
        "members",
        "read",
        "count approvals of github-team groups by team membership "
        "(GET /orgs/{org}/teams/{slug}/members); organization permission",
    ),
    Permission(
        "metadata",
        "read",
        "every App has it: repository lookups and a commenter's permission "
        "(GET /repos/{o}/{r}/collaborators/{user}/permission)",
    ),
)

# Only for policies with a github_workflow integration that names no secret: Ritmo then
# dispatches the workflow with its own installation token.
WORKFLOW_DISPATCH = Permission(
    "actions",
    "write",
    "github_workflow integrations without a secret: POST "
    "/repos/{o}/{r}/actions/workflows/{id}/dispatches with the installation token",
)

# The permission GitHub requires before an App may subscribe to each event Ritmo handles.
EVENT_PERMISSION = {
    "issue_comment": "issues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "push": "contents",
}


def permissions(workflow_dispatch: bool = False) -> tuple[Permission, ...]:
    return PERMISSIONS + ((WORKFLOW_DISPATCH,) if workflow_dispatch else ())


def subscribed_events(handled: frozenset[str]) -> list[str]:
    """The events an App must subscribe to, from those Ritmo's router handles."""
    return sorted(handled - ALWAYS_DELIVERED)


def handled_events() -> frozenset[str]:
    from bot.webhooks.routes import build_router

    return build_router().events()


def hook_url(url: str) -> str:
    return url.rstrip("/") + WEBHOOK_PATH


def check_public_url(url: str) -> str:
    """Ritmo's public base URL, where GitHub delivers webhooks: https, a host, no query."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"{url!r} is not an https:// URL GitHub can reach, e.g. https://ritmo.example.com"
        )
    return url.rstrip("/")


def build_manifest(
    url: str,
    name: str = "Ritmo",
    redirect_url: str | None = None,
    workflow_dispatch: bool = False,
) -> dict[str, Any]:
    """A GitHub App manifest (docs: "Registering a GitHub App from a manifest")."""
    url = check_public_url(url)
    manifest: dict[str, Any] = {
        "name": name,
        "url": url,
        "description": "Ritmo: GitOps promotions as signed commits and reviewed pull requests",
        "hook_attributes": {"url": hook_url(url), "active": True},
        "public": False,
        "default_permissions": {p.name: p.access for p in permissions(workflow_dispatch)},
        "default_events": subscribed_events(handled_events()),
    }
    if redirect_url is not None:
        manifest["redirect_url"] = redirect_url
    return manifest


def missing(granted: Mapping[str, str], needed: tuple[Permission, ...]) -> list[Permission]:
    """The permissions `granted` (GitHub's name -> read/write/admin) lacks or has too low."""
    return [p for p in needed if LEVELS.get(str(granted.get(p.name)), 0) < LEVELS[p.access]]


def web_url(api_url: str) -> str:
    """github.com for api.github.com; https://HOST for GitHub Enterprise Server's
    https://HOST/api/v3."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.hostname == "api.github.com":
        return "https://github.com"
    path = parts.path
    if path.endswith("/api/v3"):
        path = path[: -len("/api/v3")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def new_app_page(api_url: str, org: str | None) -> str:
    """Where the manifest is posted: the user's or the organization's new App page."""
    base = web_url(api_url)
    if org:
        return f"{base}/organizations/{org}/settings/apps/new"
    return f"{base}/settings/apps/new"
