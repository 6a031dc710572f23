"""Hostile input catalogue: one table, read top to bottom.

Every row is refused with a clear answer (a 4xx whose JSON body names the field or the
reason, or a refusal comment on the pull request), and after it the manifests remote's
refs are where they were, nothing new waits in the webhook queue and no deployment is
recorded. A few rows are *accepted* because the value is harmless as data (a YAML tag or
anchor in a metadata string): those rows show the record written still parses back to
the exact value, in one document, with no extra keys; that is how injection is refused.

Rows run in one of two worlds: "local" (the local forge, the two-approvers policy,
trusted CI signing keys, the ArgoCD and Flux endpoints on) or "github" (the GitHub forge
over the sandbox of tests/forge/github_sandbox.py, the policy with GitHub teams).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from ruamel.yaml import YAML

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings
from bot.manifests.records import artifact_id
from bot.runtime import Runtime
from bot.webhooks.router import Event
from bot.webhooks.verify import signature_for
from tests.api.test_signatures import _new_key, _sign
from tests.deploy.test_flux import SECRET as FLUX_SECRET
from tests.deploy.test_flux import _event as flux_event
from tests.deploy.test_rollback_flow import ARGOCD_TOKEN
from tests.deploy.test_rollback_flow import _report as argocd_report
from tests.forge.github_sandbox import (
    INSTALLATION_ID,
    REPOSITORY,
    WEBHOOK_SECRET,
    GitHubSandbox,
    sandbox,
    with_github,
)
from tests.helpers import (
    TWO_APPROVERS_POLICY,
    alias_bomb,
    artifact_body,
    bearer,
    checksum,
    git,
    kill_gpg_agent,
    remote_refs,
    show,
)
from tests.webhooks.test_comments import POLICY as GITHUB_POLICY
from tests.webhooks.test_comments import _comment, _first_reply, _payload, _permission, _reply

MAIN = "refs/heads/main"
REQUEST_BRANCH = "refs/heads/ritmo/promote/web/production"
DEPLOYMENTS = "refs/heads/ritmo/deployments"
MIB = 1024 * 1024
RECORD_KEYS = {
    "apiVersion", "kind", "id", "name", "version", "build_id", "storage_url", "image",
    "checksum", "metadata", "created_at", "signature",
}  # fmt: skip


# ---------------------------------------------------------------------------------------
# The world a row runs in, and what a row is


@dataclass
class World:
    client: FlaskClient
    rt: Runtime
    remote: Path
    tokens: dict[str, str]
    keys: dict[str, Any]
    tmp: Path
    gh: GitHubSandbox | None = None
    seen: list[str] = dataclass_field(default_factory=list)  # deliveries a test handler took

    def token(self, name: str, *scopes: Scope, groups: tuple[str, ...] = ()) -> str:
        return self.rt.tokens.create(name, list(scopes), list(groups))


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # the error and each field with its message; or the whole body; or the reply


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[World], Any]
    act: Callable[[World, Any], Answer]
    expect_status: int
    expect_text: str
    world: str = "local"
    # Refs an *accepted* row may move (a harmless record written, a request branch
    # opened); every other ref must stay where it was.
    moves: frozenset[str] = frozenset()
    check: Callable[[World, Any], None] | None = None  # what else must hold afterwards


def _answer(resp: Any) -> Answer:
    body = resp.get_json(silent=True)
    if resp.status_code >= 400:
        assert isinstance(body, dict) and body.get("error"), (resp.status_code, resp.data[:300])
        parts = [str(body["error"])]
        parts += [field(f["field"]) + f["message"] for f in body.get("fields", [])]
        return Answer(resp.status_code, " | ".join(parts))
    return Answer(resp.status_code, json.dumps(body, ensure_ascii=False))


def field(name: str) -> str:
    """How an answer's text names a refused field: `field version: <why>`."""
    return f"field {name}: "


def nothing(w: World) -> None:
    return None


# ---------------------------------------------------------------------------------------
# Acts and setups shared by the rows


def post_artifact(**overrides: Any) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        resp = w.client.post(
            "/api/v1/artifacts", json=artifact_body(**overrides), headers=bearer(w.tokens["ci"])
        )
        return _answer(resp)

    return act


def post_artifact_without_version(**overrides: Any) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        body = artifact_body(**overrides)
        del body["version"]
        resp = w.client.post("/api/v1/artifacts", json=body, headers=bearer(w.tokens["ci"]))
        return _answer(resp)

    return act


def post_raw(path: str, raw: bytes, token: str = "ci") -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        headers = {"Content-Type": "application/json", **bearer(w.tokens[token])}
        return _answer(w.client.post(path, data=raw, headers=headers))

    return act


