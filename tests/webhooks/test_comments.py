"""`/ritmo` commands in issue comments: promote, status, help; one reply comment, edited."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings
from bot.forge.github_comments import STATUS_MARKER
from bot.runtime import Runtime
from bot.webhooks.comments import Help, Promote, Rollback, Status, find_command
from bot.webhooks.verify import signature_for
from tests.forge.github_sandbox import (
    REPOSITORY,
    SAMPLES,
    WEBHOOK_SECRET,
    GitHubSandbox,
    forge,
    sandboxed_runtime,
)
from tests.helpers import (
    artifact_body,
    bearer,
    git,
    kill_gpg_agent,
    remote_refs,
    sample_policy,
    show,
    trailers,
)

# dev -> staging needs nobody (a comment promotes at once); staging -> production needs
# one approval from each team (a comment opens a request).
POLICY = sample_policy("github-teams")

NUMBER = 12  # the pull request the samples' comments are on
COMMENTS = f"/repos/{REPOSITORY}/issues/{NUMBER}/comments"
OURS = 1999000111  # the id in comment-created.json and issue-comments.json
OVERLAY = "main:apps/web/overlays/{env}/kustomization.yaml"


def _payload(name: str = "issue_comment-created", **changes: Any) -> dict[str, Any]:
    """A documented issue_comment payload; `body`, `login`, `type`, `repository` change it."""
    payload: dict[str, Any] = json.loads((SAMPLES / "webhooks" / f"{name}.json").read_text())
    comment = payload["comment"]
    if "body" in changes:
        comment["body"] = changes["body"]
    if "login" in changes:
        for user in (comment["user"], payload["sender"]):
            user["login"] = changes["login"]
            user["type"] = changes.get("type", "User")
    if "repository" in changes:
        payload["repository"]["full_name"] = changes["repository"]
    return payload


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = sandboxed_runtime(settings)
    # The test drains the queue itself, so no background worker races it.
    runtime.webhooks.notify = lambda: None  # type: ignore[method-assign]
    yield runtime
    runtime.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt.settings, rt).test_client()


@pytest.fixture
def artifact(client: FlaskClient, rt: Runtime) -> dict[str, Any]:
    """web 2.0.0, recorded and pinned in dev by policy."""
    ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
    resp = client.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"),
                       headers=bearer(ci))  # fmt: skip
    assert resp.status_code == 201 and resp.json["promotion_status"] == "dev", resp.json
    body: dict[str, Any] = resp.json
    return body


def _comment(
    client: FlaskClient, rt: Runtime, payload: dict[str, Any], delivery: str = "d-1"
) -> int:
    """POST the delivery signed, as GitHub does, then handle the queue; the POST's status."""
    body = json.dumps(payload).encode()
    resp = client.post(
        "/webhooks/github",
        data=body,
        headers={
            "X-GitHub-Event": "issue_comment",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, body),
            "Content-Type": "application/json",
        },
    )
    rt.webhooks.drain()
    row = rt.deliveries.get(delivery)
    assert row is None or row["status"] == "done", row
    return resp.status_code


def _permission(gh: GitHubSandbox, login: str, sample: str) -> None:
    gh.add("GET", f"/repos/{REPOSITORY}/collaborators/{login}/permission", sample)


def _first_reply(gh: GitHubSandbox) -> None:
    """No reply on the pull request yet: the first answer is posted."""
    gh.app()  # the bot's login, to recognise its own comment
    gh.add("GET", COMMENTS, "issue-comments", body=[])
    gh.add("POST", COMMENTS, "comment-created")


def _reply(gh: GitHubSandbox) -> str:
    """The one reply, posted (or, after that, edited) last."""
    edits = gh.sent("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}")
    body: str = (edits or gh.sent("POST", COMMENTS))[-1]["body"]
    assert body.startswith(STATUS_MARKER)
    return body


def _promote_via_api(client: FlaskClient, rt: Runtime, art: dict[str, Any], to: str) -> Any:
    if rt.tokens.find("release-bot") is not None:  # names are unique: a fresh token
        rt.tokens.revoke("release-bot")
    promoter = rt.tokens.create("release-bot", [Scope.PROMOTIONS_WRITE])
    frm = {"staging": "dev", "production": "staging"}[to]
    return client.post(f"/api/v1/artifacts/{art['id']}/promote", json={"from": frm, "to": to},
                       headers=bearer(promoter))  # fmt: skip


