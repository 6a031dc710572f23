"""The REST API's operations for the OpenAPI document: one `Route` entry each in `ROUTES`.

tests/api/test_openapi.py fails when a URL rule under /api/v1 has no entry, or an entry
names a rule that does not exist. bot/api/openapi.py builds the document from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from bot.api.artifacts import ArtifactQuery
from bot.api.audit import AuditPage, AuditQuery
from bot.api.dashboard import DashboardQuery
from bot.api.deployments import DeploymentBody, DeploymentQuery, RollbackBody
from bot.api.environments import Environments, EnvironmentsQuery
from bot.api.outbox import OutboxQuery
from bot.api.policy import PolicyBody
from bot.api.promotions import PromoteBody, PromoteByName, PromotionQuery, ReviewBody
from bot.api.tokens import TokenBody
from bot.auth import Scope
from bot.manifests.records import ArtifactSpec

JSON = "application/json"


@dataclass(frozen=True)
class Route:
    """One operation. `path` uses OpenAPI's `{name}` for path parameters."""

    method: str
    path: str
    summary: str
    responses: dict[int, str]
    scopes: tuple[Scope, ...] = ()  # empty with no `security`: no authentication
    body: type[BaseModel] | None = None  # a JSON body validated by this model
    query: type[BaseModel] | None = None  # query parameters validated by this model
    security: tuple[str, ...] = ()  # other schemes (webhooks): any one of them
    headers: dict[str, str] = field(default_factory=dict)  # required request headers
    int_params: tuple[str, ...] = ()  # path parameters that are integers
    correlation_id: bool = False  # takes (and echoes) X-Correlation-ID
    tag: str = "api"
    content_type: str = JSON  # of the successful response
    response: type[BaseModel] | None = None  # the 200 body's model; default: an object


_RETRY = "The remote is unavailable; retry"


def _promote_responses(not_found: str) -> dict[int, str]:
    """What a promotion answers, by artifact id or by app and version: one table."""
    return {
        201: "Promoted (pushed)",
        202: "A promotion request was opened; approvals pending",
        404: not_found,
        409: "Refused by policy or a conflict",
        503: _RETRY,
    }


def _cd_responses(*, unauthorized: str, off: str) -> dict[int, str]:
    """What a CD system's webhook answers (ArgoCD, Flux): one table."""
    return {
        201: "Deployment recorded",
        200: "Already recorded",
        202: "Authentic but not usable: ignored, with the reason",
        401: unauthorized,
        404: off,
        422: "A body the shipped template never renders",
        503: _RETRY,
    }


_READ = (Scope.ARTIFACTS_READ,)
_DEPLOY_READ = (Scope.ARTIFACTS_READ, Scope.DEPLOYMENTS_WRITE)