def staged(w: World, version: str = "2.0.0") -> str:
    """An artifact recorded and, by the two-approvers policy, pinned in dev and staging."""
    resp = w.client.post(
        "/api/v1/artifacts", json=artifact_body(version=version), headers=bearer(w.tokens["ci"])
    )
    assert resp.status_code == 201 and resp.json["promotion_status"] == "staging", resp.json
    return str(resp.json["id"])


def requested(w: World) -> dict[str, Any]:
    """A pending staging -> production request (needs ops-team and security-team)."""
    art = staged(w)
    resp = w.client.post(
        f"/api/v1/artifacts/{art}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(w.tokens["promoter"]),
    )
    assert resp.status_code == 202 and resp.json["status"] == "pending", resp.json
    return dict(resp.json["request"])


def failed_deployment(w: World) -> str:
    """A failed deployment of web 3.0.0 in dev, reported over the CD API."""
    art = staged(w, "3.0.0")
    cd = w.token("cd-system", Scope.DEPLOYMENTS_WRITE)
    body = {"artifact_id": art, "environment": "dev", "status": "failed",
            "target_type": "kubernetes", "deployed_by": "cd-system"}  # fmt: skip
    resp = w.client.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def get(path: str, token: str = "reader") -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        return _answer(w.client.get(path, headers=bearer(w.tokens[token])))

    return act


