"""The environments table follows a new tip incrementally: the same table as a fresh read
of the whole history, for a number of git processes that does not grow with the apps."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import bot.manifests.pins as pins_module
from bot.auth import Scope
from bot.manifests.mirror import Mirror
from bot.manifests.pins import new_commits
from bot.promotions.pin_read import PinReader
from bot.promotions.view import EnvironmentsView
from bot.runtime import Runtime
from tests.conftest import make_remote
from tests.helpers import artifact_body, bearer, git

EXTRA = [f"svc{i:02d}" for i in range(40)]  # apps with overlays and no record

POLICY = """\
environments:
  - {name: dev, auto_promote: true}
  - {name: staging}
  - {name: production}
promotion_rules:
  - {from: dev, to: staging}
  - {from: staging, to: production}
apps:
  web: {}
  api: {}
""" + "".join(f"  {a}: {{image: registry.example.com/acme/{a}}}\n" for a in EXTRA)


@pytest.fixture
def remote_policy() -> str:
    return POLICY


pytestmark = pytest.mark.usefixtures("clean_ritmo_env")


@pytest.fixture
def remote(tmp_path: Path, remote_policy: str) -> Path:
    """The scaffold, then a person's commit adding overlays for the EXTRA apps (pins Ritmo
    never recorded, so each one is looked up for a later record)."""
    bare = make_remote(tmp_path, remote_policy)
    work = tmp_path / "extra"
    git(tmp_path, "clone", "--quiet", str(bare), str(work))
    for env in ("dev", "staging", "production"):
        text = (work / f"apps/web/overlays/{env}/kustomization.yaml").read_text()
        for app in EXTRA:
            path = work / f"apps/{app}/overlays/{env}/kustomization.yaml"
            path.parent.mkdir(parents=True)
            path.write_text(text.replace("web", app))
    who = ["-c", "user.name=Pat Person", "-c", "user.email=pat@example.com"]
    git(work, "add", "-A")
    git(work, *who, "commit", "--quiet", "-m", "Add the services")
    git(work, "push", "--quiet", "origin", "main")
    return bare


def _register(client: FlaskClient, token: str, name: str, version: str) -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(name=name, version=version), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _promote(client: FlaskClient, token: str, art: str, frm: str, to: str) -> None:
    resp = client.post(
        f"/api/v1/artifacts/{art}/promote", json={"from": frm, "to": to}, headers=bearer(token)
    )
    assert resp.status_code == 201, resp.get_json()


def _hand_pin(remote: Path, tmp_path: Path, app: str, env: str, version: str) -> None:
    person = tmp_path / "person"
    if not person.exists():
        git(tmp_path, "clone", "--quiet", str(remote), str(person))
    git(person, "pull", "--quiet", "--ff-only", "origin", "main")
    path = person / f"apps/{app}/overlays/{env}/kustomization.yaml"
    lines = path.read_text().splitlines()
    text = "\n".join(
        f'{ln.split("newTag:")[0]}newTag: "{version}"' if "newTag:" in ln else ln for ln in lines
    )
    path.write_text(text + "\n")
    who = ["-c", "user.name=Pat Person", "-c", "user.email=pat@example.com"]
    git(person, *who, "commit", "--quiet", "-am", f"Hotfix: {app} {version} in {env}")
    git(person, "push", "--quiet", "origin", "main")


def _fresh(runtime: Runtime) -> dict[str, Any]:
    """The table as a view that never read anything before reads it: all of history."""
    view = EnvironmentsView(
        runtime.mirror,
        runtime.index,
        runtime.deployments.records,
        runtime.policy,
        runtime.settings.gnupghome,
        runtime.signer.fingerprint,
    )
    return view.table()


@pytest.fixture
def full_reads(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The readers that read the whole history, once per read."""
    calls: list[object] = []
    real = PinReader.full

    def spied(reader: PinReader, *args: Any) -> Any:
        calls.append(reader)
        return real(reader, *args)

    monkeypatch.setattr(PinReader, "full", spied)
    return calls


def _same(runtime: Runtime) -> dict[str, Any]:
    """The runtime's table, once it equals a fresh read of the same tip (the drift watcher
    may still move the branch after a person's push)."""
    for _ in range(40):
        kept, fresh = runtime.environments.table(), _fresh(runtime)
        if kept["tip"] == fresh["tip"]:
            break
        time.sleep(0.25)
    assert kept == fresh
    return kept


