"""Two replicas, each `ritmo serve` with two gunicorn workers, on one remote and one
PostgreSQL database. Registrations, promotions, promotion requests, GitHub review deliveries
and ArgoCD reports arrive at both replicas at once (each one twice, as a load balancer's
retry or a redelivery would send it). Afterwards: every record and promotion landed once,
one pull request was opened and merged once, each delivery was handled once, no push was
ever forced, and `ritmo verify` finds the history clean."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bot.auth import Scope
from bot.store.schema import make_engine
from bot.store.tokens import TokenStore
from bot.webhooks.verify import signature_for
from tests.conftest import make_remote
from tests.forge.github_sandbox import (
    APP_ID,
    INSTALLATION_ID,
    REPOSITORY,
    SAMPLES,
    WEBHOOK_SECRET,
    sample,
)
from tests.helpers import artifact_body, git
from tests.reliability.github_script import DELAY, ScriptedGitHub, scripted_github
from tests.reliability.server import RitmoServer, ingest

APPS = ("web", "api", "jobs")
VERSIONS = ("1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.2.0")
ARGOCD_TOKEN = "argocd-shared-secret"
HOOK_MS = 20  # a remote a little slow to answer, so that pushes overlap

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
    approvals: [{group: ops-team, count: 1}, {group: security-team, count: 1}]
groups:
  ops-team: {kind: github-team, team: acme/ops}
  security-team: {kind: github-team, team: acme/security}
apps:
  web: {}
  api: {}
  jobs: {}
"""

# Logs every ref update the remote is asked for and refuses (and marks) any that is not a
# fast-forward; receive.denyNonFastForwards would refuse it too, after this hook ran.
PRE_RECEIVE = """#!/bin/sh
zero=0000000000000000000000000000000000000000
while read old new ref; do
  echo "$old $new $ref" >> "{log}"
  if [ "$old" != "$zero" ] && [ "$new" != "$zero" ] && \\
     ! git merge-base --is-ancestor "$old" "$new"; then
    echo "FORCED $ref" >> "{log}"
    echo "test remote: $ref is not a fast-forward" >&2
    exit 1
  fi
done
sleep {seconds}
"""


def _remote(root: Path) -> tuple[Path, Path]:
    """The scaffold with three apps (web, api, jobs) and the policy; the hook's log."""
    bare = make_remote(root, POLICY)
    work = root / "apps-seed"
    git(root, "clone", "--quiet", str(bare), str(work))
    for app in APPS[1:]:
        shutil.copytree(work / "apps" / "web", work / "apps" / app)
        for path in (work / "apps" / app).rglob("*.yaml"):
            path.write_text(path.read_text().replace("web", app))
    git(work, "add", "-A")
    git(work, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com",
        "commit", "--quiet", "-m", "Add api and jobs")  # fmt: skip
    git(work, "push", "--quiet", "origin", "main")
    log = root / "ref-updates.log"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(PRE_RECEIVE.format(log=log, seconds=HOOK_MS / 1000))
    hook.chmod(0o755)
    return bare, log


class Replica(RitmoServer):
    def __init__(self, work: Path, remote: Path, signing_key: tuple[Path, str], database: str,
                 github_api: str) -> None:  # fmt: skip
        work.mkdir()
        super().__init__(work, remote, *signing_key)
        self.env.update({
            "RITMO_DATABASE_URL": database,
            "RITMO_WORKERS": "2",
            "RITMO_THREADS": "32",
            "RITMO_LOG_FORMAT": "text",
            "RITMO_CD__ARGOCD_TOKEN": ARGOCD_TOKEN,
            "RITMO_FORGE__KIND": "github",
            "RITMO_FORGE__GITHUB__APP_ID": str(APP_ID),
            "RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE": str(SAMPLES / "app-key.pem"),
            "RITMO_FORGE__GITHUB__INSTALLATION_ID": str(INSTALLATION_ID),
            "RITMO_FORGE__GITHUB__REPOSITORY": REPOSITORY,
            "RITMO_FORGE__GITHUB__WEBHOOK_SECRET": WEBHOOK_SECRET,
            "RITMO_FORGE__GITHUB__API_URL": github_api,
        })  # fmt: skip


@pytest.fixture
def github() -> Iterator[ScriptedGitHub]:
    with scripted_github() as gh:
        gh.opening(pulls=["pull-created"], statuses=["status-created"])
        yield gh