class TestFindCommand:
    """The first `/ritmo` line outside code blocks; the rest of the comment is prose."""

    @pytest.mark.parametrize(
        ("body", "command"),
        [
            ("/ritmo promote web 2.0.0 to staging", Promote("web", "2.0.0", "staging")),
            ("LGTM\r\n  /ritmo promote web 2.0.0+b.1  to  production \r\n",
             Promote("web", "2.0.0+b.1", "production")),
            ("/ritmo status", Status()),
            ("/ritmo help\n/ritmo status", Help()),
            ("/ritmo", Help()),
            ("/ritmo deploy web", Help("`deploy` is not a Ritmo command.")),
            ("/ritmo promote web to staging",
             Help("`promote` takes `/ritmo promote <app> <version> to <env>`.")),
            ("/ritmo promote Web 1 to staging", Help("`Web` is not a valid app name.")),
            ("/ritmo promote web 1 to `x`", Help("`'x'` is not a valid environment name.")),
            ("/ritmo rollback web in staging", Rollback("web", "staging")),
            ("/ritmo rollback web", Help("`rollback` takes `/ritmo rollback <app> in <env>`.")),
            ("/ritmo rollback web in Prod",
             Help("`Prod` is not a valid app or environment name.")),
        ],
    )  # fmt: skip
    def test_commands(self, body: str, command: object) -> None:
        found = find_command(body)
        assert found is not None and found.command == command

    @pytest.mark.parametrize(
        "body",
        [
            "Thanks!",
            "Run `/ritmo status` to see it.",
            "    /ritmo status",  # an indented code block
            "> /ritmo status",  # a quote
            "```\n/ritmo promote web 2.0.0 to staging\n```",
            "/ritmostatus",
        ],
    )
    def test_no_command(self, body: str) -> None:
        assert find_command(body) is None


class TestPromote:
    """A permitted commenter promotes; the rule decides between a pin and a request."""

    def test_pins_when_no_approval_is_needed(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, artifact: Any
    ) -> None:
        gh.token()
        _permission(gh, "alice", "collaborator-permission-write")
        _first_reply(gh)
        before = git(remote, "rev-parse", "main").strip()
        assert _comment(client, rt, _payload()) == 202
        tip = git(remote, "rev-parse", "main").strip()
        assert git(remote, "rev-parse", f"{tip}^").strip() == before
        assert 'newTag: "2.0.0"' in show(remote, OVERLAY.format(env="staging"))
        commit = trailers(remote, tip)
        assert commit["Ritmo-Promoted-By"] == "alice"
        assert commit["Ritmo-Correlation-Id"] == "d-1"  # the GitHub delivery
        assert "#issuecomment-1999000200" in git(remote, "log", "-1", "--format=%B", tip)
        reply = _reply(gh)
        assert "@alice ran `/ritmo promote web 2.0.0 to staging`" in reply
        assert f"Promoted web 2.0.0 from dev to staging (commit {tip}" in reply
        assert rt.index.get(artifact["id"]).promotion_status == "staging"  # type: ignore[union-attr]

    def test_opens_a_request_when_the_rule_wants_approvals(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, artifact: Any
    ) -> None:
        assert _promote_via_api(client, rt, artifact, "staging").status_code == 201
        gh.opening()
        _permission(gh, "alice", "collaborator-permission-write")
        _first_reply(gh)
        before = git(remote, "rev-parse", "main").strip()
        body = "Ready for prod.\n/ritmo promote web 2.0.0 to production"
        assert _comment(client, rt, _payload(body=body)) == 202
        assert git(remote, "rev-parse", "main").strip() == before  # not before approvals
        branch = remote_refs(remote)["refs/heads/ritmo/promote/web/production"]
        assert 'newTag: "2.0.0"' in show(
            remote, f"{branch}:apps/web/overlays/production/kustomization.yaml"
        )
        assert trailers(remote, branch)["Ritmo-Requested-By"] == "alice"
        (pull,) = gh.sent("POST", f"/repos/{REPOSITORY}/pulls")
        assert pull["head"] == "ritmo/promote/web/production"
        (request,) = rt.requests_index.pending()
        assert request.requested_by == "alice" and request.forge_ref == "7"
        reply = _reply(gh)
        assert f"Opened promotion request `{request.id}` as #7" in reply
        assert "needs 1 from ops-team, 1 from security-team" in reply

        # The same command again (a second comment) keeps the request and its approvals.
        gh.add("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}", "comment-updated")
        assert _comment(client, rt, _payload(body=body), delivery="d-2") == 202
        assert len(gh.sent("POST", f"/repos/{REPOSITORY}/pulls")) == 1
        assert rt.requests_index.pending() == [request]
        assert "already has an open promotion request" in _reply(gh)

    def test_a_policy_group_member_without_write_access(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, remote: Path, artifact: Any
    ) -> None:
        gh.token()
        _permission(gh, "ops007", "collaborator-permission-read")
        gh.team("ops")
        gh.team("security")
        _first_reply(gh)
        assert _comment(client, rt, _payload(login="ops007")) == 202
        assert 'newTag: "2.0.0"' in show(remote, OVERLAY.format(env="staging"))
        assert "Promoted web 2.0.0 from dev to staging" in _reply(gh)

    @pytest.mark.parametrize(
        ("body", "why"),
        [
            ("/ritmo promote web 9.9.9 to staging", "no artifact web 9.9.9 is recorded"),
            ("/ritmo promote web 2.0.0 to production", "dev -> production skips an environment"),
            ("/ritmo promote web 2.0.0 to dev", "web 2.0.0 is already in dev"),
        ],
    )
    def test_refused_by_policy_or_state(
        self,
        client: FlaskClient,
        rt: Runtime,
        gh: GitHubSandbox,
        remote: Path,
        artifact: Any,
        body: str,
        why: str,
    ) -> None:
        gh.token()
        _permission(gh, "alice", "collaborator-permission-write")
        _first_reply(gh)
        before = remote_refs(remote)
        assert _comment(client, rt, _payload(body=body)) == 202
        assert remote_refs(remote) == before
        assert why in _reply(gh)


