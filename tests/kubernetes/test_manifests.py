"""templates/kubernetes/: every kustomization renders with `kubectl kustomize`, every object
it renders is valid against the Kubernetes schemas (kubernetes-validate, strict: an unknown
field fails), and what Ritmo reads from them (config.yaml, RITMO_* variables) are settings
Ritmo knows."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[2] / "templates" / "kubernetes"
# The oldest Kubernetes minor still supported upstream, and the newest the schemas know.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def kustomizations() -> list[str]:
    """Every directory kubectl can render (components are rendered through an overlay)."""
    found = []
    for file in sorted(ROOT.rglob("kustomization.yaml")):
        if YAML(typ="safe").load(file.read_text())["kind"] == "Kustomization":
            found.append(str(file.parent.relative_to(ROOT)))
    return found


def render(kubectl: str, directory: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl, "kustomize", str(ROOT / directory)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in YAML(typ="safe").load_all(proc.stdout) if doc]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds  # one of each here
    return {o["kind"]: o for o in objects}


def test_every_overlay_is_covered() -> None:
    assert kustomizations() == ["argocd", "base", "overlays/monitored", "overlays/postgresql"]
    components = sorted(p.parent.name for p in (ROOT / "components").glob("*/kustomization.yaml"))
    assert components == ["servicemonitor"]


# Custom resources: their CRDs are not in kubernetes-validate's schemas, and their upstream
# CRD files are not ours to ship. These check the fields we set against the CRDs' shapes
# (prometheus-operator's monitoring.coreos.com/v1 ServiceMonitor, ArgoCD's
# argoproj.io/v1alpha1 Application): required fields, types, and no field they lack.
def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


_STR = {"type": "string", "minLength": 1}
_METADATA = _obj(
    {"name": _STR, "namespace": _STR, "labels": {"type": "object"},
     "finalizers": {"type": "array", "items": _STR}},
    ["name"],
)  # fmt: skip
CUSTOM_RESOURCES: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _obj(
        {
            "apiVersion": _STR,
            "kind": _STR,
            "metadata": _METADATA,
            "spec": _obj(
                {
                    "selector": _obj({"matchLabels": {"type": "object", "minProperties": 1}}),
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": _obj(
                            {
                                "port": _STR,
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"},
                            }
                        ),
                    },
                },
                ["selector", "endpoints"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),  # fmt: skip
    ("argoproj.io/v1alpha1", "Application"): _obj(
        {
            "apiVersion": _STR,
            "kind": _STR,
            "metadata": _METADATA,
            "spec": _obj(
                {
                    "project": _STR,
                    "source": _obj(
                        {"repoURL": _STR, "targetRevision": _STR, "path": _STR}, ["repoURL"]
                    ),
                    "destination": _obj({"server": _STR, "namespace": _STR}),
                    "syncPolicy": _obj(
                        {
                            "automated": _obj(
                                {"prune": {"type": "boolean"}, "selfHeal": {"type": "boolean"}}
                            ),
                            "syncOptions": {"type": "array", "items": _STR},
                        }
                    ),
                },
                ["project", "source", "destination"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),  # fmt: skip
}


def validate(obj: dict[str, Any]) -> None:
    custom = CUSTOM_RESOURCES.get((obj["apiVersion"], obj["kind"]))
    if custom is not None:
        jsonschema.validate(obj, custom)
        return
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("directory", kustomizations())
def test_renders_and_every_object_is_valid(kubectl: str, directory: str) -> None:
    objects = render(kubectl, directory)
    assert objects
    for obj in objects:
        validate(obj)


def test_an_unknown_field_is_refused() -> None:
    """The validation above is strict, for core and custom kinds alike."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ritmo"},
               "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selectr": {}}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(service)
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "ritmo"},
               "spec": {"selector": {"matchLabels": {"a": "b"}},
                        "endpoints": [{"port": "http", "scrapeInterval": "30s"}]}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    return spec


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    (ritmo,) = [c for c in pod["containers"] if c["name"] == "ritmo"]
    return ritmo


@pytest.fixture(scope="module")
def base(kubectl: str) -> list[dict[str, Any]]:
    return render(kubectl, "base")