@pytest.fixture
def replica_env() -> dict[str, str]:
    """More RITMO_* settings for both replicas; override in a class."""
    return {}


@pytest.fixture
def replicas(
    tmp_path: Path, signing_key: tuple[Path, str], database_url: str, github: ScriptedGitHub,
    replica_env: dict[str, str],
) -> Iterator[tuple[list[Replica], Path, Path, dict[str, str]]]:  # fmt: skip
    remote, log = _remote(tmp_path)
    engine = make_engine(database_url)  # the replicas' database holds their tokens
    store = TokenStore(engine)
    tokens = {
        "ci": store.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ]),
        "promoter": store.create("release-bot", [Scope.PROMOTIONS_WRITE]),
        "reader": store.create("reader", [Scope.ARTIFACTS_READ]),
    }
    engine.dispose()
    servers = [
        Replica(tmp_path / name, remote, signing_key, database_url, github.api)
        for name in ("a", "b")
    ]
    for server in servers:
        server.env.update(replica_env)
    try:
        starting = [threading.Thread(target=s.start) for s in servers]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join(120)
        for server in servers:
            assert server.proc is not None and server.proc.poll() is None, server.work
        yield servers, remote, log, tokens
    finally:
        for server in servers:
            server.stop()


def _all_at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run every call in its own thread, released together; the answers in order."""
    answers: list[requests.Response | BaseException | None] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            answers[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - raised below, in the test's thread
            answers[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for answer in answers:
        if not isinstance(answer, requests.Response):
            raise AssertionError(f"a call did not answer: {answer!r}")
    return answers  # type: ignore[return-value]


def _post(url: str, token: str, body: Any) -> Callable[[], requests.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    return lambda: requests.post(url, json=body, headers=headers, timeout=120)


def _delivery(url: str, event: str, delivery: str, payload: dict[str, Any]
              ) -> Callable[[], requests.Response]:  # fmt: skip
    raw = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, raw),
        "Content-Type": "application/json",
    }
    return lambda: requests.post(f"{url}/webhooks/github", data=raw, headers=headers, timeout=60)


def _review_payload(login: str, head: str) -> dict[str, Any]:
    name = "pull_request_review-submitted"
    payload: dict[str, Any] = json.loads((SAMPLES / "webhooks" / f"{name}.json").read_text())
    payload["review"]["user"]["login"] = payload["sender"]["login"] = login
    payload["review"]["commit_id"] = payload["pull_request"]["head"]["sha"] = head
    return payload


def _approved_by_both_teams(gh: ScriptedGitHub, head: str) -> None:
    """GitHub's answer to GET reviews once alice (ops) and bob (security) approved `head`."""
    status, headers, body = sample("reviews", gh.api)
    alice = next(r for r in body if r["user"]["login"] == "alice")
    bob = next(r for r in body if r["user"]["login"] == "bob")
    reviews = [{**alice, "commit_id": head}, {**bob, "commit_id": head, "state": "APPROVED"}]
    path = re.compile(f"/repos/{REPOSITORY}/pulls/7/reviews" + r"(\?.*)?")
    with gh._lock:
        gh.routes.insert(0, ("GET", path, [(status, headers, reviews)]))


def _until(check: Callable[[], bool], what: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.2)


def _subjects(remote: Path, base: str, *args: str) -> list[str]:
    out = git(remote, "log", "--format=%s", *args, f"{base}..main")
    return [line for line in out.splitlines() if line]