# The registry: adding a route to the API is one entry here.
ROUTES: tuple[Route, ...] = (
    Route("get", "/healthz", "Liveness", {200: "The server is up"}, tag="health"),
    Route("get", "/api/v1/openapi.json", "This document", {200: "OpenAPI 3.1"}, tag="meta"),
    Route(
        "get",
        "/",
        "Read-only dashboard (HTML); apps 50 to a page",
        {
            200: "The dashboard page",
            400: "page is not a whole number >= 1",
            404: "past the last page",
        },
        query=DashboardQuery,
        tag="meta",
        content_type="text/html",
    ),
    Route(
        "post",
        "/api/v1/artifacts",
        "Register an artifact",
        {
            201: "Recorded and pushed",
            200: "Already recorded with the same content",
            409: "Name and version taken by other content",
            503: _RETRY,
        },
        (Scope.ARTIFACTS_WRITE,),
        body=ArtifactSpec,
        correlation_id=True,
        tag="artifacts",
    ),
    Route(
        "get",
        "/api/v1/artifacts",
        "List artifacts, newest first",
        {200: "A page of artifacts; Link rel=next when there is more"},
        _READ,
        query=ArtifactQuery,
        tag="artifacts",
    ),
    Route(
        "get",
        "/api/v1/artifacts/{artifact_id}",
        "One artifact",
        {200: "The record, its commit and promotion status", 404: "No such artifact"},
        _READ,
        tag="artifacts",
    ),
    Route(
        "post",
        "/api/v1/artifacts/{artifact_id}/promote",
        "Promote an artifact",
        _promote_responses("No such artifact"),
        (Scope.PROMOTIONS_WRITE,),
        body=PromoteBody,
        correlation_id=True,
        tag="promotions",
    ),
    Route(
        "post",
        "/api/v1/promotions",
        "Promote an artifact named by app and version",
        _promote_responses("No artifact with this app and version"),
        (Scope.PROMOTIONS_WRITE,),
        body=PromoteByName,
        correlation_id=True,
        tag="promotions",
    ),
    Route(
        "get",
        "/api/v1/promotions",
        "List promotions and promotion requests",
        {200: "A page of promotions"},
        _READ,
        query=PromotionQuery,
        tag="promotions",
    ),
    Route(
        "get",
        "/api/v1/promotions/{promotion_id}",
        "One promotion or request",
        {200: "The promotion or request", 404: "No such promotion"},
        _READ,
        tag="promotions",
    ),
    Route(
        "post",
        "/api/v1/promotions/{request_id}/approvals",
        "Review a request (local forge)",
        {
            201: "Review recorded; the request as it stands",
            404: "No such request",
            409: "Refused or a conflict",
            503: _RETRY,
        },
        (Scope.PROMOTIONS_APPROVE,),
        body=ReviewBody,
        tag="promotions",
    ),
    Route(
        "post",
        "/api/v1/deployments",
        "Report a deployment",
        {
            201: "Recorded",
            200: "Already recorded",
            404: "Unknown artifact or environment",
            409: "Conflicts with what is recorded",
            503: _RETRY,
        },
        (Scope.DEPLOYMENTS_WRITE,),
        body=DeploymentBody,
        correlation_id=True,
        tag="deployments",
    ),
    Route(
        "get",
        "/api/v1/deployments",
        "List deployments, newest first",
        {200: "A page of deployments"},
        _DEPLOY_READ,
        query=DeploymentQuery,
        tag="deployments",
    ),
    Route(
        "get",
        "/api/v1/deployments/{deployment_id}",
        "One deployment",
        {200: "The deployment", 404: "No such deployment"},
        _DEPLOY_READ,
        tag="deployments",
    ),
    Route(
        "post",
        "/api/v1/deployments/{deployment_id}/rollback",
        "Roll a deployment back",
        {
            201: "Rolled back (pushed)",
            202: "A rollback request was opened",
            403: "A deployment that did not fail: rolling it back needs promotions:write",
            404: "No such deployment",
            409: "Nothing legitimate to roll back to (the reason names what was passed over)",
            503: _RETRY,
        },
        (Scope.DEPLOYMENTS_WRITE, Scope.PROMOTIONS_WRITE),
        body=RollbackBody,
        correlation_id=True,
        tag="deployments",
    ),
    Route(
        "get",
        "/api/v1/outbox",
        "List notifications",
        {200: "A page of notifications; Link rel=next when there is more"},
        (Scope.ADMIN,),
        query=OutboxQuery,
        tag="outbox",
    ),
    Route(
        "get",
        "/api/v1/outbox/{row_id}",
        "One notification",
        {200: "The notification", 404: "No such notification"},
        (Scope.ADMIN,),
        int_params=("row_id",),
        tag="outbox",
    ),
    Route(
        "post",
        "/api/v1/outbox/{row_id}/retry",
        "Retry a dead letter",
        {200: "Requeued", 404: "No such notification", 409: "Not a dead letter"},
        (Scope.ADMIN,),
        int_params=("row_id",),
        tag="outbox",
    ),
    Route(
        "get",
        "/api/v1/tokens",
        "List API tokens (never their secrets)",
        {200: "Every token: name, scopes, groups, created_at, last_used_at"},
        (Scope.ADMIN,),
        tag="tokens",
    ),
    Route(
        "post",
        "/api/v1/tokens",
        "Create an API token; its secret is in this answer only",
        {
            201: "Created: the token's fields and `token`, its secret",
            409: "The name is taken (names ignore case)",
            422: "Invalid or reserved name, unknown scope, bad group; `fields` names it",
        },
        (Scope.ADMIN,),
        body=TokenBody,
        tag="tokens",
    ),
    Route(
        "delete",
        "/api/v1/tokens/{name}",
        "Revoke an API token: its next request is refused, on every replica",
        {200: "Revoked: the token's fields", 404: "No token of that name"},
        (Scope.ADMIN,),
        tag="tokens",
    ),
    Route(
        "get",
        "/api/v1/audit",
        "Audit events from the default branch's commit trailers, newest first",
        {
            200: "A page of events; Link rel=next when there is more. Each event has "
            "`trusted`: false when its commit is not signed by Ritmo's key",
            400: "A malformed filter, or since/until is neither a date nor a commit",
            422: "since or until is a commit off the default branch's first-parent line "
            "(a request branch's, say)",
            503: "The manifests remote is unavailable; retry",
        },
        _READ,
        query=AuditQuery,
        tag="audit",
        response=AuditPage,
    ),
    Route(
        "put",
        "/api/v1/policy",
        "Change the policy in force, judged by its policy_changes rule",
        {
            201: "Changed: one signed commit with Ritmo-Policy trailers",
            200: "Unchanged: the text is the policy in force",
            202: "A request was opened; approvals pending (approve it like a promotion)",
            409: "The policy changed meanwhile; send it again",
            422: "Invalid policy: each problem as line:column: message; nothing written",
            503: _RETRY,
        },
        (Scope.ADMIN,),
        body=PolicyBody,
        correlation_id=True,
        tag="policy",
    ),
    Route(
        "get",
        "/api/v1/environments",
        "What runs where: apps x environments as the default branch pins them",
        {
            200: "Per app and environment: the pinned version, its commit, whether Ritmo "
            "recorded it, deployment health",
            503: "The policy or the manifests mirror cannot be read yet; retry",
        },
        _READ,
        query=EnvironmentsQuery,
        tag="environments",
        response=Environments,
    ),
    Route(
        "post",
        "/webhooks/github",
        "GitHub App webhook",
        {
            200: "Ping answered or a duplicate delivery",
            202: "Queued or ignored",
            400: "Missing event headers or not JSON",
            401: "Bad signature",
            404: "Off: forge.kind is not github or no webhook_secret",
        },
        security=("githubSignature",),
        headers={
            "X-GitHub-Event": "The event name",
            "X-GitHub-Delivery": "The delivery id (at most 128 characters)",
        },
        tag="webhooks",
    ),
    Route(
        "post",
        "/webhooks/argocd",
        "ArgoCD notifications webhook",
        _cd_responses(unauthorized="Wrong token", off="Off: set cd.argocd_token"),
        security=("argocdToken",),
        correlation_id=True,
        tag="webhooks",
    ),
    Route(
        "post",
        "/webhooks/flux",
        "Flux notification-controller webhook",
        _cd_responses(unauthorized="Bad signature", off="Off: set cd.flux_secret"),
        security=("fluxSignature",),
        correlation_id=True,
        tag="webhooks",
    ),
)
