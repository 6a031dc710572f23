"""Finding 5 end to end, on the local forge: a person's pin or policy edit pushed to the
remote is noticed by Ritmo itself (a scheduler tick, or its next write), recorded once as a
signed drift commit, logged as an ALERT, shown by the audit API, delivered as a `drift`
notification to a real HTTP server, and named by `ritmo verify`."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from bot.cli import main
from bot.config import Settings
from bot.manifests.signing import open_gnupg
from bot.runtime import Runtime, build_runtime
from bot.scheduler import run_due
from tests.helpers import (
    artifact_body,
    bearer,
    commits_since,
    git,
    kill_gpg_agent,
    remote_refs,
    trailers,
    verify_commit,
)
from tests.notify.conftest import RecordingServer

OVERLAY = "apps/web/overlays/{env}/kustomization.yaml"
POLICY_FILE = ".ritmo/policy.yaml"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    running = RecordingServer()
    yield running
    running.close()


@pytest.fixture
def remote_policy(server: RecordingServer) -> str:
    return f"""\
environments:
  - {{name: dev, auto_promote: true}}
  - {{name: staging}}
  - {{name: production}}
promotion_rules:
  - {{from: dev, to: staging}}
  - from: staging
    to: production
    requires_approval: true
    approvals: [{{group: ops-team, count: 1}}]
apps:
  web: {{}}
integrations:
  - on: [drift]
    name: security-desk
    webhook:
      url: "{server.url}/drift"