def test_two_replicas_of_two_workers_never_duplicate_lose_or_force(
    replicas: tuple[list[Replica], Path, Path, dict[str, str]],
    github: ScriptedGitHub,
    database_url: str,
) -> None:
    servers, remote, log, tokens = replicas
    base = git(remote, "rev-parse", "main").strip()
    a, b = servers

    # 1. Every registration sent to both replicas at once: 15 artifacts, 30 requests.
    bodies = [artifact_body(name=app, version=v) for app in APPS for v in VERSIONS]
    answers = _all_at_once([
        _post(f"{server.url}/api/v1/artifacts", tokens["ci"], body)
        for body in bodies for server in servers
    ])  # fmt: skip
    ids: dict[tuple[str, str], str] = {}
    for i, body in enumerate(bodies):
        pair = answers[2 * i : 2 * i + 2]
        assert sorted(r.status_code for r in pair) == [200, 201], [r.text for r in pair]
        assert pair[0].json()["id"] == pair[1].json()["id"]
        ids[(body["name"], body["version"])] = pair[0].json()["id"]
    recorded = [s for s in _subjects(remote, base) if s.startswith("Record artifact")]
    assert sorted(recorded) == sorted(f"Record artifact {n} {v}" for n, v in ids)

    # 2. Direct promotions dev -> staging, each asked twice of each replica.
    latest = {app: ids[(app, VERSIONS[-1])] for app in APPS}
    promote = [
        _post(
            f"{server.url}/api/v1/artifacts/{latest[app]}/promote",
            tokens["promoter"],
            {"from": "dev", "to": "staging"},
        )  # fmt: skip
        for app in APPS
        for server in servers * 2
    ]
    answers = _all_at_once(promote)
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers]
    for i in range(len(APPS)):  # one commit per app, which every answer names or none
        mine = [r.json() for r in answers[4 * i : 4 * i + 4]]
        assert {m["status"] for m in mine} <= {"promoted", "unchanged"}, mine
        assert len({m["commit"] for m in mine if m["commit"]}) == 1, mine
    staged = [s for s in _subjects(remote, base) if s.endswith(" to staging")]
    assert sorted(staged) == sorted(f"Promote {app} {VERSIONS[-1]} to staging" for app in APPS)

    # 3. One promotion to production (approval by policy), asked twice of each replica:
    # one request, one pull request.
    url = f"/api/v1/artifacts/{latest['web']}/promote"
    answers = _all_at_once([
        _post(f"{server.url}{url}", tokens["promoter"], {"from": "staging", "to": "production"})
        for server in servers * 2
    ])  # fmt: skip
    assert all(r.status_code == 202 for r in answers), [r.text for r in answers]
    opened = {r.json()["request"]["id"] for r in answers}
    assert len(opened) == 1, opened
    request = answers[0].json()["request"]
    assert len(github.hits_of("POST", f"/repos/{REPOSITORY}/pulls")) == 1
    branches = git(remote, "for-each-ref", "--format=%(refname)", "refs/heads/ritmo/promote/")
    assert branches.split() == ["refs/heads/ritmo/promote/web/production"]

    # 4. GitHub says alice and bob approved: their two review deliveries, each delivered to
    # both replicas (the second copy is a duplicate wherever it lands).
    _approved_by_both_teams(github, request["head"])
    answers = _all_at_once([
        _delivery(server.url, "pull_request_review", delivery,
                  _review_payload(login, request["head"]))  # fmt: skip
        for delivery, login in (("review-alice", "alice"), ("review-bob", "bob"))
        for server in servers
    ])  # fmt: skip
    for pair in (answers[:2], answers[2:]):
        assert sorted(r.json()["status"] for r in pair) == ["duplicate", "queued"], [
            r.text for r in pair
        ]

    def merged() -> bool:
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        got = requests.get(f"{a.url}/api/v1/promotions/{request['id']}", headers=reader,
                           timeout=30)  # fmt: skip
        return bool(got.json()["status"] == "merged")

    _until(merged, f"{request['id']} merged")
    engine = make_engine(database_url)
    try:

        def handled() -> dict[str, tuple[str, int]]:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT delivery_id, status, attempts FROM webhook_deliveries")
                ).all()
            return {d: (s, n) for d, s, n in rows}

        _until(lambda: all(s == "done" for s, _ in handled().values()), "deliveries handled")
        assert handled() == {"review-alice": ("done", 1), "review-bob": ("done", 1)}
    finally:
        engine.dispose()
    merges = git(remote, "rev-list", "--merges", f"{base}..main").split()
    assert len(merges) == 1, merges
    trailers = git(remote, "log", "-1", "--format=%B", merges[0])
    assert f"Ritmo-Request: {request['id']}" in trailers
    assert "Ritmo-Approved-By: alice, bob" in trailers

    # 5. ArgoCD reports the production sync to both replicas, twice each: one deployment.
    tip = git(remote, "rev-parse", "main").strip()
    report = json.loads((SAMPLES.parent / "argocd" / "on-deployed.json").read_text())
    report.update(revision=tip, app="web-production")
    answers = _all_at_once([
        (lambda s=server: requests.post(f"{s.url}/webhooks/argocd", json=report, timeout=60,
                                        headers={"X-Ritmo-Token": ARGOCD_TOKEN}))  # fmt: skip
        for server in servers * 2
    ])  # fmt: skip
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1, [r.text for r in answers]
    ledger = git(remote, "log", "--format=%s", "ritmo/deployments").splitlines()
    assert len([s for s in ledger if "web" in s and "production" in s]) == 1, ledger

    # Nothing lost: both replicas list every artifact; nothing forced; the trail verifies.
    for server in servers:
        listed = {item["id"] for item in server.all_artifacts(tokens["reader"])}
        assert listed == set(ids.values()), server.url
    updates = log.read_text()
    assert "FORCED" not in updates
    assert "refs/heads/main" in updates
    git(remote, "fsck", "--strict", "--no-progress")
    verified = ingest.run([*ingest.ritmo_command(), "verify"], cwd=b.work, env=b.env,
                          timeout=120, check=False)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ritmo verify: ok" in verified.stderr


