"""`ritmo verify` on rollbacks and the deployment ledger (issue 13): a Ritmo-signed rollback
to a version that never arrived in the environment legitimately, and an unsigned commit
pushed onto `ritmo/deployments` behind Ritmo's back, each named by commit and kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from bot.audit.rollback_rules import illegitimate_rollbacks, unsigned_ledger
from bot.audit.verify import RecordFact, VerifyCommit
from bot.auth import Scope
from bot.cli import main
from bot.config import Settings
from bot.deploy.records import LEDGER_BRANCH
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{group: ops-team, count: 1}]
apps:
  web: {}
"""
OVERLAY = "apps/web/overlays/{env}/kustomization.yaml"


@pytest.fixture
def remote_policy() -> str:
    return POLICY


def _verify(settings: Settings) -> Result:
    return CliRunner().invoke(main, ["verify"], env={
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": settings.remote_url,
        "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
        "RITMO_SIGNING__KEY": str(settings.signing.key),
    })  # fmt: skip


def _problems(result: Result) -> list[tuple[str, str]]:
    return re.findall(r"^([0-9a-f]{40}) ([a-z-]+): ", result.stdout, re.M)


def _register(client: FlaskClient, token: str, version: str) -> str:
    resp = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                       headers=bearer(token))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def test_verify_names_an_illegitimate_rollback_and_an_unsigned_ledger_commit(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    settings: Settings,
    remote: Path,
    signing_key: tuple[Path, str],
    tmp_path: Path,
) -> None:
    home, fingerprint = signing_key
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE])
    hand = _register(client, tokens["ci"], "0.1.0")  # the scaffold's example pin's version
    good = _register(client, tokens["ci"], "1.0.0")
    resp = client.post(f"/api/v1/artifacts/{good}/promote", json={"from": "dev", "to": "staging"},
                       headers=bearer(tokens["promoter"]))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    # A rollback Ritmo makes (dev: 1.1.0 failed, 1.0.0 arrived there by registration).
    bad = _register(client, tokens["ci"], "1.1.0")
    body = {"artifact_id": bad, "environment": "dev", "status": "failed"}
    failed = client.post("/api/v1/deployments", json=body, headers=bearer(cd)).get_json()
    undone = client.post(f"/api/v1/deployments/{failed['id']}/rollback", headers=bearer(cd))
    assert undone.status_code == 201, undone.get_json()
    clean = _verify(settings)
    assert clean.exit_code == 0, clean.output

    # Behind Ritmo's back: a rollback signed with Ritmo's key (an older Ritmo made it, or
    # the key leaked) that puts 0.1.0, never promoted to staging, back in staging.
    person = tmp_path / "person"
    git(tmp_path, "clone", "--quiet", str(remote), str(person))
    overlay = person / OVERLAY.format(env="staging")
    overlay.write_text(re.sub(r'newTag: "?[^"\s]+"?', 'newTag: "0.1.0"', overlay.read_text()))
    git(person, "add", "-A")
    signer = ["-c", "user.name=Ritmo", "-c", "user.email=ritmo@example.com",
              "-c", f"user.signingkey={fingerprint}"]  # fmt: skip
    message = (
        "Roll back web in staging to 0.1.0\n\n"
        f"Ritmo-Rollback: staging\nRitmo-Artifact: {hand}\nRitmo-Rolled-Back: {good}\n"
        "Ritmo-Rolled-Back-By: ritmo (automatic)"
    )
    git(person, *signer, "commit", "--quiet", "-S", "-m", message, env={"GNUPGHOME": str(home)})
    forged = git(person, "rev-parse", "HEAD").strip()
    git(person, "push", "--quiet", "origin", "main")

    # And an unsigned edit of a deployment record on the ledger branch.
    git(person, "fetch", "--quiet", "origin", LEDGER_BRANCH)
    git(person, "checkout", "--quiet", "-b", "ledger", "FETCH_HEAD")
    record = person / "deployments" / "web" / "dev" / f"{failed['id']}.yaml"
    record.write_text(record.read_text().replace("status: failed", "status: succeeded"))
    git(person, "add", "-A")
    git(person, "-c", "user.name=Mallory", "-c", "user.email=m@example.com", "commit",
        "--quiet", "-m", "Deployment went fine")  # fmt: skip
    ledger = git(person, "rev-parse", "HEAD").strip()
    git(person, "push", "--quiet", "origin", f"HEAD:refs/heads/{LEDGER_BRANCH}")

    broken = _verify(settings)
    assert broken.exit_code == 1, broken.output
    assert _problems(broken) == [(forged, "illegitimate-rollback"), (ledger, "unsigned-ledger")]
    assert f"{forged} illegitimate-rollback: rolls staging back to web 0.1.0 ({hand})" in (
        broken.stdout
    )
    assert f"{ledger} unsigned-ledger: on {LEDGER_BRANCH} is not signed" in broken.stdout


def _commit(sha: str, trailers: dict[str, str], **more: object) -> VerifyCommit:
    return VerifyCommit(sha, (), {k: [v] for k, v in trailers.items()}, **more)  # type: ignore[arg-type]


def test_promotions_before_the_range_count_as_arrivals() -> None:
    record = RecordFact("art-a", "web", "1.0.0", frozenset({"1.0.0"}))
    history = [
        _commit("c1", {"Ritmo-Promotion": "dev -> staging", "Ritmo-Artifact": "art-a"},
                in_range=False, records=(record,)),
        _commit("c2", {"Ritmo-Rollback": "staging", "Ritmo-Artifact": "art-a",
                       "Ritmo-Rolled-Back": "art-b"}, signature="G"),
        _commit("c3", {"Ritmo-Rollback": "production", "Ritmo-Artifact": "art-a",
                       "Ritmo-Rolled-Back": "art-b"}, signature="G"),
        # Unsigned: untrusted-signature's business, not an arrival nor a problem here.
        _commit("c4", {"Ritmo-Rollback": "production", "Ritmo-Artifact": "art-x",
                       "Ritmo-Rolled-Back": "art-b"}),
    ]  # fmt: skip
    found = illegitimate_rollbacks(history)
    assert [(p.sha, p.kind) for p in found] == [("c3", "illegitimate-rollback")]
    assert "rolls production back to web 1.0.0 (art-a)" in found[0].message
    ledger = [_commit("l1", {}, signature="G"), _commit("l2", {}, signature="E", signer="ABCD")]
    problems = unsigned_ledger(ledger, LEDGER_BRANCH)
    assert [(p.sha, p.kind) for p in problems] == [("l2", "unsigned-ledger")]
    assert "signed by a key that is not trusted (ABCD)" in problems[0].message