def test_incremental_reads_equal_a_fresh_read(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    tmp_path: Path,
    full_reads: list[object],
) -> None:
    first = _same(runtime)
    assert {a["app"] for a in first["apps"]} == {"web", "api", *EXTRA}

    web1 = _register(client, tokens["ci"], "web", "1.0.0")
    _same(runtime)
    _promote(client, tokens["promoter"], web1, "dev", "staging")
    _same(runtime)

    _hand_pin(remote, tmp_path, "web", "staging", "1.9.9")  # unsigned, unrecorded
    _hand_pin(remote, tmp_path, "svc03", "production", "7.0.0")
    runtime.writer.sync()
    table = _same(runtime)
    (web,) = [a for a in table["apps"] if a["app"] == "web"]
    staging = web["environments"]["staging"]
    assert (staging["version"], staging["recorded"]) == ("1.9.9", False)

    _register(client, tokens["ci"], "api", "2.0.0")  # a new app in the index
    web2 = _register(client, tokens["ci"], "web", "1.1.0")
    _promote(client, tokens["promoter"], web2, "dev", "staging")  # over the hand pin
    _same(runtime)

    # A person pins 1.0.0 in production; promoting 1.0.0 there finds it pinned and
    # records it. Then CD reports 1.1.0 failed in staging: rolled back.
    _hand_pin(remote, tmp_path, "web", "production", "1.0.0")
    runtime.writer.sync()
    _same(runtime)
    _promote(client, tokens["promoter"], web1, "staging", "production")
    table = _same(runtime)
    (web,) = [a for a in table["apps"] if a["app"] == "web"]
    assert web["environments"]["production"]["recorded"] is True
    cd = runtime.tokens.create("cd", [Scope.DEPLOYMENTS_WRITE, Scope.ARTIFACTS_READ])
    body = {"artifact_id": web2, "environment": "staging", "status": "failed"}
    reported = client.post("/api/v1/deployments", json=body, headers=bearer(cd))
    assert reported.status_code == 201, reported.get_json()
    rolled = client.post(
        f"/api/v1/deployments/{reported.get_json()['id']}/rollback",
        json={"reason": "500s"},
        headers=bearer(cd),
    )
    assert rolled.status_code == 201, rolled.get_json()
    table = _same(runtime)
    (web,) = [a for a in table["apps"] if a["app"] == "web"]
    assert web["environments"]["staging"]["rolled_back"] is True

    # The runtime's view read the whole history once; every later tip incrementally.
    mine = [r for r in full_reads if r is runtime.environments._reader]
    assert len(mine) == 1


@pytest.fixture
def git_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every git process the mirror (or the pin reads) start."""
    calls: list[str] = []
    real_git = Mirror._git
    real_run = subprocess.run

    def counted_git(mirror: Mirror, *args: str, **kw: Any) -> Any:
        calls.append(args[0])
        return real_git(mirror, *args, **kw)

    def counted_run(cmd: Any, *args: Any, **kw: Any) -> Any:
        calls.append(" ".join(cmd[:2]))
        return real_run(cmd, *args, **kw)

    monkeypatch.setattr(Mirror, "_git", counted_git)
    monkeypatch.setattr(pins_module.subprocess, "run", counted_run)
    yield calls


def test_git_processes_do_not_grow_with_the_apps(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    git_processes: list[str],
) -> None:
    runtime.environments.table()
    # 129 pins, each set by a person: still a few git processes for the whole read.
    assert len(git_processes) <= 10, git_processes

    before = runtime.index.tip()
    web1 = _register(client, tokens["ci"], "web", "1.0.0")
    _promote(client, tokens["promoter"], web1, "dev", "staging")
    after = runtime.index.tip()
    assert before and after
    moved = new_commits(runtime.mirror, before, after)
    assert moved is not None and "apps/web/overlays/staging/kustomization.yaml" in moved.paths
    # A tip that went back (or history rewritten) is no base: read whole.
    assert new_commits(runtime.mirror, after, before) is None
    git_processes.clear()
    table = runtime.environments.table()
    assert len(git_processes) <= 10, git_processes
    (web,) = [a for a in table["apps"] if a["app"] == "web"]
    assert web["environments"]["staging"]["version"] == "1.0.0"

    # Nothing moved: no git at all.
    git_processes.clear()
    runtime.environments.table()
    assert git_processes == []
