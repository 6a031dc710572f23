"""GitHub Deployments go to the repository the policy names for the app, at the record's
commit sha; never where CI metadata points (issue 13, finding 7)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings
from bot.deploy.forge_target import ForgeTarget, NotMirrored, forge_target
from bot.policy.load import PolicyError, load_policy
from bot.runtime import Runtime
from tests.forge.github_sandbox import DEPLOYMENT_ID, GitHubSandbox, sandboxed_runtime
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer, kill_gpg_agent

SHA = "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"
WITH_REPOSITORY = TWO_APPROVERS_POLICY.replace("  web: {}\n", "  web: {repository: acme/web}\n")


@pytest.fixture
def remote_policy() -> str:
    return WITH_REPOSITORY


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = sandboxed_runtime(settings)
    yield runtime
    runtime.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt.settings, rt).test_client()


def _deploy(client: FlaskClient, rt: Runtime, metadata: dict[str, Any]) -> str:
    ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE])
    cd = rt.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    art = client.post("/api/v1/artifacts", json=artifact_body(metadata=metadata),
                      headers=bearer(ci))  # fmt: skip
    assert art.status_code == 201, art.json
    body = {"artifact_id": art.json["id"], "environment": "staging", "status": "progressing"}
    done = client.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert done.status_code == 201, done.json
    return str(done.json["id"])


def _deployment_calls(gh: GitHubSandbox) -> list[tuple[str, str]]:
    return [(m, p) for m, p in gh.requests() if "/deployments" in p]


def test_ci_metadata_names_another_repository(
    client: FlaskClient, rt: Runtime, gh: GitHubSandbox
) -> None:
    """The CI token's metadata names a repository of its choosing: GitHub is asked only
    about the policy's acme/web (an unregistered URL would fail the call)."""
    gh.token()
    gh.create_deployment("acme/web")
    gh.deployment_status("acme/web")
    dep = _deploy(client, rt, {"repository": "acme/infra-secrets", "commit": SHA})
    assert _deployment_calls(gh) == [
        ("POST", "/repos/acme/web/deployments"),
        ("POST", f"/repos/acme/web/deployments/{DEPLOYMENT_ID}/statuses"),
    ]
    assert gh.sent("POST", "/repos/acme/web/deployments")[0]["ref"] == SHA
    assert rt.deployments.records.forge_ref(dep) == str(DEPLOYMENT_ID)


@pytest.mark.parametrize("commit", ["main", "refs/heads/release", "v1.2.3", SHA[:12], SHA + "0"])
def test_a_ref_that_is_not_a_commit_sha_is_not_mirrored(
    client: FlaskClient,
    rt: Runtime,
    gh: GitHubSandbox,
    caplog: pytest.LogCaptureFixture,
    commit: str,
) -> None:
    gh.token()
    with caplog.at_level(logging.WARNING, logger="bot.deploy.service"):
        dep = _deploy(client, rt, {"repository": "acme/web", "commit": commit})
    assert _deployment_calls(gh) == []
    assert rt.deployments.records.forge_ref(dep) is None
    assert any(f"{dep} is not mirrored" in r.getMessage() and "40-hex" in r.getMessage()
               for r in caplog.records)  # fmt: skip


class TestNoRepositoryInThePolicy:
    @pytest.fixture
    def remote_policy(self) -> str:
        return TWO_APPROVERS_POLICY

    def test_not_mirrored(
        self,
        client: FlaskClient,
        rt: Runtime,
        gh: GitHubSandbox,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        gh.token()
        with caplog.at_level(logging.INFO, logger="bot.deploy.service"):
            dep = _deploy(client, rt, {"repository": "acme/web", "commit": SHA})
        assert _deployment_calls(gh) == []
        assert any(f"{dep} is not mirrored" in r.getMessage()
                   and "apps.web.repository" in r.getMessage() for r in caplog.records)  # fmt: skip


def test_forge_target() -> None:
    assert forge_target("web", "acme/web", {"commit": SHA.upper()}) == ForgeTarget("acme/web", SHA)
    assert isinstance(forge_target("web", None, {"commit": SHA}), NotMirrored)
    assert isinstance(forge_target("web", "acme/web", {"commit": 12}), NotMirrored)


@pytest.mark.parametrize("repository", ["acme", "acme/web/x", "-acme/web", "acme/", "acme/..",
                                        "https://github.com/acme/web", "acme/we b"])  # fmt: skip
def test_policy_repository_is_owner_slash_name(repository: str) -> None:
    text = TWO_APPROVERS_POLICY.replace("  web: {}\n", f"  web: {{repository: '{repository}'}}\n")
    with pytest.raises(PolicyError) as found:
        load_policy(text, "policy.yaml")
    assert "apps.web.repository" in str(found.value) and "owner/name" in str(found.value)
