"""OpenAPI `links`: which operation's answer gives the ids another operation takes.

A client (or schemathesis' stateful phase) follows them: register an artifact, then read
it, promote it, review the request that opened, report a deployment, roll it back, retry
an outbox row. Without them an operation that takes an id is only ever called with ids
made up, and answers 404. `build_document` puts each link on its source's response and
refuses one whose target or parameters name nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Link:
    """`source` answers `codes`; `target` takes `parameters` (name -> runtime expression,
    e.g. `$response.body#/id`) from that answer. `method path` names each operation."""

    name: str
    source: str
    codes: tuple[int, ...]
    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    description: str = ""
    request_body: dict[str, str] | None = None  # fields of the target's body, as expressions


_ART = "/api/v1/artifacts/{artifact_id}"
_PROMOTION = "/api/v1/promotions/{promotion_id}"
_REVIEW = "post /api/v1/promotions/{request_id}/approvals"
_DEPLOYMENT = "/api/v1/deployments/{deployment_id}"
_ROW = "/api/v1/outbox/{row_id}"


def _to_artifact(source: str, codes: tuple[int, ...], expr: str) -> list[Link]:
    return [
        Link("GetArtifact", source, codes, f"get {_ART}", {"artifact_id": expr}),
        Link("PromoteArtifact", source, codes, f"post {_ART}/promote", {"artifact_id": expr}),
    ]


def _to_request(source: str, codes: tuple[int, ...], expr: str) -> list[Link]:
    return [
        Link("GetRequest", source, codes, f"get {_PROMOTION}", {"promotion_id": expr}),
        Link("ReviewRequest", source, codes, _REVIEW, {"request_id": expr}),
    ]


def _to_deployment(source: str, codes: tuple[int, ...], expr: str) -> list[Link]:
    return [
        Link("GetDeployment", source, codes, f"get {_DEPLOYMENT}", {"deployment_id": expr}),
        Link("RollBack", source, codes, f"post {_DEPLOYMENT}/rollback", {"deployment_id": expr}),
    ]


def _to_row(source: str, expr: str) -> list[Link]:
    return [
        Link("GetNotification", source, (200,), f"get {_ROW}", {"row_id": expr}),
        Link("RetryNotification", source, (200,), f"post {_ROW}/retry", {"row_id": expr}),
    ]


_REGISTER = "post /api/v1/artifacts"
_APP = {"app": "$response.body#/name"}
# A report that the artifact runs where it is pinned (its promotion status).
_REPORT = {"artifact_id": "$response.body#/id", "environment": "$response.body#/promotion_status"}

LINKS: tuple[Link, ...] = (
    # A registration: the artifact, and what lists it by its app.
    *_to_artifact(_REGISTER, (201, 200), "$response.body#/id"),
    Link("ItsAuditTrail", _REGISTER, (201, 200), "get /api/v1/audit", _APP),
    Link("ReportItsDeployment", _REGISTER, (201, 200), "post /api/v1/deployments",
         request_body=_REPORT),
    Link("PromoteByName", _REGISTER, (201, 200), "post /api/v1/promotions",
         request_body={"app": "$response.body#/name", "version": "$response.body#/version"},
         description="Promote the artifact by its app and version"),
    *_to_request("post /api/v1/promotions", (202,), "$response.body#/request/id"),
    *_to_artifact("get /api/v1/artifacts", (200,), "$response.body#/items/0/id"),
    Link("RegisterAnotherVersion", "get /api/v1/artifacts", (200,), _REGISTER,
         request_body={"name": "$response.body#/items/0/name"},
         description="Register another version of a listed app"),
    Link("ReportItsDeployment", f"get {_ART}", (200,), "post /api/v1/deployments",
         request_body=_REPORT),
    Link("ItsAuditTrail", f"get {_ART}", (200,), "get /api/v1/audit", _APP),
    Link("PromoteArtifact", f"get {_ART}", (200,), f"post {_ART}/promote",
         {"artifact_id": "$response.body#/id"}),
    # A promotion: the request it opened (202), or the promotion made (201).
    *_to_request(f"post {_ART}/promote", (202,), "$response.body#/request/id"),
    Link("GetPromotion", f"post {_ART}/promote", (201,), f"get {_PROMOTION}",
         {"promotion_id": "$response.body#/promotion/id"}),
    *_to_request("get /api/v1/promotions", (200,), "$response.body#/items/0/id"),
    Link("ReviewRequest", f"get {_PROMOTION}", (200,), _REVIEW,
         {"request_id": "$response.body#/id"}),
    Link("GetRequest", _REVIEW, (201,), f"get {_PROMOTION}",
         {"promotion_id": "$response.body#/id"}),
    # A deployment report, and the rollback it may need.
    *_to_deployment("post /api/v1/deployments", (201, 200), "$response.body#/id"),
    *_to_deployment("get /api/v1/deployments", (200,), "$response.body#/items/0/id"),
    Link("RollBack", f"get {_DEPLOYMENT}", (200,), f"post {_DEPLOYMENT}/rollback",
         {"deployment_id": "$response.body#/id"}),
    *_to_request(f"post {_DEPLOYMENT}/rollback", (202,), "$response.body#/request/id"),
    # The audit trail names requests and deployments.
    Link("GetRequest", "get /api/v1/audit", (200,), f"get {_PROMOTION}",
         {"promotion_id": "$response.body#/items/0/request_id"}),
    Link("GetDeployment", "get /api/v1/audit", (200,), f"get {_DEPLOYMENT}",
         {"deployment_id": "$response.body#/items/0/deployment_id"}),
    # The outbox: a row, and its retry.
    *_to_row("get /api/v1/outbox", "$response.body#/items/0/id"),
    Link("RetryNotification", f"get {_ROW}", (200,), f"post {_ROW}/retry",
         {"row_id": "$response.body#/id"}),
    # Tokens: the one just made can be revoked.
    Link("RevokeToken", "post /api/v1/tokens", (201,), "delete /api/v1/tokens/{name}",
         {"name": "$response.body#/name"}),
    Link("ListTokens", "post /api/v1/tokens", (201,), "get /api/v1/tokens"),
    # The policy: what runs where is read before it is changed; a change may open a
    # request like a promotion's.
    Link("ChangePolicy", "get /api/v1/environments", (200,), "put /api/v1/policy",
         description="Change the policy in force once the environments are read"),
    *_to_request("put /api/v1/policy", (202,), "$response.body#/request/id"),
)  # fmt: skip