class TestPermission:
    """Write access, or membership of a policy group; a refusal says why and writes nothing."""

    @pytest.mark.parametrize(
        ("login", "sample"),
        [("mallory", "collaborator-permission-read"), ("nobody", "user-not-found")],
    )
    def test_refused(
        self,
        client: FlaskClient,
        rt: Runtime,
        gh: GitHubSandbox,
        remote: Path,
        artifact: Any,
        login: str,
        sample: str,
    ) -> None:
        gh.token()
        _permission(gh, login, sample)
        gh.team("ops")
        gh.team("security")
        _first_reply(gh)
        before = remote_refs(remote)
        assert _comment(client, rt, _payload(login=login)) == 202
        assert remote_refs(remote) == before
        assert rt.index.get(artifact["id"]).promotion_status == "dev"  # type: ignore[union-attr]
        reply = _reply(gh)
        assert f"Refused: @{login} has no write access to {REPOSITORY}" in reply
        assert "groups: `ops-team` (acme/ops), `security-team` (acme/security)." in reply
        assert not gh.sent("POST", f"/repos/{REPOSITORY}/pulls")

    def test_status_needs_permission_help_does_not(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox
    ) -> None:
        gh.token()
        _permission(gh, "mallory", "collaborator-permission-read")
        gh.team("ops")
        gh.team("security")
        _first_reply(gh)
        _comment(client, rt, _payload(login="mallory", body="/ritmo status"))
        assert "Refused: @mallory" in _reply(gh)
        gh.add("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}", "comment-updated")
        _comment(client, rt, _payload(login="mallory", body="/ritmo help"), delivery="d-2")
        assert "| `/ritmo status` |" in _reply(gh)
        permission = f"/repos/{REPOSITORY}/collaborators/mallory/permission"
        assert len(gh.sent("GET", permission)) == 1  # help asked nobody


