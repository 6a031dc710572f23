"""The deployment index follows the ledger branch on from where it stands: what another
replica wrote is read from its commits, nothing is cleared, and an index that already
stands further is left alone."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from bot.auth import Scope
from bot.deploy.ledger import follow_ledger
from bot.deploy.records import LEDGER_BRANCH
from bot.runtime import Runtime, open_mirror
from bot.store.deployments import _LEDGER_TIP, _set_state, deployments
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer


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
    index = runtime.deployments.index
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
    assert index.get(second) is not None and index.get(second)["environment"] == "staging"  # type: ignore[index]
    assert index.search(env="dev")[0][0] == dev_record  # untouched, not rebuilt
    assert index.reported("argocd/web-dev/rev/on-deployed") == first  # not cleared

    # Another replica already indexed past what this one fetched: nothing to do.
    with runtime.index.engine.begin() as conn:
        conn.execute(deployments.delete().where(deployments.c.id == second))
    follow_ledger(index, ledger, None, before, None)
    assert index.ledger_tip() == after and index.get(second) is None