def get_artifact_like(
    mangle: Callable[[str], str],
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(setup, act): GET a real artifact's id, mangled (a homoglyph, a trailing dot...)."""

    def act(w: World, art: str) -> Answer:
        wrong = mangle(art)
        assert wrong != art
        return _answer(
            w.client.get(f"/api/v1/artifacts/{wrong}", headers=bearer(w.tokens["reader"]))
        )

    return staged, act


def fullwidth_digit(art: str) -> str:
    """The id with its first digit written in fullwidth (U+FF10..U+FF19)."""
    at = next(i for i, c in enumerate(art) if c.isdigit())
    return art[:at] + chr(0xFF10 + int(art[at])) + art[at + 1 :]


def promote_path(artifact: str) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        resp = w.client.post(
            f"/api/v1/artifacts/{artifact}/promote",
            json={"from": "staging", "to": "production"},
            headers=bearer(w.tokens["promoter"]),
        )
        return _answer(resp)

    return act


def promote_raw(raw: bytes) -> Callable[[World, Any], Answer]:
    def act(w: World, art: str) -> Answer:
        headers = {"Content-Type": "application/json", **bearer(w.tokens["promoter"])}
        return _answer(w.client.post(f"/api/v1/artifacts/{art}/promote", data=raw, headers=headers))

    return act


def promote_body(**body: Any) -> Callable[[World, Any], Answer]:
    def act(w: World, art: str) -> Answer:
        resp = w.client.post(
            f"/api/v1/artifacts/{art}/promote", json=body, headers=bearer(w.tokens["promoter"])
        )
        return _answer(resp)

    return act


def approve_path(request_id: str) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        alice = w.token("alice", Scope.PROMOTIONS_APPROVE, groups=("ops-team",))
        return _answer(
            w.client.post(f"/api/v1/promotions/{request_id}/approvals", headers=bearer(alice))
        )

    return act


def rollback_path(deployment_id: str) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        cd = w.token("cd-system", Scope.DEPLOYMENTS_WRITE)
        return _answer(
            w.client.post(f"/api/v1/deployments/{deployment_id}/rollback", headers=bearer(cd))
        )

    return act


# -- YAML injection that is accepted as a plain string: the record must parse back intact


def yaml_value(value: str) -> Case:
    version = "5.0.0"
    meta = {"commit": value, "branch": "main"}

    def check(w: World, _: Any) -> None:
        text = show(w.remote, f"main:artifacts/web/{version}.yaml")
        docs = list(YAML(typ="safe").load_all(text))
        assert len(docs) == 1, text
        record = docs[0]
        assert set(record) <= RECORD_KEYS, text
        assert record["kind"] == "Artifact" and record["name"] == "web", text
        assert record["metadata"] == meta, text
        assert record["version"] == version
        shown = w.client.get(
            f"/api/v1/artifacts/{record['id']}", headers=bearer(w.tokens["reader"])
        )
        assert shown.json["metadata"] == meta

    return Case(
        f"metadata {value!r} is stored as that string",
        nothing,
        post_artifact(version=version, metadata=meta),
        201,
        '"metadata"',
        moves=frozenset({MAIN}),
        check=check,
    )


# -- signatures


def signed_by(signer: str, over: str | None = None) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        body = artifact_body()
        body["signature"] = _sign(w.keys[signer], over or body["checksum"])
        return _answer(
            w.client.post("/api/v1/artifacts", json=body, headers=bearer(w.tokens["ci"]))
        )

    return act


# -- webhooks


def _count_check_runs(w: World) -> None:
    @w.rt.router.register("check_run", "completed")
    def handle(event: Event, runtime: Any) -> None:
        w.seen.append(event.delivery_id)


CHECK_RUN = {"action": "completed", "installation": {"id": INSTALLATION_ID}, "check_run": {}}


def github_delivery(
    delivery: str = "d-hostile", secret: str = WEBHOOK_SECRET, tamper: bool = False
) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        body = json.dumps(CHECK_RUN).encode()
        signature = signature_for(secret, body)
        if tamper:
            body = body.replace(b"completed", b"requested")
        resp = w.client.post("/webhooks/github", data=body, headers={
            "X-GitHub-Event": "check_run", "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature, "Content-Type": "application/json",
        })  # fmt: skip
        w.rt.webhooks.drain()
        return _answer(resp)

    return act


def github_signed_raw(body: bytes) -> Callable[[World, Any], Answer]:
    """A delivery signed with the real secret (a leaked secret, or GitHub itself)."""

    def act(w: World, _: Any) -> Answer:
        resp = w.client.post("/webhooks/github", data=body, headers={
            "X-GitHub-Event": "check_run", "X-GitHub-Delivery": "d-deep",
            "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, body),
            "Content-Type": "application/json",
        })  # fmt: skip
        w.rt.webhooks.drain()
        return _answer(resp)

    return act


def flux_signed_raw(body: bytes) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        signature = "sha256=" + hmac.new(FLUX_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return _answer(w.client.post("/webhooks/flux", data=body, headers={
            "Content-Type": "application/json", "X-Signature": signature,
        }))  # fmt: skip

    return act


def github_delivered_once(w: World) -> None:
    _count_check_runs(w)
    first = github_delivery()(w, None)
    assert first.status == 202 and "queued" in first.text
    assert w.seen == ["d-hostile"]


def handled_once(w: World, _: Any) -> None:
    assert w.seen == ["d-hostile"]


def handled_never(w: World, _: Any) -> None:
    assert w.seen == []


def flux(secret: str = FLUX_SECRET, tamper: bool = False) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        body = flux_event("kustomization-succeeded", "web-dev", remote_refs(w.remote)[MAIN])
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if tamper:
            body = body.replace(b"ReconciliationSucceeded", b"ReconciliationFailed")
        return _answer(w.client.post("/webhooks/flux", data=body, headers={
            "Content-Type": "application/json", "X-Signature": signature,
        }))  # fmt: skip

    return act


def flux_reported_once(w: World) -> None:
    staged(w)
    assert flux()(w, None).status == 201


def argocd(token: str = ARGOCD_TOKEN) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        tip = remote_refs(w.remote)[MAIN]
        return _answer(argocd_report(w.client, "on-deployed", "web-dev", tip, token=token))

    return act


def argocd_reported_once(w: World) -> None:
    staged(w)
    assert argocd()(w, None).status == 201


def one_deployment(w: World, _: Any) -> None:
    assert w.rt.deployments.records.search()[1] == 1


# -- approvals


def review(
    who: str, groups: tuple[str, ...], stale: bool = False
) -> Callable[[World, Any], Answer]:
    def act(w: World, req: dict[str, Any]) -> Answer:
        if w.rt.tokens.find(who) is not None:  # the same person (any case): a new token
            w.rt.tokens.revoke(who)
        token = w.token(who, Scope.PROMOTIONS_APPROVE, groups=groups)
        body = {"commit": remote_refs(w.remote)[MAIN]} if stale else {}
        resp = w.client.post(
            f"/api/v1/promotions/{req['id']}/approvals", json=body, headers=bearer(token)
        )
        return _answer(resp)

    return act


def still_pending(progress: str) -> Callable[[World, Any], None]:
    def check(w: World, state: Any) -> None:
        pending = w.rt.requests_index.pending()
        assert len(pending) == 1, pending
        described = w.rt.requests.describe(pending[0].id)
        assert described["status"] == "pending" and described["progress"] == progress
        production = show(w.remote, "main:apps/web/overlays/production/kustomization.yaml")
        assert '"2.0.0"' not in production

    return check


# -- a branch that weakens .ritmo/policy.yaml

WEAK_POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging, auto_promote: true}
  - {from: staging, to: production}
apps:
  web: {}
"""


def weakened_policy_branch(w: World) -> dict[str, Any]:
    """Someone pushes a branch (a pull request's head) whose policy lets production in
    without approvals; then a promotion to production is asked for."""
    work = w.tmp / "weaken"
    git(w.tmp, "clone", "--quiet", str(w.remote), str(work))
    git(work, "checkout", "--quiet", "-b", "relax-policy")
    (work / ".ritmo" / "policy.yaml").write_text(WEAK_POLICY)
    git(work, "-c", "user.name=Mallory", "-c", "user.email=mallory@example.com",
        "commit", "--quiet", "-am", "Relax the production rule")  # fmt: skip
    git(work, "push", "--quiet", "origin", "relax-policy")
    return {"art": staged(w)}  # main moved: Ritmo re-read the policy, main's


def promote_to_production(w: World, state: dict[str, Any]) -> Answer:
    resp = w.client.post(
        f"/api/v1/artifacts/{state['art']}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(w.tokens["promoter"]),
    )
    return _answer(resp)


# -- comment commands


def commenter_without_permission(w: World) -> None:
    assert w.gh is not None
    ci = w.token("ci-gh", Scope.ARTIFACTS_WRITE)
    resp = w.client.post(
        "/api/v1/artifacts", json=artifact_body(version="2.0.0"), headers=bearer(ci)
    )
    assert resp.status_code == 201 and resp.json["promotion_status"] == "dev", resp.json
    w.gh.token()
    _permission(w.gh, "mallory", "collaborator-permission-read")
    w.gh.team("ops")
    w.gh.team("security")
    _first_reply(w.gh)


def comment(body: str, login: str) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        assert w.gh is not None
        status = _comment(w.client, w.rt, _payload(login=login, body=body), delivery="c-1")
        return Answer(status, _reply(w.gh))

    return act


def no_pull_request(w: World, _: Any) -> None:
    assert w.gh is not None
    assert not w.gh.sent("POST", f"/repos/{REPOSITORY}/pulls")
    assert w.rt.index.search(promotion_status="staging")[1] == 0


# -- scopes


def with_scope(scope: Scope, method: str, path: str, body: Any = None) -> Callable[..., Answer]:
    """A token holding only `scope` calls an endpoint it must not reach. `{art}`,
    `{req}` and `{dep}` in the path are a real artifact, request and deployment."""

    def act(w: World, state: dict[str, str]) -> Answer:
        token = w.token(f"only-{scope.value.replace(':', '-')}", scope, groups=("ops-team",))
        url = path.format(**state)
        payload = body(state) if callable(body) else body
        resp = w.client.open(url, method=method, json=payload, headers=bearer(token))
        return _answer(resp)

    return act


def everything(w: World) -> dict[str, str]:
    """A pending request for web 2.0.0, and a failed deployment of web 3.0.0 in dev."""
    req = requested(w)
    return {"art": artifact_id("web", "2.0.0"), "req": req["id"], "dep": failed_deployment(w)}


def scope_case(scope: Scope, method: str, path: str, wanted: str, body: Any = None) -> Case:
    return Case(
        f"{scope.value} token on {method} {path}",
        everything,
        with_scope(scope, method, path, body),
        403,
        f"lacks the scope {wanted}",
    )


ARTIFACT = artifact_body(version="9.9.9")
PROMOTE = {"from": "staging", "to": "production"}


def deployment(state: dict[str, str]) -> dict[str, Any]:
    return {"artifact_id": state["art"], "environment": "staging", "target_type": "kubernetes"}


# -- abuse (issue 14): anonymous requests that grow /metrics, YAML that expands


def made_up_methods(w: World) -> list[str]:
    """Made-up methods and paths, anonymous: none may become a label value."""
    methods = [f"BREW{i}" for i in range(50)]
    for i, method in enumerate(methods):
        w.client.open(f"/healthz/probe-{i}" if i % 2 else "/healthz", method=method)
    return methods


def metrics_after(w: World, methods: list[str]) -> Answer:
    return _answer(w.client.open("/metrics", method="BREW-AGAIN"))


def metrics_hold_none_of_them(w: World, methods: list[str]) -> None:
    text = w.client.get("/metrics").get_data(as_text=True)
    assert not any(m in text for m in methods) and "probe-" not in text, text[:2000]
    assert 'method="other",route="unmatched"' in text
    assert 'method="other",route="/healthz"' not in text  # 405: no rule matched


def put_policy(text: str) -> Callable[[World, Any], Answer]:
    def act(w: World, _: Any) -> Answer:
        started = time.perf_counter()
        resp = w.client.put(
            "/api/v1/policy", json={"policy": text}, headers=bearer(w.tokens["admin"])
        )
        assert time.perf_counter() - started < 1.0
        return _answer(resp)

    return act


# ---------------------------------------------------------------------------------------
# The catalogue

RTL = "\u202e"
CYRILLIC_A = "\u0430"
FULLWIDTH_1 = "\uff11"
NAME, VERSION = field("name"), field("version")

CASES: list[Case] = [
    # -- names and versions on POST /api/v1/artifacts ------------------------------------
    Case("name ../etc", nothing, post_artifact(name="../etc"), 422, NAME),
    Case("name ..%2fetc", nothing, post_artifact(name="..%2fetc"), 422, NAME),
    Case("name absolute /etc/passwd", nothing, post_artifact(name="/etc/passwd"), 422, NAME),
    Case("name web/../x", nothing, post_artifact(name="web/../x"), 422, NAME),
    Case("name with NUL", nothing, post_artifact(name="web\x00"), 422, NAME),
    Case("name with RTL override", nothing, post_artifact(name=f"web{RTL}"), 422, NAME),
    Case("name Cyrillic homoglyph", nothing, post_artifact(name=f"{CYRILLIC_A}pi"), 422, NAME),
    Case("name fullwidth digit", nothing, post_artifact(name=f"web{FULLWIDTH_1}"), 422, NAME),
    Case("name trailing dot", nothing, post_artifact(name="web."), 422, NAME),
    Case("name very long", nothing, post_artifact(name="w" * 10_000), 422, NAME),
    Case("name no app the policy declares", nothing, post_artifact(name="made-up"), 422,
         NAME + "'made-up' is not an app the policy declares (declared: web)"),
    Case("version ../../x", nothing, post_artifact(version="../../x"), 422, VERSION),
    Case("version 1..%2fx", nothing, post_artifact(version="1..%2fx"), 422, VERSION),
    Case("version absolute /tmp/x", nothing, post_artifact(version="/tmp/x"), 422, VERSION),
    Case("version 1.0/../x", nothing, post_artifact(version="1.0/../x"), 422, VERSION),
    Case("version with NUL", nothing, post_artifact(version="1.0\x00"), 422, VERSION),
    Case("version with RTL override", nothing, post_artifact(version=f"1.0{RTL}"), 422, VERSION),
    Case("version Cyrillic homoglyph", nothing, post_artifact(version=f"1.0-{CYRILLIC_A}"), 422,
         VERSION),
    Case("version fullwidth digit", nothing, post_artifact(version=f"{FULLWIDTH_1}.0"), 422,
         VERSION),
    Case("version trailing dot", nothing, post_artifact(version="1.2.3."), 422, VERSION),
    Case("version very long", nothing, post_artifact(version="1" * 129), 422, VERSION),
    Case("metadata.version traversal (no version)", nothing,
         post_artifact_without_version(metadata={"version": "../../x"}), 422, VERSION),
    Case("metadata.version trailing dot (no version)", nothing,
         post_artifact_without_version(metadata={"version": "1.2.3."}), 422, VERSION),
    # -- ids in paths ----------------------------------------------------------------------
    Case("GET artifact ../../etc/passwd", nothing, get("/api/v1/artifacts/../../etc/passwd"),
         404, "no such resource"),
    Case("GET artifact ..%2f..%2fetc", nothing, get("/api/v1/artifacts/..%2f..%2fetc"), 404,
         "no such resource"),
    Case("GET artifact %2Fetc%2Fpasswd", nothing, get("/api/v1/artifacts/%2Fetc%2Fpasswd"), 404,
         "no such resource"),
    Case("GET artifact with NUL", nothing, get("/api/v1/artifacts/art-%00"), 404, "no artifact"),
    Case("GET artifact with RTL override", nothing, get(f"/api/v1/artifacts/art-{RTL}1"), 404,
         "no artifact"),
    Case("GET artifact, Cyrillic a in a real id", *get_artifact_like(
        lambda a: a.replace("a", CYRILLIC_A, 1)), 404, "no artifact"),
    Case("GET artifact, fullwidth digit in a real id", *get_artifact_like(fullwidth_digit), 404,
         "no artifact"),
    Case("GET artifact, real id and a trailing dot", *get_artifact_like(lambda a: a + "."), 404,
         "no artifact"),
    Case("GET artifact, real id in upper case", *get_artifact_like(str.upper), 404, "no artifact"),
    Case("GET artifact, very long id", nothing, get("/api/v1/artifacts/art-" + "0" * 10_000), 404,
         "no artifact"),
    Case("promote ../../x", nothing, promote_path("..%2f..%2fx"), 404, "no such resource"),
    Case("promote id with RTL override", nothing, promote_path(f"art-{RTL}"), 404, "no artifact"),
    Case("promote id with a trailing dot", nothing, promote_path("art-1."), 404, "no artifact"),
    Case("promote to ../production", staged, promote_body(**{"from": "staging",
         "to": "../production"}), 422, field("to")),
    Case("promote to production, Cyrillic o", staged, promote_body(**{"from": "staging",
         "to": "producti\u043en"}), 422, field("to")),
    Case("approve request ..%2f", nothing, approve_path("req-..%2f..%2fx"), 404,
         "no such resource"),
    Case("approve request with NUL", nothing, approve_path("req-%00"), 404,
         "no promotion request"),
    Case("rollback deployment ../x", nothing, rollback_path("..%2fx"), 404, "no such resource"),
    Case("rollback deployment with RTL", nothing, rollback_path(f"dep-{RTL}"), 404,
         "no deployment"),
    Case("rollback deployment, very long id", nothing, rollback_path("dep-" + "f" * 10_000), 404,
         "no deployment"),
    # -- the anonymous dashboard --------------------------------------------------------
    Case("dashboard page -1", nothing, get("/?page=-1"), 400, field("page")),
    Case("dashboard page past the last", nothing, get("/?page=99"), 404,
         field("page") + "is past the last page"),
    # -- YAML injection in metadata -------------------------------------------------------
    Case("metadata value x\\nkind: Evil", nothing,
         post_artifact(metadata={"commit": "x\nkind: Evil"}), 422, field("metadata.commit")),
    Case("metadata value ---\\nkind: Evil (second document)", nothing,
         post_artifact(metadata={"commit": "---\nkind: Evil"}), 422, field("metadata.commit")),
    Case("metadata value with CR", nothing,
         post_artifact(metadata={"commit": "x\rkind: Evil"}), 422, field("metadata.commit")),
    Case("metadata key 'a: b'", nothing, post_artifact(metadata={"a: b": "x"}), 422,
         field("metadata.a: b")),
    Case("metadata key <<", nothing, post_artifact(metadata={"<<": "x"}), 422,
         field("metadata.<<")),
    Case("metadata nested mapping", nothing,
         post_artifact(metadata={"kind": {"evil": True}}), 422, field("metadata.kind")),
    yaml_value("!!python/object/apply:os.system ['id']"),
    yaml_value("&a [*a, *a]"),
    yaml_value("*a"),
    yaml_value("{"),
    yaml_value("---"),
    yaml_value("... "),
    yaml_value("kind: Evil"),
    yaml_value("'; \"quoted\" # comment"),
    # -- oversized and deep bodies --------------------------------------------------------
    Case("artifact body over 1 MiB", nothing,
         post_artifact(storage_url="s" * MIB), 413, "max_body_bytes"),
    Case("promote body over 1 MiB", staged, promote_body(**{"from": "staging", "to": "production",
         "notes": "n" * MIB}), 413, "max_body_bytes"),
    Case("artifact body nested 100k deep", nothing,
         post_raw("/api/v1/artifacts", b"[" * 100_000 + b"]" * 100_000), 400, "nested too deeply"),
    Case("artifact metadata nested 100k deep", nothing, post_raw(
        "/api/v1/artifacts", b'{"metadata": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001),
         400, "nested too deeply"),
    Case("promote body nested 100k deep", staged,
         promote_raw(b'{"notes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), 400,
         "nested too deeply"),
    Case("GitHub delivery nested 100k deep, validly signed", _count_check_runs,
         github_signed_raw(b'{"action": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), 400,
         "nested too deeply", world="github", check=handled_never),
    Case("Flux event nested 100k deep, validly signed", staged,
         flux_signed_raw(b'{"metadata": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"), 422,
         "nested too deeply"),
    Case("artifact metadata nested 500 deep", nothing, post_raw(
        "/api/v1/artifacts",
        json.dumps(artifact_body(metadata={"a": json.loads("[" * 500 + "]" * 500)})).encode()),
         422, field("metadata.a")),
    Case("metadata with 65 keys", nothing,
         post_artifact(metadata={f"k{i}": "v" for i in range(65)}), 422, field("metadata")),
    Case("metadata value of 1025 characters", nothing,
         post_artifact(metadata={"commit": "c" * 1025}), 422, field("metadata.commit")),
    Case("signature of 20 000 characters", nothing, post_artifact(signature="x" * 20_000), 422,
         field("signature")),
    Case("PUT /api/v1/policy with a nested-alias bomb (9**7 strings)", nothing,
         put_policy(alias_bomb(7)), 422, "too many aliases"),
    Case("PUT /api/v1/policy nested 1,000 deep", nothing,
         put_policy("environments: " + "[" * 1000 + "]" * 1000), 422, "nested too deeply"),
    # -- anonymous load ---------------------------------------------------------------------
    Case("made-up HTTP methods and paths are not label values in /metrics", made_up_methods,
         metrics_after, 405, "method not allowed here", check=metrics_hold_none_of_them),
    # -- signatures -------------------------------------------------------------------------
    Case("signature by an untrusted key", nothing, signed_by("stranger"), 422, "unknown key"),
    Case("trusted signature over another checksum", nothing,
         signed_by("trusted", over=checksum("another artifact")), 422, "does not verify"),
    # -- webhooks ---------------------------------------------------------------------------
    Case("GitHub delivery signed with another secret", _count_check_runs,
         github_delivery(secret="not the secret"), 401, "X-Hub-Signature-256", world="github",
         check=handled_never),
    Case("GitHub delivery whose body was changed after signing", _count_check_runs,
         github_delivery(tamper=True), 401, "X-Hub-Signature-256", world="github",
         check=handled_never),
    Case("GitHub delivery replayed", github_delivered_once, github_delivery(), 200, "duplicate",
         world="github", check=handled_once),
    Case("Flux event signed with another secret", staged, flux(secret="another-secret-0123456"),
         401, "X-Signature"),
    Case("Flux event changed after signing", staged, flux(tamper=True), 401, "X-Signature"),
    Case("Flux event replayed", flux_reported_once, flux(), 200, '"duplicate": true',
         check=one_deployment),
    Case("ArgoCD report with a forged token", staged, argocd(token="not-the-token-at-all"), 401,
         "X-Ritmo-Token"),
    Case("ArgoCD report replayed", argocd_reported_once, argocd(), 200, '"duplicate": true',
         check=one_deployment),
    # -- approvals --------------------------------------------------------------------------
    Case("self-approval by the requester", requested,
         review("Release-Bot", ("ops-team", "security-team")), 403, "requested this promotion",
         check=still_pending("0/2 approvals")),
    Case("approval by a non-member", requested, review("mallory", ()), 403,
         "in none of the approver groups", check=still_pending("0/2 approvals")),
    Case("approval of a stale head", requested, review("alice", ("ops-team",), stale=True), 409,
         "not the request's head", check=still_pending("0/2 approvals")),
    Case("approved_by in a promote body is a note", staged,
         promote_body(**{"from": "staging", "to": "production", "approved_by": ["alice", "bob"]}),
         202, "0/2 approvals", moves=frozenset({REQUEST_BRANCH}),
         check=still_pending("0/2 approvals")),
    Case("a branch weakening .ritmo/policy.yaml does not apply", weakened_policy_branch,
         promote_to_production, 202, "0/2 approvals", moves=frozenset({REQUEST_BRANCH}),
         check=still_pending("0/2 approvals")),
    # -- comment commands -------------------------------------------------------------------
    Case("/ritmo promote by a commenter without write access", commenter_without_permission,
         comment("/ritmo promote web 2.0.0 to staging", "mallory"), 202,
         "Refused: @mallory has no write access", world="github", check=no_pull_request),
    # -- tokens beyond their scope ----------------------------------------------------------
    scope_case(Scope.ARTIFACTS_WRITE, "POST", "/api/v1/artifacts/{art}/promote",
               "promotions:write", PROMOTE),
    scope_case(Scope.ARTIFACTS_WRITE, "POST", "/api/v1/promotions/{req}/approvals",
               "promotions:approve", {}),
    scope_case(Scope.ARTIFACTS_WRITE, "POST", "/api/v1/deployments", "deployments:write",
               deployment),
    scope_case(Scope.ARTIFACTS_WRITE, "POST", "/api/v1/deployments/{dep}/rollback",
               "deployments:write or promotions:write"),
    scope_case(Scope.ARTIFACTS_WRITE, "GET", "/api/v1/artifacts/{art}", "artifacts:read"),
    scope_case(Scope.ARTIFACTS_READ, "POST", "/api/v1/artifacts", "artifacts:write", ARTIFACT),
    scope_case(Scope.ARTIFACTS_READ, "POST", "/api/v1/artifacts/{art}/promote",
               "promotions:write", PROMOTE),
    scope_case(Scope.ARTIFACTS_READ, "POST", "/api/v1/promotions/{req}/approvals",
               "promotions:approve", {}),
    scope_case(Scope.ARTIFACTS_READ, "POST", "/api/v1/deployments", "deployments:write",
               deployment),
    scope_case(Scope.ARTIFACTS_READ, "POST", "/api/v1/deployments/{dep}/rollback",
               "deployments:write or promotions:write"),
    scope_case(Scope.ARTIFACTS_READ, "POST", "/api/v1/outbox/1/retry", "admin"),
    scope_case(Scope.PROMOTIONS_WRITE, "POST", "/api/v1/artifacts", "artifacts:write", ARTIFACT),
    scope_case(Scope.PROMOTIONS_WRITE, "POST", "/api/v1/promotions/{req}/approvals",
               "promotions:approve", {}),
    scope_case(Scope.PROMOTIONS_WRITE, "POST", "/api/v1/deployments", "deployments:write",
               deployment),
    scope_case(Scope.PROMOTIONS_APPROVE, "POST", "/api/v1/artifacts/{art}/promote",
               "promotions:write", PROMOTE),
    scope_case(Scope.PROMOTIONS_APPROVE, "POST", "/api/v1/artifacts", "artifacts:write",
               ARTIFACT),
    scope_case(Scope.PROMOTIONS_APPROVE, "POST", "/api/v1/deployments", "deployments:write",
               deployment),
    scope_case(Scope.PROMOTIONS_APPROVE, "POST", "/api/v1/deployments/{dep}/rollback",
               "deployments:write or promotions:write"),
    scope_case(Scope.DEPLOYMENTS_WRITE, "POST", "/api/v1/artifacts", "artifacts:write", ARTIFACT),
    scope_case(Scope.DEPLOYMENTS_WRITE, "POST", "/api/v1/artifacts/{art}/promote",
               "promotions:write", PROMOTE),
    scope_case(Scope.DEPLOYMENTS_WRITE, "POST", "/api/v1/promotions/{req}/approvals",
               "promotions:approve", {}),
    scope_case(Scope.DEPLOYMENTS_WRITE, "POST", "/api/v1/outbox/1/retry", "admin"),
]  # fmt: skip


# ---------------------------------------------------------------------------------------
# Fixtures: the world a row asks for


def _case(request: pytest.FixtureRequest) -> Case:
    case: Case = request.node.callspec.params["case"]
    return case


@pytest.fixture
def remote_policy(request: pytest.FixtureRequest) -> str:
    return GITHUB_POLICY if _case(request).world == "github" else TWO_APPROVERS_POLICY


@pytest.fixture(scope="module")
def ci_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A trusted CI signer and a stranger, each in their own gpg home."""
    homes = {who: tmp_path_factory.mktemp(who) for who in ("trusted", "stranger")}
    keys = {who: _new_key(home, f"hostile-{who}") for who, home in homes.items()}
    keyring = tmp_path_factory.mktemp("hostile-keyring") / "ci-signers.asc"
    gpg, fpr = keys["trusted"]
    keyring.write_text(gpg.export_keys(fpr))
    yield {**keys, "keyring": keyring}
    for home in homes.values():
        kill_gpg_agent(home)


@pytest.fixture
def settings(
    settings: Settings, request: pytest.FixtureRequest, ci_keys: dict[str, Any]
) -> Settings:
    configured = settings.model_copy(
        update={
            "cd": settings.cd.model_copy(
                update={"flux_secret": FLUX_SECRET, "argocd_token": ARGOCD_TOKEN}
            ),
            "signing": settings.signing.model_copy(
                update={
                    "trusted_keyring": ci_keys["keyring"],
                    "trusted_keys": [ci_keys["trusted"][1]],
                }
            ),
        }
    )
    return with_github(configured) if _case(request).world == "github" else configured


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    ci_keys: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    runtime.webhooks.notify = lambda: None  # type: ignore[method-assign]  # the test drains
    client = create_app(runtime.settings, runtime).test_client()
    w = World(client, runtime, remote, tokens, ci_keys, tmp_path)
    if _case(request).world != "github":
        yield w
        return
    with sandbox() as box:
        w.gh = box
        yield w


# ---------------------------------------------------------------------------------------
# The one test


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_hostile_input_is_refused(case: Case, world: World) -> None:
    state = case.setup(world)
    world.rt.webhooks.drain()
    refs = remote_refs(world.remote)
    queued = world.rt.deliveries.depth()
    deployments = world.rt.deployments.records.search()[1]
    pending = world.rt.requests_index.pending()

    answer = case.act(world, state)

    assert answer.status == case.expect_status, answer.text
    assert case.expect_text in answer.text, answer.text
    after = remote_refs(world.remote)
    kept = {ref: sha for ref, sha in refs.items() if ref not in case.moves}
    assert {ref: sha for ref, sha in after.items() if ref not in case.moves} == kept
    assert world.rt.deliveries.depth() == queued
    assert world.rt.deployments.records.search()[1] == deployments
    if not case.moves:
        assert world.rt.requests_index.pending() == pending
    if case.check is not None:
        case.check(world, state)