class TestReplies:
    """Status and help answers, in one comment that later commands edit in place."""

    def test_status_then_help_edit_one_comment(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, artifact: Any, remote: Path
    ) -> None:
        assert _promote_via_api(client, rt, artifact, "staging").status_code == 201
        gh.opening()
        gh.app()
        gh.team("ops")
        gh.team("security")
        gh.reviews(body=[])
        opened = _promote_via_api(client, rt, artifact, "production")
        assert opened.status_code == 202, opened.json
        request_id = opened.json["request"]["id"]
        _permission(gh, "alice", "collaborator-permission-write")
        _first_reply(gh)
        gh.add("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}", "comment-updated")
        calls_before = rt.requests.forge.calls["comment"]  # type: ignore[attr-defined]

        _comment(client, rt, _payload(body="/ritmo status"))
        status = _reply(gh)
        assert "| App | dev | staging | production |" in status
        # Production: the scaffold's pin, as git says, which Ritmo never recorded.
        seed = git(remote, "rev-list", "--max-parents=0", "main").strip()[:7]
        assert f"| web | 2.0.0 | 2.0.0 | 0.1.0 (unrecorded, {seed}) |" in status
        assert "Open promotion requests (1):" in status
        assert f"- `{request_id}` web 2.0.0 staging -> production: 0/2 approvals" in status
        assert "needs 1 from ops-team, 1 from security-team (by release-bot" in status

        _comment(client, rt, _payload(body="/ritmo help"), delivery="d-2")
        assert len(gh.sent("POST", COMMENTS)) == 1
        (edit,) = gh.sent("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}")
        assert edit["body"].startswith(f"{STATUS_MARKER}\n@alice ran `/ritmo help`:\n\n")
        assert "| `/ritmo promote <app> <version> to <env>` |" in edit["body"]
        # Listing, then posting; then only the edit: the id is remembered.
        assert rt.requests.forge.calls["comment"] - calls_before == 3  # type: ignore[attr-defined]

    def test_an_unknown_command_gets_help(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox
    ) -> None:
        gh.token()
        _first_reply(gh)
        _comment(client, rt, _payload(body="/ritmo deploy web production"))
        reply = _reply(gh)
        assert "`deploy` is not a Ritmo command." in reply
        assert "| `/ritmo help` |" in reply

    def test_finds_its_earlier_comment_by_author_and_marker(self, gh: GitHubSandbox) -> None:
        """After a restart: bob's comment quoting the marker is not Ritmo's; ritmo[bot]'s is."""
        gh.token()
        gh.app()
        gh.add("GET", COMMENTS, "issue-comments")
        gh.add("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}", "comment-updated")
        github = forge()
        assert github.upsert_comment(NUMBER, "hello") == OURS
        assert gh.sent("PATCH", f"/repos/{REPOSITORY}/issues/comments/{OURS}") == [
            {"body": f"{STATUS_MARKER}\nhello"}
        ]
        assert not gh.sent("PATCH", f"/repos/{REPOSITORY}/issues/comments/1999000100")
        assert not gh.sent("POST", COMMENTS)
        # The token exchange, the listing, the edit; and the app's slug, once.
        assert github.calls == {"comment": 3, "author": 1}

    def test_a_deleted_reply_is_posted_again(self, gh: GitHubSandbox) -> None:
        gh.token()
        gh.app()
        gh.add("GET", COMMENTS, "issue-comments")
        path = f"/repos/{REPOSITORY}/issues/comments/{OURS}"
        gh.add("PATCH", path, "user-not-found")
        gh.add("POST", COMMENTS, "comment-created")
        assert forge().upsert_comment(NUMBER, "hello") == OURS
        assert len(gh.sent("PATCH", path)) == 1
        assert gh.sent("POST", COMMENTS) == [{"body": f"{STATUS_MARKER}\nhello"}]


