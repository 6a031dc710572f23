"""GET /metrics after real activity, and /readyz: 200, then 503 naming the failing check."""

from __future__ import annotations

import random
import shutil
import string
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from bot.api import health
from bot.auth import Scope
from bot.runtime import Runtime
from bot.telemetry.collectors import LiveCollector
from bot.telemetry.middleware import request_labels
from tests.forge.github_sandbox import GitHubSandbox, forge
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer
from tests.reliability.server import RitmoServer

HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


def _scrape(client: FlaskClient) -> dict[str, Any]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}


def _value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    found = [
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, f"no {sample}{labels} in {families[family].samples}"
    return float(found[0])


def _register(client: FlaskClient, token: str, version: str) -> str:
    resp = client.post(
        "/api/v1/artifacts", json=artifact_body(version=version), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def _deployed(client: FlaskClient, token: str, art: str, env: str, status: str) -> str:
    body = {"artifact_id": art, "environment": env, "status": status}
    resp = client.post("/api/v1/deployments", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.json
    return str(resp.json["id"])


def test_metrics_after_register_promote_deploy_rollback(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
) -> None:
    store = runtime.tokens
    cd = store.create("cd-system", [Scope.DEPLOYMENTS_WRITE, Scope.PROMOTIONS_WRITE])
    alice = store.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    bob = store.create("bob", [Scope.PROMOTIONS_APPROVE], ["security-team"])

    # Recorded; the policy pins it in dev and staging by itself.
    good = _register(client, tokens["ci"], "2.0.0")
    # staging -> production waits for two approvals, then merges.
    resp = client.post(
        f"/api/v1/artifacts/{good}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(tokens["promoter"]),
    )
    assert resp.status_code == 202, resp.json
    request_id = resp.json["request"]["id"]
    for person in (alice, bob):
        review = client.post(
            f"/api/v1/promotions/{request_id}/approvals", json={}, headers=bearer(person)
        )
        assert review.status_code == 201, review.json
    assert review.json["status"] == "merged"
    # Deployed in production and dev; then a bad one in dev, rolled back by hand.
    _deployed(client, cd, good, "production", "succeeded")
    _deployed(client, cd, good, "dev", "succeeded")
    bad = _register(client, tokens["ci"], "2.1.0")
    failed = _deployed(client, cd, bad, "dev", "failed")
    rolled = client.post(
        f"/api/v1/deployments/{failed}/rollback", json={"reason": "bad config"}, headers=bearer(cd)
    )
    assert rolled.status_code == 201, rolled.json
    assert client.post("/webhooks/argocd", json={}).status_code == 404  # not configured

    m = _scrape(client)

    # The brief's five, from the index.
    hop = "ritmo_promotion_hop_seconds"
    for from_env, to_env in (("registered", "dev"), ("dev", "staging"), ("staging", "production")):
        assert _value(m, hop, f"{hop}_count", from_env=from_env, to_env=to_env) >= 1
    assert _value(m, hop, f"{hop}_count", from_env="staging", to_env="production") == 1
    assert m[hop].type == "histogram"
    ratio = "ritmo_deployment_success_ratio"
    assert _value(m, ratio, ratio, environment="production") == 1.0
    assert _value(m, ratio, ratio, environment="dev") == 0.5
    deployments = "ritmo_deployments"
    assert _value(m, deployments, deployments, environment="dev", status="failed") == 1
    ttp = "ritmo_time_to_production_seconds"
    assert _value(m, ttp, f"{ttp}_count", environment="production") == 1
    assert _value(m, ttp, f"{ttp}_bucket", environment="production", le="+Inf") == 1
    assert _value(m, "ritmo_rollbacks", "ritmo_rollbacks_total", environment="dev") == 1
    wait = "ritmo_approval_wait_seconds"
    assert _value(m, wait, f"{wait}_count", from_env="staging", to_env="production") == 1

    # Requests by route template (never the raw path), status and kind.
    http = "ritmo_http_requests"
    assert (
        _value(m, http, f"{http}_total", method="POST", route="/api/v1/artifacts",
               status="201", kind="api")
        == 2
    )  # fmt: skip
    approvals = "/api/v1/promotions/<request_id>/approvals"
    assert _value(m, http, f"{http}_total", route=approvals, status="201") == 2
    assert _value(m, http, f"{http}_total", route="/webhooks/argocd", kind="webhook") == 1
    duration = "ritmo_http_request_duration_seconds"
    assert _value(m, duration, f"{duration}_count", route="/api/v1/deployments") == 3

    # Live values: pushes, queues; GitHub calls are none on the local forge.
    pushes = _value(m, "ritmo_git_pushes", "ritmo_git_pushes_total", writer="manifests")
    attempts = _value(
        m, "ritmo_git_push_attempts", "ritmo_git_push_attempts_total", writer="manifests"
    )
    assert attempts >= pushes >= 4
    per_batch = "ritmo_git_push_attempts_per_batch"  # one observation per landed batch
    assert _value(m, per_batch, f"{per_batch}_count", writer="manifests") == pushes
    assert _value(m, per_batch, f"{per_batch}_bucket", writer="manifests", le="1.0") == pushes
    assert _value(m, "ritmo_git_pushes", "ritmo_git_pushes_total", writer="ledger") >= 3
    assert _value(m, "ritmo_git_push_retries", "ritmo_git_push_retries_total", writer="ledger") == 0
    assert _value(m, "ritmo_webhook_queue_depth", "ritmo_webhook_queue_depth") == 0
    assert _value(m, "ritmo_outbox_depth", "ritmo_outbox_depth", status="dead") == 0
    assert "ritmo_github_api_calls" in m and not m["ritmo_github_api_calls"].samples
    assert "ritmo_github_rate_limit_remaining" not in m


def test_github_calls_and_rate_limit(
    gh: GitHubSandbox, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.forge import RequestView
    from bot.policy.evaluate import Decision

    gh.token()
    gh.status(HEAD)
    github = forge()
    assert github.rate_limit() is None  # nothing known yet, and nothing asked
    view = RequestView(
        id="req-6dcb09b5b57875f3", app="web", version="2.0.0", from_env="staging",
        to_env="production", branch="ritmo/promote/web/production", head=HEAD,
        requested_by="release-bot", title="Promote", body="", groups=("ops-team",),
    )  # fmt: skip
    github.progressed(view, Decision(status="pending", required=2, reason="missing approvals"))
    calls = len(gh.rsps.calls)
    known = github.rate_limit()
    assert known is not None and known[0] <= known[1]
    assert len(gh.rsps.calls) == calls  # reading it cost no request

    monkeypatch.setattr(runtime, "forge", github)  # the forge is a Runtime field
    families = {m.name: m for m in LiveCollector(runtime).collect()}
    progressed = [s for s in families["ritmo_github_api_calls"].samples
                  if s.labels == {"operation": "progressed"}]  # fmt: skip
    assert progressed and progressed[0].value == github.calls["progressed"] > 0
    left = families["ritmo_github_rate_limit_remaining"].samples[0].value
    limit = families["ritmo_github_rate_limit_limit"].samples[0].value
    assert (left, limit) == known


def test_readyz_names_the_failing_check(
    client: FlaskClient, runtime: Runtime, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READY_TTL", 0.0)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json == {
        "status": "ready",
        "checks": {"remote": "ok", "database": "ok", "signing_key": "ok"},
    }

    monkeypatch.setattr(runtime.signer, "fingerprint", "0" * 40)
    shutil.rmtree(remote)
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json["failing"] == ["remote", "signing_key"]
    assert down.json["checks"]["database"] == "ok"
    assert down.json["checks"]["remote"].startswith("failing: ")
    assert str(remote) not in down.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_answers_are_cached_briefly(client: FlaskClient, remote: Path) -> None:
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(remote)
    assert client.get("/readyz").status_code == 200  # within READY_TTL: the same answer


def test_with_two_workers_every_scrape_sums_both(
    tmp_path: Path, remote: Path, signing_key: tuple[Path, str]
) -> None:
    """`ritmo serve` with two gunicorn workers: whichever answers /metrics, the counted
    series are the sum over both (prometheus-client's multiprocess files)."""
    server = RitmoServer(tmp_path, remote, *signing_key)
    server.env.update({"RITMO_WORKERS": "2", "RITMO_THREADS": "8"})
    try:
        server.start()
        ci = server.token("ci", "artifacts:write", "artifacts:read")
        counters = server.data_dir / "prometheus"
        sent = 0
        for _burst in range(5):  # until both workers have answered something
            sent += 48
            with ThreadPoolExecutor(max_workers=24) as pool:
                urls = [f"{server.url}/api/v1/artifacts?per_page=1"] * 48
                codes = list(pool.map(
                    lambda url: requests.get(url, headers=bearer(ci), timeout=30).status_code,
                    urls,
                ))  # fmt: skip
            assert codes == [200] * 48
            if len({p.stem.rsplit("_", 1)[-1] for p in counters.glob("counter_*.db")}) == 2:
                break
        else:
            pytest.fail(f"one worker answered every request: {sorted(counters.iterdir())}")
        for version in ("1.0.0", "1.0.1", "1.0.2"):
            resp = requests.post(f"{server.url}/api/v1/artifacts", headers=bearer(ci),
                                 json=artifact_body(version=version), timeout=60)  # fmt: skip
            assert resp.status_code == 201, resp.text
        scrapes = []
        for _ in range(10):  # a new connection each time: either worker may answer
            resp = requests.get(f"{server.url}/metrics", timeout=30)
            assert resp.status_code == 200
            scrapes.append({f.name: f for f in text_string_to_metric_families(resp.text)})
        listed = [_value(s, "ritmo_http_requests", "ritmo_http_requests_total", method="GET",
                         route="/api/v1/artifacts", status="200") for s in scrapes]  # fmt: skip
        assert listed == [float(sent)] * 10
        created = [_value(s, "ritmo_http_requests", "ritmo_http_requests_total", method="POST",
                          route="/api/v1/artifacts", status="201") for s in scrapes]  # fmt: skip
        assert created == [3.0] * 10
        pushes = {_value(s, "ritmo_git_pushes", "ritmo_git_pushes_total", writer="manifests")
                  for s in scrapes}  # fmt: skip
        assert len(pushes) == 1 and 1 <= pushes.pop() <= 3
        seen = [_value(s, "ritmo_http_requests", "ritmo_http_requests_total", method="GET",
                       route="/metrics", status="200") if any(
                           x.labels.get("route") == "/metrics"
                           for x in s["ritmo_http_requests"].samples) else 0.0
                for s in scrapes]  # fmt: skip
        assert seen == [float(i) for i in range(10)]  # each scrape counts the ones before
    finally:
        server.stop()


# -- label cardinality (issue 14, finding 1) ---------------------------------------------


def test_random_methods_and_paths_do_not_grow_the_exposition(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    """Anonymous requests with made-up methods and paths: label values stay in closed sets
    (`other`, `unmatched`, the route template), so 10,000 of them add a few series at most."""
    rng = random.Random(14)
    letters = string.ascii_uppercase
    assert client.get("/healthz").status_code == 200
    before = len(client.get("/metrics").data)
    for i in range(10_000):
        method = "".join(rng.choices(letters, k=rng.randint(3, 12)))
        if i % 3 == 0:  # a route that exists, with a template, and a method it lacks
            path = f"/api/v1/artifacts/art-{rng.getrandbits(64):x}"
        else:
            path = "/" + "/".join(
                "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(1, 10)))
                for _ in range(rng.randint(1, 4))
            )
        resp = client.open(path, method=method)
        assert resp.status_code in (404, 405), (method, path, resp.status_code)
    for i in range(200):  # known methods on unknown paths and on templated ones
        client.get(f"/no/such/{i}")
        client.get(f"/api/v1/artifacts/art-{i}", headers=bearer(tokens["reader"]))
    grown = len(client.get("/metrics").data) - before
    assert grown < 10 * 1024, grown
    text = client.get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = families["ritmo_http_requests"].samples
    seen = {(s.labels["method"], s.labels["route"]) for s in samples}
    assert {m for m, _ in seen} <= {"GET", "other"}, seen
    assert {r for _, r in seen} <= {
        "/healthz", "/metrics", "unmatched", "/api/v1/artifacts/<artifact_id>",
    }, seen  # fmt: skip


def test_request_labels_come_from_closed_sets() -> None:
    assert request_labels("GET", "/healthz", 200) == ("GET", "/healthz", "200")
    assert request_labels("get", None, 404) == ("other", "unmatched", "404")
    assert request_labels("BREW", None, 418) == ("other", "unmatched", "418")
    assert request_labels("PROPFIND", "/", 299) == ("other", "/", "2xx")
    assert request_labels("DELETE", "/api/v1/tokens/<name>", 599) == (
        "DELETE", "/api/v1/tokens/<name>", "5xx",
    )  # fmt: skip
