"""Faults (issue 8): the server killed mid-burst, a remote that refuses or times out,
GitHub answering 5xx and secondary rate limits, a webhook acknowledged by a process that
died, and an outbound target down across a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from bot.webhooks.router import Event
from bot.webhooks.verify import signature_for
from tests.forge.github_sandbox import (
    INSTALLATION_ID,
    POLICY,
    REPOSITORY,
    UNPACED,
    WEBHOOK_SECRET,
    with_github,
)
from tests.helpers import artifact_body, bearer, git, kill_gpg_agent, remote_refs
from tests.notify.conftest import RecordingServer, free_port
from tests.reliability.github_script import ScriptedGitHub, scripted_github, with_header
from tests.reliability.server import RitmoServer, ingest

# -- 1. kill -9 during 200 concurrent registrations -------------------------------------------

BURST = 200
KILL_AFTER = 60  # acknowledgements before the SIGKILL


@pytest.fixture
def served(
    tmp_path: Path, signing_key: tuple[Path, str]
) -> Iterator[tuple[RitmoServer, Path, str]]:
    """A bare remote with a 50 ms pre-receive hook and a `ritmo serve` for it (not started)."""
    home, fingerprint = signing_key
    remote, seed = ingest.make_remote(tmp_path, "remote", 50)
    server = RitmoServer(tmp_path, remote, home, fingerprint)
    try:
        yield server, remote, seed
    finally:
        server.stop()


def _fire(url: str, token: str, bodies: list[dict[str, Any]], acked: threading.Event
          ) -> list[dict[str, Any] | None]:  # fmt: skip
    """POST every body at once; the 2xx answers by index (None: no answer or not 2xx)."""
    answers: list[dict[str, Any] | None] = [None] * len(bodies)
    count = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(len(bodies))
    headers = {"Authorization": f"Bearer {token}"}

    def one(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            resp = requests.post(f"{url}/api/v1/artifacts", json=bodies[i], headers=headers,
                                 timeout=60)  # fmt: skip
        except requests.RequestException:
            return
        if 200 <= resp.status_code < 300:
            answers[i] = resp.json()
            with lock:
                count[0] += 1
                if count[0] >= KILL_AFTER:
                    acked.set()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        list(pool.map(one, range(len(bodies))))
    return answers


def test_kill_9_during_a_burst_loses_and_duplicates_nothing(
    served: tuple[RitmoServer, Path, str],
) -> None:
    server, remote, seed = served
    ci = server.token("ci", "artifacts:write", "artifacts:read")
    server.start()
    bodies = ingest.artifact_bodies(BURST)
    acked = threading.Event()
    result: list[list[dict[str, Any] | None]] = []
    firing = threading.Thread(target=lambda: result.append(_fire(server.url, ci, bodies, acked)))
    firing.start()
    assert acked.wait(timeout=60), "no acknowledgements before the kill"
    server.kill()
    firing.join(timeout=90)
    assert not firing.is_alive()
    (answers,) = result
    done = {i: a for i, a in enumerate(answers) if a is not None}
    assert KILL_AFTER <= len(done) < BURST, "the kill must land mid-burst"

    server.start()  # the same data dir: the index and the mirror as the kill left them

    def added(path: str) -> list[str]:
        return git(remote, "log", "--format=%H", "--diff-filter=A", "main", "--", path).split()

    # Every acknowledged registration is on main exactly once, in the commit it was told.
    for i, answer in done.items():
        path = f"artifacts/{bodies[i]['name']}/{bodies[i]['version']}.yaml"
        assert added(path) == [answer["commit"]], (i, path)
    # Nothing twice: each new commit adds exactly one record, no record is added twice.
    # Ritmo's first start adopted the policy: one commit of its own, then the records.
    adopted = git(remote, "rev-list", "--grep=^Ritmo-Policy-Adopted: yes", f"{seed}..main")
    assert len(adopted.split()) == 1
    commits = git(remote, "rev-list", "--invert-grep", "--grep=^Ritmo-Policy-Adopted: yes",
                  f"{seed}..main").split()  # fmt: skip
    files = git(remote, "log", "--format=", "--name-status", "--diff-filter=A",
                f"{seed}..main").split("\n")  # fmt: skip
    records = [f.split("\t", 1)[1] for f in files if f.startswith("A\tartifacts/")]
    assert len(records) == len(set(records)) == len(commits)
    fsck = ingest.run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=remote,
                      check=False)  # fmt: skip
    assert fsck.returncode == 0 and not (fsck.stdout + fsck.stderr).strip(), fsck.stderr

    # The index after the restart is the one a reindex from git alone builds.
    after_restart = server.all_artifacts(ci)
    assert len(after_restart) == len(commits)
    assert {a["id"] for i, a in done.items()} <= {a["id"] for a in after_restart}
    server.stop()
    server.cli("reindex")
    server.start()
    assert server.all_artifacts(ci) == after_restart

    # The requests that got no answer, retried: each lands once (or already had), never 409.
    headers = {"Authorization": f"Bearer {ci}"}
    for i in sorted(set(range(BURST)) - set(done)):
        resp = requests.post(f"{server.url}/api/v1/artifacts", json=bodies[i], headers=headers,
                             timeout=60)  # fmt: skip
        assert resp.status_code in (200, 201), resp.text
    for body in bodies:
        assert len(added(f"artifacts/{body['name']}/{body['version']}.yaml")) == 1
    assert len(git(remote, "rev-list", f"{seed}..main").split()) == BURST + 1  # + the adoption


# -- 2. the remote refuses, or times out, during a push ---------------------------------------


def _hook(remote: Path, script: str) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ncat >/dev/null\n" + script)
    hook.chmod(0o755)


def _failing_hook(remote: Path, counter: Path, fails: int, how: str = "exit 1") -> None:
    """The first `fails` pushes fail (`how`), every later one is accepted."""
    _hook(
        remote,
        f"""n=$(cat '{counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{counter}'
if [ $n -le {fails} ]; then echo "pre-receive: declined push $n" >&2; {how}; fi
""",
    )


@pytest.fixture
def pushy(tmp_path: Path, remote: Path, signing_key: tuple[Path, str]) -> Iterator[Any]:
    """build(push_attempts) -> (runtime, client, ci token) on the conftest remote."""
    home, fingerprint = signing_key
    built: list[Runtime] = []

    def build(attempts: int) -> tuple[Runtime, FlaskClient, str]:
        settings = load_settings(
            None,
            data_dir=tmp_path / "data",
            manifests={"url": str(remote), "push_attempts": attempts},
            signing={"gnupghome": str(home), "key": fingerprint},
        )
        rt = build_runtime(settings)
        built.append(rt)
        ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
        return rt, create_app(settings, rt).test_client(), ci

    yield build
    for rt in built:
        rt.close()
    kill_gpg_agent(tmp_path / "data" / "trusted-gnupg")


def _added(remote: Path, path: str) -> list[str]:
    return git(remote, "log", "--format=%H", "--diff-filter=A", "main", "--", path).split()


RECORD = "artifacts/web/1.2.3.yaml"


def test_remote_declines_every_push_503_then_a_retry_lands_once(
    pushy: Any, remote: Path, tmp_path: Path
) -> None:
    rt, client, ci = pushy(3)
    counter = tmp_path / "pushes"
    _failing_hook(remote, counter, fails=3)
    before = remote_refs(remote)
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
    assert resp.status_code == 503, resp.json
    assert resp.headers["Retry-After"]
    message = resp.json["error"] if "error" in resp.json else str(resp.json)
    assert "did not accept the push after 3 attempts" in message
    assert "declined push 3" in message  # the remote's own words, for the operator
    assert "nothing was written" in message
    assert counter.read_text().strip() == "3"  # bounded: exactly push_attempts tries
    assert remote_refs(remote) == before
    assert client.get("/api/v1/artifacts", headers=bearer(ci)).json["total"] == 0

    again = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
    assert again.status_code == 201, again.json
    assert _added(remote, RECORD) == [again.json["commit"]]
    assert client.post("/api/v1/artifacts", json=artifact_body(),
                       headers=bearer(ci)).status_code == 200  # fmt: skip
    assert _added(remote, RECORD) == [again.json["commit"]]


def test_remote_declines_then_accepts_within_the_attempts(
    pushy: Any, remote: Path, tmp_path: Path
) -> None:
    rt, client, ci = pushy(4)
    counter = tmp_path / "pushes"
    _failing_hook(remote, counter, fails=2)
    base = git(remote, "rev-parse", "main").strip()
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
    assert resp.status_code == 201, resp.json
    assert counter.read_text().strip() == "3"
    assert git(remote, "rev-list", f"{base}..main").split() == [resp.json["commit"]]
    assert _added(remote, RECORD) == [resp.json["commit"]]
    assert rt.writer.push_retries == 2


def test_push_timeouts_503_and_nothing_lands_later(
    pushy: Any, remote: Path, tmp_path: Path
) -> None:
    """A hook that sleeps past the mirror's timeout: the push is given up, and the remote
    must not take it afterwards behind Ritmo's back (it answered "nothing was written")."""
    rt, client, ci = pushy(2)
    rt.mirror.timeout = 1.0  # no setting for it: the mirror's own attribute
    counter = tmp_path / "pushes"
    _failing_hook(remote, counter, fails=2, how="sleep 3")
    before = remote_refs(remote)
    resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
    assert resp.status_code == 503, resp.json
    assert "push timed out" in str(resp.json)
    # Long enough for a hook left running to finish and let receive-pack move the ref.
    time.sleep(4)
    after = remote_refs(remote)
    rt.mirror.timeout = 60
    again = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
    assert again.status_code in (200, 201), again.json
    assert _added(remote, RECORD) == [again.json["commit"]]
    assert after == before, "a push Ritmo gave up on landed after its 503"
    assert again.status_code == 201


# -- 3. GitHub answers 502, and 403 with Retry-After (a secondary rate limit) -----------------
# The forge-level retries are covered in tests/forge/test_github.py (TestRetries); here a
# whole promotion request opens through the app against GitHub on a real socket.


@pytest.fixture
def github(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[ScriptedGitHub, Runtime, FlaskClient]]:  # fmt: skip
    with scripted_github() as gh:
        configured = with_github(settings)
        forge = configured.forge.model_copy(
            update={"github": configured.forge.github.model_copy(update={"api_url": gh.api})}
        )
        configured = configured.model_copy(update={"forge": forge})
        rt = build_runtime(configured, pacing=UNPACED)  # no pacing: only waits GitHub asks for
        try:
            yield gh, rt, create_app(configured, rt).test_client()
        finally:
            rt.close()
            kill_gpg_agent(settings.data_dir / "trusted-gnupg")


def _to_production(rt: Runtime, client: FlaskClient) -> Any:
    ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
    promoter = rt.tokens.create("release-bot", [Scope.PROMOTIONS_WRITE])
    art = client.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"), headers=bearer(ci))
    assert art.status_code == 201 and art.json["promotion_status"] == "staging", art.json
    return client.post(f"/api/v1/artifacts/{art.json['id']}/promote",
                       json={"from": "staging", "to": "production"},
                       headers=bearer(promoter))  # fmt: skip


class TestGitHubFaults:
    @pytest.fixture
    def remote_policy(self) -> str:
        return POLICY

    def test_502_then_secondary_rate_limit_then_open(
        self, github: tuple[ScriptedGitHub, Runtime, FlaskClient]
    ) -> None:
        gh, rt, client = github
        gh.opening(
            pulls=["bad-gateway", "pull-created"],
            statuses=[with_header("secondary-rate-limit", **{"Retry-After": "1"}),
                      "status-created"],
        )  # fmt: skip
        resp = _to_production(rt, client)
        assert resp.status_code == 202, resp.json
        request = resp.json["request"]
        assert request["forge_ref"] == "7"
        pulls = gh.hits_of("POST", f"/repos/{REPOSITORY}/pulls")
        assert [h.status for h in pulls] == [502, 201]  # retried once, opened once
        assert pulls[0].body == pulls[1].body
        statuses = gh.hits_of("POST", f"/repos/{REPOSITORY}/statuses/{request['head']}")
        assert [h.status for h in statuses] == [403, 201]
        assert statuses[1].at - statuses[0].at >= 1.0  # Retry-After honoured
        assert statuses[1].body["state"] == "pending"
        saved = rt.requests_index.get(request["id"])
        assert saved is not None and saved.status == "pending"

    def test_429_with_retry_after_is_waited_out(
        self, github: tuple[ScriptedGitHub, Runtime, FlaskClient]
    ) -> None:
        gh, rt, client = github
        too_many = (429, {"Retry-After": "1"}, {"message": "API rate limit exceeded"})
        gh.opening(pulls=[too_many, "pull-created"], statuses=["status-created"])
        resp = _to_production(rt, client)
        assert resp.status_code == 202, resp.json
        pulls = gh.hits_of("POST", f"/repos/{REPOSITORY}/pulls")
        assert [h.status for h in pulls] == [429, 201]  # waited, then opened once
        assert pulls[1].at - pulls[0].at >= 1.0  # Retry-After honoured

    def test_github_down_fails_visibly_then_a_retry_opens_once(
        self, github: tuple[ScriptedGitHub, Runtime, FlaskClient]
    ) -> None:
        gh, rt, client = github
        down = (503, {"Retry-After": "1"}, {"message": "Service Unavailable"})
        gh.opening(pulls=[down] * 6 + ["pull-created"], statuses=["status-created"])
        started = time.monotonic()
        resp = _to_production(rt, client)
        # Visible: never a 2xx without a PR, and a 503 that says to come back.
        assert resp.status_code == 503, resp.json
        assert "GitHub did not answer" in resp.json["error"] and resp.headers["Retry-After"]
        pulls = gh.hits_of("POST", f"/repos/{REPOSITORY}/pulls")
        assert [h.status for h in pulls] == [503] * 6  # bounded: 5 retries
        assert time.monotonic() - started >= 5  # each after its Retry-After
        assert not gh.hits_of("POST", f"/repos/{REPOSITORY}/statuses/.*")

        (art,), _ = rt.index.search(name="web", version="2.0.0", promotion_status=None,
                                    offset=0, limit=5)  # fmt: skip
        promoter = rt.tokens.create("release-bot-2", [Scope.PROMOTIONS_WRITE])
        again = client.post(f"/api/v1/artifacts/{art.record.id}/promote",
                            json={"from": "staging", "to": "production"},
                            headers=bearer(promoter))  # fmt: skip
        assert again.status_code == 202, again.json
        assert again.json["request"]["forge_ref"] == "7"
        pulls = gh.hits_of("POST", f"/repos/{REPOSITORY}/pulls")
        assert [h.status for h in pulls] == [503] * 6 + [201]  # opened once
        listed = client.get(
            "/api/v1/promotions?app=web&env=production&status=pending",
            headers=bearer(rt.tokens.create("r", [Scope.ARTIFACTS_READ])),
        )
        (pending,) = listed.json["items"]  # the failed open left no second request behind
        assert pending["id"] == again.json["request"]["id"]


# -- 4. a webhook acknowledged by a process that is then killed -9 ----------------------------

CHECK_RUN = {"action": "completed", "installation": {"id": INSTALLATION_ID}, "check_run": {}}

# The first process: acknowledges two deliveries; leaves "d-waiting" queued (its worker is
# off) and is inside the handler of "d-running" when it is killed.
FIRST_PROCESS = """
import json, sys, threading
from pathlib import Path
from bot.app import create_app
from bot.config import load_settings
from bot.runtime import build_runtime
from bot.webhooks.verify import signature_for
from tests.forge.github_sandbox import WEBHOOK_SECRET, with_github

args = json.loads(sys.argv[1])
settings = with_github(load_settings(None, **args))
rt = build_runtime(settings)
rt.webhooks.notify = lambda: None  # no background worker: the deliveries wait
inside = threading.Event()

@rt.router.register("check_run")
def handle(event, runtime):
    inside.set()
    threading.Event().wait()  # never returns: the kill comes first

client = create_app(settings, rt).test_client()
raw = json.dumps(args_payload := json.loads(sys.argv[2])).encode()
for delivery in ("d-running", "d-waiting"):
    resp = client.post("/webhooks/github", data=raw, headers={
        "X-GitHub-Event": "check_run", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, raw),
        "Content-Type": "application/json"})
    print(delivery, resp.status_code, resp.get_json()["status"], flush=True)
    if delivery == "d-running":
        threading.Thread(target=rt.webhooks.drain, daemon=True).start()
        assert inside.wait(30)
print("ready", flush=True)
threading.Event().wait()
"""


def _deliver(client: FlaskClient, delivery: str) -> Any:
    raw = json.dumps(CHECK_RUN).encode()
    return client.post("/webhooks/github", data=raw, headers={
        "X-GitHub-Event": "check_run", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, raw),
        "Content-Type": "application/json",
    })  # fmt: skip


