"""The shipped ArgoCD ConfigMap run the way ArgoCD runs it, and the bodies it renders sent
to a live Ritmo.

The ConfigMap is run by tests/cd_render (Go text/template + sprig, triggers through expr,
as notifications-engine does), built once per session from Debian's packages: golang-go,
golang-github-masterminds-sprig-dev, golang-github-antonmedv-expr-dev (.ci/run installs
them). A missing `go` fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from ruamel.yaml import YAML

from bot.deploy.argocd import ARGOCD_TRIGGERS, parse_argocd
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, remote_refs

ROOT = Path(__file__).resolve().parents[2]
ARGOCD_CM = ROOT / "templates" / "argocd" / "argocd-notifications-cm.yaml"
RENDERER = ROOT / "tests" / "cd_render"
APPLICATIONS = RENDERER / "applications"
SAMPLES = ROOT / "tests" / "samples" / "argocd"
ARGOCD_URL = "https://argocd.example.com"
ARGOCD_TOKEN = "argocd-shared-token-0123456789"
MANIFESTS = "a" * 40  # in tests/cd_render/applications: the manifests repository's tip
# The on-deployed condition of argo-cd's notifications catalog since v3.0 (#21944, #22203),
# notifications_catalog/triggers/on-deployed.yaml.
CATALOG_ON_DEPLOYED = (
    "app.status.operationState != nil and app.status.operationState.phase in ['Succeeded'] "
    "and app.status.health.status == 'Healthy' and "
    "(!time.Parse(app.status.health.lastTransitionTime).Add(1 * time.Minute)"
    ".Before(time.Parse(app.status.operationState.finishedAt)) or "
    "time.Parse(app.status.health.lastTransitionTime)"
    ".Before(time.Parse(app.status.operationState.startedAt)))"
)


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def argocd_cm() -> dict[str, Any]:
    (cm,) = YAML(typ="safe").load_all(ARGOCD_CM.read_text())
    data: dict[str, Any] = cm["data"]
    return data


def application(case: str, revision: str = MANIFESTS) -> dict[str, Any]:
    text = (APPLICATIONS / f"{case}.json").read_text()
    app: dict[str, Any] = json.loads(text.replace(MANIFESTS, revision))
    return app


# ---------------------------------------------------------------------------------------
# The Go renderer


@pytest.fixture(scope="session")
def cd_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/cd_render built once: GOPATH mode on Debian's /usr/share/gocode, no network."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "go is not installed: apt-get install golang-go golang-github-masterminds-sprig-dev "
            "golang-github-antonmedv-expr-dev (.ci/run does)"
        )
    out = tmp_path_factory.mktemp("cd_render") / "cd_render"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": "/usr/share/gocode",
        "GOFLAGS": "",
        "GOPROXY": "off",
    }
    if not any(os.environ.get(v) for v in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(out.parent / "cache")  # else Go's own cache: a warm build is fast
    built = subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=RENDERER, env=env, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    return out


def run_configmap(
    binary: Path, app: dict[str, Any], data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What ArgoCD would send for `app`: {"fired": [{trigger, oncePer, template, body}],
    "errors": [...]} for every trigger of the ConfigMap's `data`."""
    data = argocd_cm() if data is None else data
    yaml = YAML(typ="safe")
    triggers = {k.removeprefix("trigger."): yaml.load(v) for k, v in data.items()
                if k.startswith("trigger.")}  # fmt: skip
    templates = {}
    for key, value in data.items():
        if key.startswith("template."):
            webhook = yaml.load(value)["webhook"]["ritmo"]
            assert webhook["method"] == "POST"
            templates[key.removeprefix("template.")] = webhook["body"]
    given = {
        "triggers": triggers,
        "templates": templates,
        "context": yaml.load(data["context"]),
        "app": app,
    }
    ran = subprocess.run(
        [str(binary)], input=json.dumps(given), capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(ran.stdout)
    return result


def bodies(binary: Path, app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """trigger -> the JSON body it sends; no trigger may fail to evaluate or render."""
    result = run_configmap(binary, app)
    assert result["errors"] == []
    out = {}
    for fired in result["fired"]:
        assert fired["template"] == f"ritmo-{fired['trigger']}"
        out[fired["trigger"]] = json.loads(fired["body"])
    return out


# ---------------------------------------------------------------------------------------
# The shipped ConfigMap


def test_argocd_configmap_is_a_ready_notifications_configmap() -> None:
    (cm,) = YAML(typ="safe").load_all(ARGOCD_CM.read_text())
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "argocd-notifications-cm"
    data = cm["data"]
    service = YAML(typ="safe").load(data["service.webhook.ritmo"])
    assert service["url"] == "https://ritmo.example.com/webhooks/argocd"
    headers = {h["name"]: h["value"] for h in service["headers"]}
    assert headers == {"Content-Type": "application/json", "X-Ritmo-Token": "$ritmo-token"}
    assert YAML(typ="safe").load(data["context"]) == {"argocdUrl": "https://argocd.example.com"}
    assert "kubectl -n argocd patch secret argocd-notifications-secret" in ARGOCD_CM.read_text()


def test_every_trigger_sends_its_template_to_labelled_apps_only() -> None:
    data = argocd_cm()
    triggers = {k.removeprefix("trigger."): v for k, v in data.items() if k.startswith("trigger.")}
    assert set(triggers) == set(ARGOCD_TRIGGERS)
    for name, text in triggers.items():
        (condition,) = YAML(typ="safe").load(text)
        assert condition["send"] == [f"ritmo-{name}"]
        assert condition["oncePer"] == "app.status.operationState?.syncResult?.revision"
    (subscription,) = YAML(typ="safe").load(data["subscriptions"])
    assert subscription["recipients"] == ["ritmo"]
    assert set(subscription["triggers"]) == set(ARGOCD_TRIGGERS)
    # Only Ritmo's Applications: cert-manager's syncs would otherwise reach Ritmo too.
    assert subscription["selector"] == "ritmo.dev/managed=true"
    assert "kubectl -n argocd label application" in ARGOCD_CM.read_text()


def test_the_fixtures_are_apps_the_subscription_selects() -> None:
    """notifications-engine matches `selector` as a Kubernetes label selector; the shipped
    one is a single key=value, which every Application the Go tests run carries."""
    (subscription,) = YAML(typ="safe").load(argocd_cm()["subscriptions"])
    key, _, value = subscription["selector"].partition("=")
    for path in sorted(APPLICATIONS.glob("*.json")):
        labels = json.loads(path.read_text())["metadata"].get("labels", {})
        assert labels.get(key) == value, path.name


def test_on_deployed_is_the_current_catalog_condition() -> None:
    (condition,) = YAML(typ="safe").load(argocd_cm()["trigger.on-deployed"])
    assert " ".join(str(condition["when"]).split()) == CATALOG_ON_DEPLOYED


def test_the_catalog_condition_runs_under_debians_expr(cd_render: Path) -> None:
    """The harness's only rewrite for expr 1.8.9 (`1 * time.Minute`) keeps the meaning: the
    grace minute still separates a health set just before the sync finished from one set
    well before it."""
    app = application("single-source")  # a sync from 10:05:00 to 10:08:00
    app["status"]["operationState"]["finishedAt"] = "2026-12-03T10:08:00Z"
    app["status"]["health"]["lastTransitionTime"] = "2026-12-03T10:07:30Z"  # 30 s before end
    assert "on-deployed" in bodies(cd_render, app)
    app["status"]["health"]["lastTransitionTime"] = "2026-12-03T10:05:30Z"  # mid-sync
    assert "on-deployed" not in bodies(cd_render, app)
    del app["status"]["health"]["lastTransitionTime"]  # ArgoCD before 2.14: never fires
    result = run_configmap(cd_render, app)
    assert "on-deployed" not in {f["trigger"] for f in result["fired"]}
    assert any(e.startswith("on-deployed: when:") for e in result["errors"])


# (case, {trigger: (revision the body names, revisions)}); MANIFESTS is the synced tip
RENDERED = [
    ("single-source", {"on-sync-succeeded": (MANIFESTS, []), "on-deployed": (MANIFESTS, [])}),
    ("unchanged-health", {"on-sync-succeeded": (MANIFESTS, []), "on-deployed": (MANIFESTS, [])}),
    (
        "multi-source",
        {
            "on-sync-succeeded": (
                MANIFESTS,
                [MANIFESTS, "5e2b8c1d7f3a9e4b6c0d2f8a1e3b5c7d9f0a2b4c"],
            ),
            "on-deployed": (MANIFESTS, [MANIFESTS, "5e2b8c1d7f3a9e4b6c0d2f8a1e3b5c7d9f0a2b4c"]),
        },
    ),
    (
        "helm-with-git-values",
        {
            "on-sync-succeeded": ("", ["18.2.1", MANIFESTS]),
            "on-deployed": ("", ["18.2.1", MANIFESTS]),
        },
    ),
    ("helm-chart-only", {"on-sync-succeeded": ("", []), "on-deployed": ("", [])}),
    ("failed-sync", {"on-sync-failed": (MANIFESTS, [])}),
    ("degraded", {"on-sync-succeeded": (MANIFESTS, []), "on-health-degraded": (MANIFESTS, [])}),
    ("recovered", {"on-sync-succeeded": (MANIFESTS, []), "on-deployed": (MANIFESTS, [])}),
]


@pytest.mark.parametrize(("case", "expected"), RENDERED, ids=[c for c, _ in RENDERED])
def test_what_each_application_sends(
    cd_render: Path, case: str, expected: dict[str, tuple[str, list[str]]]
) -> None:
    app = application(case)
    sent = bodies(cd_render, app)
    assert {t: (b["revision"], b["revisions"]) for t, b in sent.items()} == expected
    keys = set(json.loads(sample("on-deployed")))
    for trigger, body in sent.items():
        assert set(body) == keys  # the samples hold exactly what the templates send
        assert body["trigger"] == trigger and body["app"] == app["metadata"]["name"]
        assert body["namespace"] == "argocd"
        assert body["url"] == f"{ARGOCD_URL}/applications/{app['metadata']['name']}"
        operation = app["status"]["operationState"]
        assert (body["phase"], body["startedAt"]) == (operation["phase"], operation["startedAt"])
        health = app["status"]["health"]
        assert (body["health"], body["healthChangedAt"]) == (
            health["status"],
            health["lastTransitionTime"],
        )


def test_the_degraded_template_carries_the_health_message(cd_render: Path) -> None:
    sent = bodies(cd_render, application("degraded"))
    assert (
        sent["on-health-degraded"]["message"] == 'Deployment "web" exceeded its progress deadline'
    )
    assert sent["on-sync-succeeded"]["message"] == "successfully synced (all tasks run)"


def test_a_failed_sync_names_the_commit_not_the_branch(cd_render: Path) -> None:
    """CompareAppState failed: syncResult.revision is still the requested "main"."""
    app = application("failed-sync")
    assert app["status"]["operationState"]["syncResult"]["revision"] == "main"
    report = parse_argocd(json.dumps(bodies(cd_render, app)["on-sync-failed"]).encode())
    assert (report.revision, report.status) == (MANIFESTS, "failed")


def test_values_that_would_break_json_stay_json(cd_render: Path) -> None:
    hostile = 'quote " backslash \\ newline \n tab \t </script> {{ .x }}'
    app = application("degraded")
    app["status"]["operationState"]["message"] = hostile
    app["status"]["health"]["message"] = hostile
    for body in bodies(cd_render, app).values():
        assert body["message"] == hostile
        assert parse_argocd(json.dumps(body).encode()).status == "degraded"


def test_an_application_that_never_synced(cd_render: Path) -> None:
    app = application("degraded")
    del app["status"]["operationState"]
    sent = bodies(cd_render, app)
    assert set(sent) == {"on-health-degraded"}
    body = sent["on-health-degraded"]
    assert (body["revision"], body["phase"], body["startedAt"]) == (MANIFESTS, "", "")
    report = parse_argocd(json.dumps(body).encode())
    assert (report.revision, report.status) == (MANIFESTS, "degraded")


# ---------------------------------------------------------------------------------------
# The rendered bodies, sent to a live Ritmo


@pytest.fixture
def remote_policy() -> str:
    """Registration pins dev, so a sync of main's tip deploys a known artifact there."""
    return (
        'apps:\n  "*": {}\n'
        "environments:\n  - {name: dev, auto_promote: true}\n  - {name: staging}\n"
    )


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cd": {"argocd_token": ARGOCD_TOKEN}}


def _post(base: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/webhooks/argocd",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Ritmo-Token": ARGOCD_TOKEN},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _deployed_tip(client: FlaskClient, tokens: dict[str, str], remote: Path) -> str:
    """Registers web 1.0.0 (Ritmo pins it in dev) and returns the commit that pins it."""
    resp = client.post("/api/v1/artifacts", json=artifact_body(version="1.0.0"),
                       headers=bearer(tokens["ci"]))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    return remote_refs(remote)["refs/heads/main"]


def _status(runtime: Runtime, client: FlaskClient, tokens: dict[str, str]) -> list[str]:
    listed = client.get("/api/v1/deployments?app=web&env=dev", headers=bearer(tokens["reader"]))
    return [d["status"] for d in listed.get_json()["items"]]


# case -> the triggers sent, in order, each with the deployment's status after it
LIVE = [
    ("single-source", [("on-sync-succeeded", "succeeded"), ("on-deployed", "succeeded")]),
    # on-sync-succeeded alone must not claim success on a health from before the sync
    ("unchanged-health", [("on-sync-succeeded", "progressing"), ("on-deployed", "succeeded")]),
    ("multi-source", [("on-sync-succeeded", "succeeded"), ("on-deployed", "succeeded")]),
    ("helm-with-git-values", [("on-sync-succeeded", "succeeded"), ("on-deployed", "succeeded")]),
    ("failed-sync", [("on-sync-failed", "failed")]),
    ("degraded", [("on-sync-succeeded", "degraded"), ("on-health-degraded", "degraded")]),
]


@pytest.mark.parametrize(("case", "expected"), LIVE, ids=[c for c, _ in LIVE])
def test_live_ritmo_records_what_argocd_sends(
    cd_render: Path,
    live_server: str,
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    case: str,
    expected: list[tuple[str, str]],
) -> None:
    tip = _deployed_tip(client, tokens, remote)
    sent = bodies(cd_render, application(case, tip))
    assert set(sent) == {trigger for trigger, _ in expected}
    for trigger, status in expected:
        answer, body = _post(live_server, sent[trigger])
        assert answer in (200, 201), (trigger, body)  # recorded (200: nothing new to say)
        assert (trigger, body["status"], body["revision"]) == (trigger, status, tip)
        assert body["environment"] == "dev"
    assert _status(runtime, client, tokens) == [expected[-1][1]]


def test_live_ritmo_records_a_recovery(
    cd_render: Path,
    live_server: str,
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
) -> None:
    """Degraded, then healthy again on the same sync: on-deployed fires for that revision
    (it had not), and the deployment is a success."""
    tip = _deployed_tip(client, tokens, remote)
    degraded = bodies(cd_render, application("degraded", tip))["on-health-degraded"]
    assert _post(live_server, degraded)[0] == 201
    recovered = bodies(cd_render, application("recovered", tip))["on-deployed"]
    answer, body = _post(live_server, recovered)
    assert answer in (200, 201) and body["status"] == "succeeded", body
    assert _status(runtime, client, tokens) == ["succeeded"]


def test_live_ritmo_ignores_a_helm_chart_only_app(
    cd_render: Path, live_server: str, client: FlaskClient, tokens: dict[str, str], remote: Path
) -> None:
    """No commit anywhere: 202 with the reason (a 4xx would be an error in ArgoCD's logs on
    every sync, and the notification is marked sent anyway), nothing written."""
    _deployed_tip(client, tokens, remote)
    refs = remote_refs(remote)
    for body in bodies(cd_render, application("helm-chart-only")).values():
        answer, said = _post(live_server, body)
        assert answer == 202, said
        assert said["status"] == "ignored" and said["reason"] == "no-revision"
        assert "no 40-hex git commit" in said["message"]
    assert remote_refs(remote) == refs