"""


@pytest.fixture(scope="session")
def policy_person(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """A person allowed to edit policy by hand: (gpg home, fingerprint, public key file)."""
    home = tmp_path_factory.mktemp("policy-person")
    gpg = open_gnupg(home)
    result = gpg.gen_key(
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: Pat Policy\n"
        "Name-Email: pat@example.com\nExpire-Date: 0\n%no-protection\n%commit\n"
    )
    assert result.fingerprint, result.stderr
    keyring = home / "pat.asc"
    keyring.write_text(gpg.export_keys(result.fingerprint))
    yield home, str(result.fingerprint), keyring
    kill_gpg_agent(home)


@pytest.fixture
def settings_overrides(policy_person: tuple[Path, str, Path]) -> dict[str, Any]:
    _, fingerprint, keyring = policy_person
    return {"signing": {"policy_keys": [fingerprint], "policy_keyring": str(keyring)}}


def _tip(remote: Path) -> str:
    return remote_refs(remote)["refs/heads/main"]


def _register(client: FlaskClient, token: str, version: str) -> str:
    resp = client.post("/api/v1/artifacts", json=artifact_body(version=version),
                       headers=bearer(token))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _person(remote: Path, where: Path) -> Path:
    if not where.exists():
        git(where.parent, "clone", "--quiet", str(remote), str(where))
    git(where, "pull", "--quiet", "--ff-only", "origin", "main")
    return where


def _hand_commit(work: Path, message: str, *, env: dict[str, str] | None = None,
                 sign: str | None = None) -> str:  # fmt: skip
    who = ["-c", "user.name=Mallory", "-c", "user.email=mallory@example.com"]
    signing = ["-c", f"user.signingkey={sign}", "commit", "-S"] if sign else ["commit"]
    git(work, "add", "-A")
    git(work, *who, *signing, "--quiet", "-m", message, env=env)
    git(work, "push", "--quiet", "origin", "main")
    return git(work, "rev-parse", "HEAD").strip()


def _pin_by_hand(work: Path, env: str, version: str) -> str:
    path = work / OVERLAY.format(env=env)
    path.write_text(re.sub(r'newTag: "?[^"\s]+"?', f'newTag: "{version}"', path.read_text()))
    return _hand_commit(work, f"Hotfix: pin {version} in {env}")


def _edit_policy(work: Path, **kw: Any) -> str:
    path = work / POLICY_FILE
    path.write_text(path.read_text().replace("requires_approval: true", "requires_approval: false"))
    return _hand_commit(work, "Production without approvals", **kw)


def _verify(settings: Settings) -> Result:
    return CliRunner().invoke(main, ["verify"], env={
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": settings.remote_url,
        "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
        "RITMO_SIGNING__KEY": str(settings.signing.key),
    })  # fmt: skip


def _alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.getMessage().startswith("ALERT ")
    ]


def _drift_commits(remote: Path, since: str) -> list[str]:
    return [c for c in commits_since(remote, since) if "Ritmo-Drift" in trailers(remote, c)]


def _delivered(runtime: Runtime, server: RecordingServer) -> list[dict[str, Any]]:
    while runtime.outbox.deliver_due():
        pass
    return [s.body for s in server.seen if s.path == "/drift"]


class TestHandPin:
    def test_a_tick_records_it_once_and_everyone_hears(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], settings: Settings,
        remote: Path, tmp_path: Path, server: RecordingServer, signing_key: tuple[Path, str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")  # web is Ritmo's now: 1.0.0 in dev
        before = _tip(remote)
        hand = _pin_by_hand(_person(remote, tmp_path / "person"), "production", "9.9.9")

        with caplog.at_level(logging.ERROR):
            run_due(runtime)  # one scheduler tick, no webhook

        # One Ritmo-signed empty commit on top of the hand pin, naming it.
        (drift,) = _drift_commits(remote, before)
        assert _tip(remote) == drift and git(remote, "rev-parse", f"{drift}~1").strip() == hand
        verify_commit(remote, drift, signing_key[0])
        assert git(remote, "diff", "--name-only", hand, drift).strip() == ""
        said = trailers(remote, drift)
        assert said["Ritmo-Drift"] == "pin" and said["Ritmo-Drift-Commit"] == hand
        assert "pins web 9.9.9 in production" in said["Ritmo-Drift-Detail"]
        assert "was 0.1.0" in said["Ritmo-Drift-Detail"] and "Mallory" in said["Ritmo-Drift-Detail"]

        (alert,) = _alerts(caplog)
        assert hand in alert and "(pin)" in alert and "9.9.9" in alert and "production" in alert

        audit = client.get(
            "/api/v1/audit?kind=pinned_outside_ritmo", headers=bearer(tokens["reader"])
        )
        assert audit.status_code == 200, audit.get_json()
        (event,) = audit.get_json()["items"]
        assert event["offending_commit"] == hand and event["commit"] == drift
        pinned = (event["app"], event["environment"], event["version"])
        assert pinned == ("web", "production", "9.9.9")
        assert event["actor"] == "Mallory <mallory@example.com>"

        (note,) = _delivered(runtime, server)
        assert note["event"] == "drift" and note["id"] == drift
        assert (note["app"], note["environment"]) == ("web", "production")
        assert note["extra"]["kind"] == "pin" and note["extra"]["commit"] == hand
        assert note["extra"]["audit_kind"] == "pinned_outside_ritmo"
        assert note["extra"]["message"].startswith("ALERT ") and hand in note["extra"]["message"]

        result = _verify(settings)
        assert result.exit_code == 1, result.output
        assert f"{hand} unsigned-pin:" in result.stdout
        assert drift not in result.stdout  # the record itself is Ritmo's, signed

        # Once: another tick, a write, and a restart on a fresh data dir add nothing.
        run_due(runtime)
        _register(client, tokens["ci"], "1.1.0")
        restarted = build_runtime(settings.model_copy(update={"data_dir": tmp_path / "again"}))
        try:
            run_due(restarted)
        finally:
            restarted.close()
        assert _drift_commits(remote, before) == [drift]
        assert len(_alerts(caplog)) == 1 and len(_delivered(runtime, server)) == 1

    def test_the_next_write_notices_it(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path,
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")
        before = _tip(remote)
        hand = _pin_by_hand(_person(remote, tmp_path / "person"), "staging", "1.0.0")
        with caplog.at_level(logging.ERROR):
            _register(client, tokens["ci"], "2.0.0")  # refused push, fetch: Ritmo sees it
            runtime.drift.settle()
        (drift,) = _drift_commits(remote, before)
        assert trailers(remote, drift)["Ritmo-Drift-Commit"] == hand
        assert [a for a in _alerts(caplog) if hand in a]

    def test_a_restart_records_what_landed_while_ritmo_was_down(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], settings: Settings,
        remote: Path, tmp_path: Path,
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")
        runtime.close()
        before = _tip(remote)
        hand = _pin_by_hand(_person(remote, tmp_path / "person"), "production", "1.0.0")
        # The same data dir: the mirror already stands where Ritmo left it.
        again = build_runtime(settings)
        try:
            again.drift.settle()
        finally:
            again.close()
        (drift,) = _drift_commits(remote, before)
        assert trailers(remote, drift)["Ritmo-Drift-Commit"] == hand

    def test_two_replicas_record_it_once(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], settings: Settings,
        remote: Path, tmp_path: Path,
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")
        other = build_runtime(settings.model_copy(update={"data_dir": tmp_path / "replica"}))
        try:
            before = _tip(remote)
            hand = _pin_by_hand(_person(remote, tmp_path / "person"), "production", "9.9.9")
            both = [threading.Thread(target=run_due, args=(r,)) for r in (runtime, other)]
            for thread in both:
                thread.start()
            for thread in both:
                thread.join()
            run_due(runtime)
            run_due(other)
        finally:
            other.close()
        (drift,) = _drift_commits(remote, before)
        assert trailers(remote, drift)["Ritmo-Drift-Commit"] == hand

    def test_a_forged_record_does_not_silence_it(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path,
        tmp_path: Path, signing_key: tuple[Path, str],
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")
        before = _tip(remote)
        work = _person(remote, tmp_path / "person")
        hand = _pin_by_hand(work, "production", "9.9.9")
        git(work, "-c", "user.name=Ritmo", "-c", "user.email=ritmo@example.com", "commit",
            "--quiet", "--allow-empty", "-m",
            f"Drift: recorded\n\nRitmo-Drift: pin\nRitmo-Drift-Commit: {hand}\n"
            "Ritmo-Drift-Detail: nothing to see")  # fmt: skip
        git(work, "push", "--quiet", "origin", "main")
        forged = git(work, "rev-parse", "HEAD").strip()
        run_due(runtime)
        drifts = _drift_commits(remote, before)
        assert drifts[0] == forged and len(drifts) == 2  # Ritmo's own record follows
        verify_commit(remote, drifts[1], signing_key[0])
        assert trailers(remote, drifts[1])["Ritmo-Drift-Commit"] == hand

    def test_ritmos_own_promotions_and_other_edits_are_not_drift(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path,
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        art = _register(client, tokens["ci"], "1.0.0")
        before = _tip(remote)
        resp = client.post(
            f"/api/v1/artifacts/{art}/promote", json={"from": "dev", "to": "staging"},
            headers=bearer(tokens["promoter"]),
        )  # fmt: skip
        assert resp.status_code == 201, resp.get_json()
        work = _person(remote, tmp_path / "person")
        (work / "NOTES.md").write_text("Runbook\n")
        _hand_commit(work, "Notes")
        with caplog.at_level(logging.ERROR):
            run_due(runtime)
        assert _drift_commits(remote, before) == [] and _alerts(caplog) == []


class TestPolicyEdit:
    def test_an_unsigned_policy_edit_is_recorded(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path,
        tmp_path: Path, server: RecordingServer, signing_key: tuple[Path, str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")
        before = _tip(remote)
        hand = _edit_policy(_person(remote, tmp_path / "person"))
        with caplog.at_level(logging.ERROR):
            run_due(runtime)
        (drift,) = _drift_commits(remote, before)
        verify_commit(remote, drift, signing_key[0])
        said = trailers(remote, drift)
        assert said["Ritmo-Drift"] == "policy" and said["Ritmo-Drift-Commit"] == hand
        assert POLICY_FILE in said["Ritmo-Drift-Detail"]
        (alert,) = _alerts(caplog)
        assert hand in alert and "(policy)" in alert

        audit = client.get("/api/v1/audit?kind=policy_changed_outside_ritmo",
                           headers=bearer(tokens["reader"]))  # fmt: skip
        (event,) = audit.get_json()["items"]
        assert event["offending_commit"] == hand and event["commit"] == drift
        assert event["app"] is None and POLICY_FILE in event["detail"]

        (note,) = _delivered(runtime, server)
        assert note["extra"]["kind"] == "policy" and note["extra"]["commit"] == hand
        assert note["app"] == "" and note["environment"] is None

    def test_a_policy_key_may_edit_policy_by_hand(
        self, client: FlaskClient, runtime: Runtime, tokens: dict[str, str], remote: Path,
        tmp_path: Path, policy_person: tuple[Path, str, Path],
    ) -> None:  # fmt: skip
        _register(client, tokens["ci"], "1.0.0")
        home, fingerprint, _ = policy_person
        before = _tip(remote)
        work = _person(remote, tmp_path / "person")
        _edit_policy(work, env={"GNUPGHOME": str(home)}, sign=fingerprint)
        run_due(runtime)
        assert _drift_commits(remote, before) == []
        # The same key does not make a pin legitimate: pins go through Ritmo.
        path = work / OVERLAY.format(env="production")
        path.write_text(path.read_text().replace('newTag: "0.1.0"', 'newTag: "1.0.0"'))
        hand = _hand_commit(work, "Pin by hand", env={"GNUPGHOME": str(home)}, sign=fingerprint)
        run_due(runtime)
        (drift,) = _drift_commits(remote, before)
        assert trailers(remote, drift)["Ritmo-Drift"] == "pin"
        assert trailers(remote, drift)["Ritmo-Drift-Commit"] == hand