def test_webhook_acknowledged_then_kill_9_is_handled_once_after_restart(
    tmp_path: Path, remote: Path, signing_key: tuple[Path, str]
) -> None:
    home, fingerprint = signing_key
    args = {
        "data_dir": str(tmp_path / "data"),
        "manifests": {"url": str(remote)},
        "signing": {"gnupghome": str(home), "key": fingerprint},
        "work_lease": 2.0,  # the dead process's claim on d-running runs out after this
    }
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    errors = tmp_path / "first.err"
    with open(errors, "w") as err, subprocess.Popen(
        [sys.executable, "-c", FIRST_PROCESS, json.dumps(args), json.dumps(CHECK_RUN)],
        stdout=subprocess.PIPE, stderr=err, text=True, env=env, start_new_session=True,
    ) as first:  # fmt: skip
        try:
            assert first.stdout is not None
            lines = [first.stdout.readline().strip() for _ in range(3)]
            assert lines == ["d-running 202 queued", "d-waiting 202 queued", "ready"], (
                lines, errors.read_text())  # fmt: skip
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    settings = with_github(load_settings(None, **args))
    restarted = build_runtime(settings)
    restarted.webhooks.notify = lambda: None  # type: ignore[method-assign]  # drained by hand
    handled: list[str] = []

    @restarted.router.register("check_run")
    def handle(event: Event, runtime: Any) -> None:
        handled.append(event.delivery_id)

    try:
        running = restarted.deliveries.get("d-running")
        assert running is not None and running["status"] == "running"  # the dead one's lease
        time.sleep(max(0.0, running["not_before"] - time.time()) + 0.1)  # until it runs out
        assert restarted.webhooks.drain() == 2
        assert restarted.webhooks.drain() == 0
        assert sorted(handled) == ["d-running", "d-waiting"]
        for delivery in ("d-running", "d-waiting"):
            assert restarted.deliveries.get(delivery)["status"] == "done"  # type: ignore[index]
        client = create_app(settings, restarted).test_client()
        for delivery in ("d-running", "d-waiting"):
            again = _deliver(client, delivery)
            assert again.status_code == 200 and again.json["status"] == "duplicate"
        assert restarted.webhooks.drain() == 0
        assert sorted(handled) == ["d-running", "d-waiting"]
    finally:
        restarted.close()
        kill_gpg_agent(settings.data_dir / "trusted-gnupg")