def _log(server: Replica) -> str:
    return "".join(path.read_text(errors="replace") for path in server.work.glob("server-*.log"))


LEADS = "now leads the scheduled jobs"


class TestAReplicaDies:
    """The replica that leads the scheduled jobs is killed (-9) while a review delivery is
    in its hands: the other takes the lead and the delivery, and the request merges once."""

    @pytest.fixture
    def replica_env(self) -> dict[str, str]:
        return {"RITMO_WORK_LEASE": "2", "RITMO_SCHEDULER_INTERVAL": "1"}

    def test_its_lead_and_its_delivery_go_to_the_other(
        self,
        replicas: tuple[list[Replica], Path, Path, dict[str, str]],
        github: ScriptedGitHub,
        database_url: str,
    ) -> None:
        servers, remote, log, tokens = replicas
        _until(lambda: any(LEADS in _log(s) for s in servers), "one replica leads", 30)
        leader, other = sorted(servers, key=lambda s: LEADS not in _log(s))
        assert LEADS not in _log(other)
        base = git(remote, "rev-parse", "main").strip()

        created = _post(f"{leader.url}/api/v1/artifacts", tokens["ci"], artifact_body())()
        assert created.status_code == 201, created.text
        art = created.json()["id"]
        url = f"{leader.url}/api/v1/artifacts/{art}/promote"
        staged = _post(url, tokens["promoter"], {"from": "dev", "to": "staging"})()
        assert staged.status_code == 201, staged.text
        opened = _post(url, tokens["promoter"], {"from": "staging", "to": "production"})()
        assert opened.status_code == 202, opened.text
        request = opened.json()["request"]

        # GitHub now says alice and bob approved, but the first to ask waits 30 s for it:
        # the leader, settling the request for the delivery (or its scheduled run).
        _approved_by_both_teams(github, request["head"])
        path = re.compile(f"/repos/{REPOSITORY}/pulls/7/reviews" + r"(\?.*)?")
        with github._lock:
            status, headers, reviews = github.routes[0][2][0]
            slow = (status, {**headers, DELAY: "30"}, reviews)
            github.routes.insert(0, ("GET", path, [slow, (status, headers, reviews)]))
        delivered = _delivery(leader.url, "pull_request_review", "review-alice",
                              _review_payload("alice", request["head"]))()  # fmt: skip
        assert delivered.status_code == 202, delivered.text
        engine = make_engine(database_url)
        try:

            def delivery() -> tuple[str, int]:
                with engine.connect() as conn:
                    row = conn.execute(sa.text(
                        "SELECT status, attempts FROM webhook_deliveries "
                        "WHERE delivery_id = 'review-alice'")).one()  # fmt: skip
                return str(row[0]), int(row[1])

            _until(lambda: delivery() == ("running", 1), "the leader holds the delivery", 30)
            leader.kill()

            _until(lambda: LEADS in _log(other), "the other replica leads", 30)
            _until(lambda: delivery() == ("done", 2), "the other replica handled it", 60)
        finally:
            engine.dispose()
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        shown = requests.get(f"{other.url}/api/v1/promotions/{request['id']}", headers=reader,
                             timeout=30).json()  # fmt: skip
        assert shown["status"] == "merged", shown
        merges = git(remote, "rev-list", "--merges", f"{base}..main").split()
        assert len(merges) == 1, merges
        assert "FORCED" not in log.read_text()
        git(remote, "fsck", "--strict", "--no-progress")