def test_base_runs_one_hardened_pod_with_probes(base: list[dict[str, Any]]) -> None:
    objects = by_kind(base)
    assert set(objects) == {
        "Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment",
        "PersistentVolumeClaim",
    }  # fmt: skip
    assert objects["Deployment"]["spec"]["replicas"] == 1
    pod = _pod(base)
    ritmo = _container(pod)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["enableServiceLinks"] is False  # no RITMO_PORT & co. from the Service
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
    assert ritmo["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert ritmo["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ritmo["image"] == "registry.example.com/platform/ritmo:0.1.0"
    service = objects["Service"]["spec"]
    assert service["ports"][0]["targetPort"] == ritmo["ports"][0]["name"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes["data"]["persistentVolumeClaim"]["claimName"]
        == (objects["PersistentVolumeClaim"]["metadata"]["name"])
    )
    assert volumes["config"]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert volumes["signing-key"]["secret"]["secretName"] == "ritmo-signing-key"
    assert volumes["github-app"]["secret"]["secretName"] == "ritmo-github-app"
    # What is written, is written to a volume: the root filesystem is read-only.
    mounts = {m["mountPath"] for m in ritmo["volumeMounts"]}
    assert {"/var/lib/ritmo", "/tmp", "/run/ritmo"} <= mounts


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _settings_files(tmp_path: Path, objects: list[dict[str, Any]]) -> Iterator[Path]:
    for name, text in by_kind(objects)["ConfigMap"]["data"].items():
        path = tmp_path / name
        path.write_text(text)
        yield path


@pytest.mark.parametrize("directory", ["base", "overlays/postgresql"])
def test_ritmo_accepts_the_settings_it_is_given(
    kubectl: str, directory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.yaml from the ConfigMap, and every RITMO_* variable (secrets stood in for by
    dummy values), load as Ritmo's settings: a misspelt key would stop the pod."""
    objects = render(kubectl, directory)
    ritmo = _container(_pod(objects))
    env = _env(ritmo)
    (config,) = _settings_files(tmp_path, objects)
    assert env["RITMO_CONFIG"]["value"] == f"/etc/ritmo/config/{config.name}"
    for name in list(os.environ):
        if name.startswith("RITMO_"):
            monkeypatch.delenv(name)
    variables = [n for n in env if n.startswith("RITMO_") and n != "RITMO_CONFIG"]
    for name in variables:
        value = env[name].get("value", "postgresql+psycopg://ritmo@db/ritmo"
                              if name == "RITMO_DATABASE_URL" else "x" * 32)  # fmt: skip
        monkeypatch.setenv(name, value)
    settings = load_settings(config)
    assert str(settings.data_dir) == "/var/lib/ritmo"
    assert settings.signing.gnupghome == Path("/run/ritmo/gnupg")
    assert settings.forge.github.private_key_file == Path("/etc/ritmo/github-app/private-key.pem")
    assert settings.cd.argocd_token == settings.cd.flux_secret == "x" * 32
    assert settings.forge.github.webhook_secret == settings.manifests.token == "x" * 32
    if directory == "overlays/postgresql":
        assert settings.database_url is not None
    # The secrets come from Secrets, never from the ConfigMap.
    for secret in ("token", "webhook_secret", "argocd_token", "flux_secret", "private_key:"):
        assert secret not in config.read_text()
    for name in variables:
        assert "secretKeyRef" in env[name]["valueFrom"], name


def test_postgresql_overlay_runs_replicas_without_the_volume(kubectl: str) -> None:
    objects = render(kubectl, "overlays/postgresql")
    kinds = by_kind(objects)
    assert "PersistentVolumeClaim" not in kinds
    assert kinds["Deployment"]["spec"]["replicas"] >= 2
    assert kinds["Deployment"]["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = _pod(objects)
    data = {v["name"]: v for v in pod["volumes"]}["data"]
    assert set(data) == {"name", "emptyDir"}  # mirrors only: the index is in PostgreSQL
    url = _env(_container(pod))["RITMO_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert url == {"name": "ritmo-database", "key": "url"}
    assert "optional" not in url  # no database, no start: never SQLite behind replicas
    selector = kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    template_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()


def test_monitored_overlay_scrapes_the_service(kubectl: str) -> None:
    kinds = by_kind(render(kubectl, "overlays/monitored"))
    monitor = kinds["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= (
        kinds["Service"]["metadata"]["labels"].items()
    )
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in kinds["Service"]["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"
    assert (
        kinds["ServiceMonitor"]["metadata"]["namespace"]
        == kinds["Service"]["metadata"]["namespace"]
    )


def test_argocd_application_deploys_an_overlay_of_these_manifests(kubectl: str) -> None:
    (app,) = render(kubectl, "argocd")
    path = app["spec"]["source"]["path"]
    overlay = path.split("templates/kubernetes/", 1)[1]
    assert overlay in kustomizations()
    assert app["spec"]["destination"]["namespace"] == "ritmo"