# -- 5. an outbound target down across a restart ----------------------------------------------


class TestTargetDownAcrossRestart:
    @pytest.fixture
    def port(self) -> int:
        return free_port()  # nobody listens there: the target is down

    @pytest.fixture
    def remote_policy(self, port: int) -> str:
        return f"""\
environments: [{{name: dev}}, {{name: staging}}, {{name: production}}]
apps:
  web: {{}}
integrations:
  - on: [artifact_recorded]
    webhook:
      url: "http://127.0.0.1:{port}/hooks"
      body: {{event: "${{EVENT}}", artifact_id: "${{ARTIFACT_ID}}", version: "${{VERSION}}"}}
"""

    def test_delivered_once_when_it_returns(
        self, settings: Settings, runtime: Runtime, client: FlaskClient,
        tokens: dict[str, str], port: int,
    ) -> None:  # fmt: skip
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 201, resp.json
        runtime.outbox.stop()  # the app started the worker: attempt by hand from here on
        runtime.outbox.deliver_due(now=time.time() + 3600)  # the target is down
        (row,) = runtime.outbox.search()[0]
        assert row.status == "queued" and row.attempts >= 1, row
        assert "Connection refused" in (row.last_error or "")
        key = row.key
        runtime.close()  # the restart

        restarted = build_runtime(settings)
        server = RecordingServer(port)  # the target is back, on the same port
        try:
            far = time.time() + 24 * 3600  # past any backoff
            assert restarted.outbox.deliver_due(now=far) == 1
            assert restarted.outbox.deliver_due(now=far + 3600) == 0
            (seen,) = server.seen
            assert seen.path == "/hooks"
            assert seen.headers["Idempotency-Key"] == key
            assert seen.body == {"event": "artifact_recorded", "artifact_id": resp.json["id"],
                                 "version": "1.2.3"}  # fmt: skip
            (row,) = restarted.outbox.search()[0]
            assert row.status == "delivered"
        finally:
            server.close()
            restarted.close()