class TestIgnored:
    """Bots (Ritmo too), comments without a command, other repositories: no call at all."""

    @pytest.mark.parametrize(
        "payload",
        [
            _payload("issue_comment-created-by-bot"),
            _payload(login="dependabot[bot]", type="Bot"),
            _payload(login="renovate", type="Bot"),
            _payload(body="Looks good, merging after lunch."),
            _payload(body="```\n/ritmo promote web 2.0.0 to staging\n```"),
            _payload(repository="acme/website"),
        ],
        ids=["ritmo", "dependabot", "bot-type", "no-command", "in-code", "other-repository"],
    )
    def test_ignored(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, payload: dict[str, Any]
    ) -> None:
        assert _comment(client, rt, copy.deepcopy(payload)) == 202
        assert rt.deliveries.get("d-1")["status"] == "done"  # type: ignore[index]
        assert gh.requests() == []

    def test_edited_comments_are_not_commands(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox
    ) -> None:
        edited = {**_payload(), "action": "edited"}
        body = json.dumps(edited).encode()
        resp = client.post("/webhooks/github", data=body, headers={
            "X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": "d-9",
            "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, body)})  # fmt: skip
        assert resp.status_code == 202 and resp.json["status"] == "ignored"


SHA = "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"


class TestRollback:
    """`/ritmo rollback <app> in <env>`: the latest deployment's previous version, pinned."""

    @pytest.fixture
    def remote_policy(self) -> str:
        # GitHub Deployments go to the repository the policy names, at a full commit sha.
        return POLICY.replace("  web: {}\n", "  web: {repository: acme/web}\n")

    @pytest.fixture
    def artifact(self, client: FlaskClient, rt: Runtime) -> dict[str, Any]:
        ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
        body = artifact_body(version="2.0.0", metadata={"commit": SHA})
        resp = client.post("/api/v1/artifacts", json=body, headers=bearer(ci))
        assert resp.status_code == 201 and resp.json["promotion_status"] == "dev", resp.json
        recorded: dict[str, Any] = resp.json
        return recorded

    def test_a_comment_rolls_back_the_latest_deployment(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, artifact: Any, remote: Path
    ) -> None:
        cd = rt.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
        ci = rt.tokens.create("ci-2", [Scope.ARTIFACTS_WRITE])
        gh.token()
        for _ in range(2):  # each deployment is mirrored to acme/web's Deployments
            gh.create_deployment()
            gh.deployment_status()
        deployed = {"artifact_id": artifact["id"], "environment": "dev"}
        assert client.post("/api/v1/deployments", json=deployed,
                           headers=bearer(cd)).status_code == 201  # fmt: skip
        body = artifact_body(version="2.1.0", metadata={"commit": SHA})
        newer = client.post("/api/v1/artifacts", json=body, headers=bearer(ci)).json
        deployed = {"artifact_id": newer["id"], "environment": "dev", "status": "degraded"}
        assert client.post("/api/v1/deployments", json=deployed,
                           headers=bearer(cd)).status_code == 201  # fmt: skip
        assert gh.sent("POST", "/repos/acme/web/deployments")[0]["environment"] == "dev"

        _permission(gh, "alice", "collaborator-permission-write")
        _first_reply(gh)
        _comment(client, rt, _payload(body="/ritmo rollback web in dev"))
        reply = _reply(gh)
        assert "Rolled web in dev back from 2.1.0 to 2.0.0" in reply
        assert 'newTag: "2.0.0"' in show(remote, OVERLAY.format(env="dev"))
        said = trailers(remote, "main")
        assert said["Ritmo-Rollback"] == "dev" and said["Ritmo-Rolled-Back-By"] == "alice"
        assert rt.index.held(newer["id"], "dev")

    def test_a_comment_never_rolls_back_to_a_held_failed_version(
        self, client: FlaskClient, rt: Runtime, gh: GitHubSandbox, artifact: Any, remote: Path
    ) -> None:
        """Issue 13: after 2.1.0 was rolled back out of dev (held there, its deployment
        degraded), rolling back the restored 2.0.0 finds nothing legitimate: refused."""
        cd = rt.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
        ci = rt.tokens.create("ci-2", [Scope.ARTIFACTS_WRITE])
        gh.token()
        deployed = {"artifact_id": artifact["id"], "environment": "dev"}
        assert client.post("/api/v1/deployments", json=deployed,
                           headers=bearer(cd)).status_code == 201  # fmt: skip
        newer = client.post("/api/v1/artifacts", json=artifact_body(version="2.1.0"),
                            headers=bearer(ci)).json  # fmt: skip
        deployed = {"artifact_id": newer["id"], "environment": "dev", "status": "degraded"}
        failed = client.post("/api/v1/deployments", json=deployed, headers=bearer(cd)).json
        undone = client.post(f"/api/v1/deployments/{failed['id']}/rollback", headers=bearer(cd))
        assert undone.status_code == 201, undone.json
        # 2.0.0 runs again, and degrades too.
        deployed = {"artifact_id": artifact["id"], "environment": "dev", "status": "degraded"}
        assert client.post("/api/v1/deployments", json=deployed,
                           headers=bearer(cd)).status_code == 201  # fmt: skip
        tip = remote_refs(remote)["refs/heads/main"]

        _permission(gh, "alice", "collaborator-permission-write")
        _first_reply(gh)
        _comment(client, rt, _payload(body="/ritmo rollback web in dev"))
        reply = _reply(gh)
        assert "Refused: no version of web that arrived in dev" in reply, reply
        assert "web 2.1.0 is held out of dev" in reply
        assert remote_refs(remote)["refs/heads/main"] == tip
        assert 'newTag: "2.0.0"' in show(remote, OVERLAY.format(env="dev"))
