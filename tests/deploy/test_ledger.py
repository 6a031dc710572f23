"""The deployment index follows the ledger branch on from where it stands: what another
replica wrote is read from its commits, nothing is cleared, and an index that already
stands further is left alone."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings
from bot.deploy.ledger import follow_ledger, rebuild_ledger
from bot.deploy.records import LEDGER_BRANCH
from bot.runtime import Runtime, open_mirror
from bot.store.deployments import _LEDGER_TIP, _set_state, deployments, forge_refs
from tests.forge.github_sandbox import DEPLOYMENT_ID, sample, sandbox, sandboxed_runtime
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer, kill_gpg_agent


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY  # a registration is pinned in dev and staging


def _deployed(client: FlaskClient, token: str, art: str, env: str) -> str:
    body = {"artifact_id": art, "environment": env, "status": "succeeded"}
    resp = client.post("/api/v1/deployments", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def test_follows_what_another_replica_wrote_without_clearing(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
) -> None:
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    art = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert art.status_code == 201, art.json
    ledger = open_mirror(runtime.settings, LEDGER_BRANCH)
    index = runtime.deployments.records
    first = _deployed(client, cd, art.json["id"], "dev")
    before = ledger.fetch()
    index.remember_report("argocd/web-dev/rev/on-deployed", first)
    second = _deployed(client, cd, art.json["id"], "staging")
    after = ledger.fetch()
    assert before and after and before != after
    dev_record = index.search(env="dev")[0][0]

    # As if another replica wrote the second one and this index had not seen it yet.
    with runtime.index.engine.begin() as conn:
        conn.execute(deployments.delete().where(deployments.c.id == second))
        _set_state(conn, _LEDGER_TIP, before)
    assert index.get(second) is None

    follow_ledger(index, ledger, before, after, None)
    assert index.ledger_tip() == after
    followed = index.get(second)
    assert followed is not None and followed.environment == "staging"
    assert index.search(env="dev")[0][0] == dev_record  # untouched, not rebuilt
    assert index.reported("argocd/web-dev/rev/on-deployed") == first  # not cleared

    # Another replica already indexed past what this one fetched: nothing to do.
    with runtime.index.engine.begin() as conn:
        conn.execute(deployments.delete().where(deployments.c.id == second))
    follow_ledger(index, ledger, None, before, None)
    assert index.ledger_tip() == after and index.get(second) is None


class TestGitHubDeploymentAfterARebuild:
    """The index is rebuilt from git between two statuses of one deployment (an upgrade
    that drops its tables, a lost database): the GitHub deployment id is not in git, and
    the next status finds the deployment on GitHub instead of creating a second one."""

    @pytest.fixture
    def remote_policy(self) -> str:
        # GitHub Deployments go to the repository the policy names, never CI's metadata.
        return TWO_APPROVERS_POLICY.replace("  web: {}\n", "  web: {repository: acme/web}\n")

    def test_one_github_deployment(self, settings: Settings) -> None:
        rt = sandboxed_runtime(settings)
        try:
            client = create_app(rt.settings, rt).test_client()
            ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE])
            cd = rt.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
            sha = "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"  # the ref: a full commit sha
            art = client.post("/api/v1/artifacts", headers=bearer(ci),
                              json=artifact_body(metadata={"commit": sha}))  # fmt: skip
            assert art.status_code == 201, art.json
            body = {"artifact_id": art.json["id"], "environment": "dev"}
            with sandbox() as gh:
                gh.token()
                gh.create_deployment()
                gh.deployment_status()
                started = client.post("/api/v1/deployments", headers=bearer(cd),
                                      json={**body, "status": "progressing"})  # fmt: skip
                assert started.status_code == 201, started.json
                assert len(gh.sent("POST", "/repos/acme/web/deployments")) == 1
            # An index rebuilt from git (a schema upgrade drops the tables, or a lost
            # database): the deployments come back from the ledger, GitHub's id does not.
            with rt.index.engine.begin() as conn:
                conn.execute(forge_refs.delete())
            rebuild_ledger(rt.deployments.records, open_mirror(rt.settings, LEDGER_BRANCH))
            assert rt.deployments.records.get(started.json["id"]) is not None
            assert rt.deployments.records.forge_ref(started.json["id"]) is None
            with sandbox() as gh:
                gh.token()
                mine = sample("deployments-list", gh.api)[2]
                for found in mine:
                    found["payload"] = {"ritmo_deployment": started.json["id"]}
                gh.add("GET", "/repos/acme/web/deployments", "deployments-list", mine)
                gh.deployment_status()
                done = client.post("/api/v1/deployments", headers=bearer(cd),
                                   json={**body, "status": "succeeded"})  # fmt: skip
                assert done.status_code == 200, done.json  # the same deployment, now succeeded
                assert gh.sent("POST", "/repos/acme/web/deployments") == []
                statuses = f"/repos/acme/web/deployments/{DEPLOYMENT_ID}/statuses"
                assert [s["state"] for s in gh.sent("POST", statuses)] == ["success"]
            assert rt.deployments.records.forge_ref(started.json["id"]) == str(DEPLOYMENT_ID)
        finally:
            rt.close()
            kill_gpg_agent(settings.data_dir / "trusted-gnupg")