RESENT_VERSIONS = tuple(f"2.0.{n}" for n in range(20))  # 3 apps x 20: 60 registrations
_BUCKET = re.compile(r"^ritmo_git_push_attempts_per_batch_bucket\{(?P<labels>[^}]*)\} (?P<n>\S+)$")


def _batches_within(metrics: str, attempts: float) -> tuple[float, float]:
    """(batches the manifests writer landed within `attempts` push attempts, all batches)."""
    within = total = 0.0
    for line in metrics.splitlines():
        found = _BUCKET.match(line)
        if not found or 'writer="manifests"' not in found["labels"]:
            continue
        bound = re.search(r'le="([^"]+)"', found["labels"])
        assert bound is not None, line
        if bound[1] == "+Inf":
            total += float(found["n"])
        elif float(bound[1]) == attempts:
            within += float(found["n"])
    return within, total


def _first_parent(remote: Path, base: str, *args: str) -> list[tuple[str, str]]:
    out = git(remote, "log", "--first-parent", "--reverse", "--format=%H %s", f"{base}..main",
              *args)  # fmt: skip
    return [tuple(line.split(" ", 1)) for line in out.splitlines() if line]  # type: ignore[misc]


def test_a_registration_sent_to_both_replicas_lands_with_its_pins_once_and_only_forward(
    replicas: tuple[list[Replica], Path, Path, dict[str, str]],
) -> None:
    """Each of 60 registrations reaches both replicas at once (a retrying CI behind a load
    balancer): one record and one dev pin each, dev never goes back to an artifact
    registered earlier, both answers name the same commits, and no batch needs more than
    2 push attempts (the replicas take turns at the remote instead of racing)."""
    servers, remote, log, tokens = replicas
    base = git(remote, "rev-parse", "main").strip()
    bodies = [artifact_body(name=app, version=v) for v in RESENT_VERSIONS for app in APPS]
    answers = _all_at_once([
        _post(f"{server.url}/api/v1/artifacts", tokens["ci"], body)
        for body in bodies for server in servers
    ])  # fmt: skip

    # Both answers of a pair: one 201, one 200, the same record and the same dev pin.
    pins: dict[tuple[str, str], str] = {}
    for i, body in enumerate(bodies):
        pair = answers[2 * i : 2 * i + 2]
        assert sorted(r.status_code for r in pair) == [200, 201], [r.text for r in pair]
        first, second = (r.json() for r in pair)
        assert (first["id"], first["commit"]) == (second["id"], second["commit"])
        assert first["promotions"] == second["promotions"], (first, second)
        assert [p["environment"] for p in first["promotions"]] == ["dev"], first
        pins[(body["name"], body["version"])] = first["promotions"][0]["commit"]

    # One commit per record and one per dev pin, the one both answers named.
    history = _first_parent(remote, base)
    subjects = [s for _, s in history]
    for app, version in pins:
        assert subjects.count(f"Record artifact {app} {version}") == 1, (app, version)
        pinned = [sha for sha, s in history if s == f"Promote {app} {version} to dev"]
        assert pinned == [pins[(app, version)]], (app, version, pinned)
    assert len(history) == 2 * len(bodies), subjects

    # Walk each dev overlay's first-parent history: every pin is of an artifact recorded
    # after the one it replaces.
    recorded = [s.rsplit(" ", 2)[1:] for s in subjects if s.startswith("Record artifact")]
    order = {(app, version): n for n, (app, version) in enumerate(recorded)}
    for app in APPS:
        overlay = f"apps/{app}/overlays/dev/kustomization.yaml"
        seen = []
        for sha, subject in _first_parent(remote, base, "--", overlay):
            tag = re.search(r'newTag: "([^"]+)"', git(remote, "show", f"{sha}:{overlay}"))
            assert tag is not None, subject
            seen.append(order[(app, tag[1])])
        assert seen == sorted(seen) and len(set(seen)) == len(seen), (app, seen)

    # Push attempts per batch, from each replica's /metrics: all within 2.
    for server in servers:
        exposed = requests.get(f"{server.url}/metrics", timeout=30).text
        within, total = _batches_within(exposed, 2.0)
        assert total > 0 and within == total, (server.url, within, total)
    assert "FORCED" not in log.read_text()
    git(remote, "fsck", "--strict", "--no-progress")
