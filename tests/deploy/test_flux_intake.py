"""Flux intake (bot/deploy/flux.py): the shipped Provider and Alert, parsing the events
notification-controller forwards (tests/samples/flux/SOURCES.md says where each comes from),
status mapping, what is ignored and what is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.deploy.flux import flux_revision, flux_status, helm_versions, parse_flux
from bot.deploy.intake import MESSAGE_LIMIT, Ignored, IntakeError, NotADeployment, Report

ROOT = Path(__file__).resolve().parents[2]
FLUX_ALERT = ROOT / "templates" / "flux" / "ritmo-alert.yaml"
SAMPLES = ROOT / "tests" / "samples" / "flux"
SHA = "9c1e0f7a3b5d2e4f6a8b0c1d3e5f7a9b1c3d5e7f"
# The fields of fluxcd/pkg apis/event/v1beta1 Event and corev1.ObjectReference.
EVENT_FIELDS = {
    "involvedObject", "severity", "timestamp", "message", "reason", "metadata",
    "reportingController", "reportingInstance",
}  # fmt: skip
OBJECT_FIELDS = {
    "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath",
}  # fmt: skip


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def flux_body(name: str = "kustomization-succeeded", **changes: Any) -> bytes:
    data = json.loads(sample(name))
    data.update(changes)
    return json.dumps(data).encode()


# ---------------------------------------------------------------------------------------
# The samples and the shipped Provider and Alert


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_sample_holds_only_what_flux_sends_and_says_where_it_comes_from(
    path: Path,
) -> None:
    event = json.loads(path.read_text())
    assert set(event) <= EVENT_FIELDS, set(event) - EVENT_FIELDS  # no "action"
    assert set(event["involvedObject"]) <= OBJECT_FIELDS
    for key, value in (event.get("metadata") or {}).items():
        assert isinstance(value, str)
        short = key.rpartition("/")[2]
        assert short not in ("token", "originRevision", "digest", "checksum"), key
    assert f"`{path.name}`" in (SAMPLES / "SOURCES.md").read_text()


def test_flux_provider_and_alert() -> None:
    provider, alert = list(YAML(typ="safe").load_all(FLUX_ALERT.read_text()))
    assert provider["apiVersion"] == "notification.toolkit.fluxcd.io/v1beta3"
    assert provider["kind"] == "Provider"
    assert provider["spec"]["type"] == "generic-hmac"
    assert provider["spec"]["address"] == "https://ritmo.example.com/webhooks/flux"
    secret = provider["spec"]["secretRef"]["name"]
    assert alert["apiVersion"] == "notification.toolkit.fluxcd.io/v1beta3"
    assert alert["kind"] == "Alert"
    assert alert["spec"]["providerRef"]["name"] == provider["metadata"]["name"]
    assert alert["spec"]["eventSeverity"] == "info"
    assert alert["spec"]["eventSources"] == [
        {"kind": "Kustomization", "name": "*"},
        {"kind": "HelmRelease", "name": "*"},
    ]
    assert provider["metadata"]["namespace"] == alert["metadata"]["namespace"]
    # The generic-hmac key is the Secret's `token`.
    assert f"create secret generic {secret}" in FLUX_ALERT.read_text()
    assert "--from-literal=token=" in FLUX_ALERT.read_text()
    assert "1.8.4" in FLUX_ALERT.read_text()  # the minimum notification-controller


# ---------------------------------------------------------------------------------------
# parse_flux


def test_parse_flux_documented_event() -> None:
    """The generic webhook example of notification-controller's providers.md (prefixed key,
    pre-2.0 revision): still read."""
    assert parse_flux(sample("kustomization-validation-failed")) == Report(
        source="flux",
        name="webapp",
        revision="731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
        trigger="ValidationFailed",
        status="failed",
        message="service/apps/webapp validation error: spec.type: Unsupported value: Ingress",
        log_url=None,
        namespace="apps",
        instance="7d0cdc51-ddcf-4743-b223-83ca5c699632",
    )


@pytest.mark.parametrize(
    ("name", "status", "revision"),
    [
        ("kustomization-succeeded", "succeeded", "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"),
        ("kustomization-health-failed", "degraded", "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"),
        ("kustomization-progressing", "progressing", "e7c17dd8b8384bbc84b7e7385394cb7f48332b2d"),
        ("kustomization-validation-failed", "failed", "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"),
    ],
)
def test_kustomization_samples(name: str, status: str, revision: str) -> None:
    report = parse_flux(sample(name))
    event = json.loads(sample(name))
    assert report.source == "flux"
    assert (report.status, report.revision, report.versions) == (status, revision, ())
    assert report.trigger == event["reason"]
    assert report.name == event["involvedObject"]["name"]
    assert report.namespace == event["involvedObject"]["namespace"]
    assert report.instance == event["involvedObject"]["uid"]
    assert report.log_url is None


@pytest.mark.parametrize(
    ("name", "status", "versions"),
    [
        ("helmrelease-upgrade-succeeded", "succeeded", ("1.4.2",)),
        ("helmrelease-install-failed", "failed", ("1.4.3",)),
        ("helmrelease-oci-install-succeeded", "succeeded", ("6.5.4",)),
    ],
)
def test_helmrelease_samples_name_versions_not_a_commit(
    name: str, status: str, versions: tuple[str, ...]
) -> None:
    """helm-controller sends the chart version as `revision` and the chart's `app-version`;
    every real HelmRelease event was a 422 "no git commit sha"."""
    report = parse_flux(sample(name))
    assert (report.status, report.revision, report.versions) == (status, "", versions)


def test_helm_versions_chart_then_app_version() -> None:
    metadata = {"revision": "0.3.1", "app-version": "1.4.2", "oci-digest": "sha256:" + "a" * 64}
    assert helm_versions(metadata) == ("0.3.1", "1.4.2")
    assert parse_flux(flux_body("helmrelease-upgrade-succeeded", metadata=metadata)).versions == (
        "0.3.1",
        "1.4.2",
    )
    # As a controller posts it, before notification-controller strips the group prefix.
    prefixed = {f"helm.toolkit.fluxcd.io/{k}": v for k, v in metadata.items()}
    assert parse_flux(flux_body("helmrelease-upgrade-succeeded", metadata=prefixed)).versions == (
        "0.3.1",
        "1.4.2",
    )


@pytest.mark.parametrize("metadata", [None, {}, {"oci-digest": "sha256:" + "b" * 64}])
def test_a_helmrelease_event_without_versions_is_ignored(metadata: Any) -> None:
    """helm-controller's controller-level events (DependencyNotReady, ValuesError,
    ArtifactFailed) carry no metadata."""
    with pytest.raises(Ignored) as raised:
        parse_flux(flux_body("helmrelease-upgrade-succeeded", metadata=metadata))
    assert raised.value.reason == "no-revision"


def test_flux_multiline_message_becomes_one_line() -> None:
    report = parse_flux(sample("kustomization-progressing"))
    assert report.message == "Deployment/web/web configured HorizontalPodAutoscaler/web/web created"


@pytest.mark.parametrize(
    ("severity", "reason", "status"),
    [
        ("error", "HealthCheckFailed", "degraded"),
        ("error", "ReconciliationFailed", "failed"),
        ("error", "ValidationFailed", "failed"),
        ("error", "InstallFailed", "failed"),
        ("error", "UpgradeFailed", "failed"),
        ("error", "TestFailed", "failed"),
        ("error", "ReconciliationSucceeded", "failed"),
        ("info", "ReconciliationSucceeded", "succeeded"),
        ("info", "InstallSucceeded", "succeeded"),
        ("info", "UpgradeSucceeded", "succeeded"),
        ("info", "TestSucceeded", "succeeded"),
        ("info", "Progressing", "progressing"),
        ("info", "DependencyNotReady", "progressing"),
        ("info", "RollbackSucceeded", "progressing"),
        ("info", "HealthCheckFailed", "progressing"),
        ("trace", "Progressing", "progressing"),
    ],
)
def test_flux_status_mapping(severity: str, reason: str, status: str) -> None:
    assert flux_status(severity, reason) == status
    assert parse_flux(flux_body(severity=severity, reason=reason)).status == status


@pytest.mark.parametrize(
    ("metadata", "sha"),
    [
        ({"revision": f"main@sha1:{SHA}"}, SHA),
        ({"revision": f"refs/heads/release/1.x@sha1:{SHA}"}, SHA),
        ({"revision": f"v1.4.2@sha1:{SHA}"}, SHA),
        ({"revision": f"main/{SHA}"}, SHA),
        ({"revision": f"feature/x/{SHA}"}, SHA),
        ({"revision": f"sha1:{SHA}"}, SHA),
        ({"revision": SHA}, SHA),
        ({"revision": SHA.upper()}, SHA),
        ({"commit_status": "update", "revision": f"main@sha1:{SHA}"}, SHA),
        ({"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}"}, SHA),
        # An OCI artifact that records the commit it was built from.
        ({"revision": "latest@sha256:" + "c" * 64, "originRevision": f"main@sha1:{SHA}"}, SHA),
        # Flux's own order: commit, then originRevision, then revision.
        ({"revision": f"main@sha1:{'a' * 40}", "originRevision": f"main@sha1:{SHA}"}, SHA),
        ({"commit": SHA, "revision": f"main@sha1:{'a' * 40}"}, SHA),
        ({"originRevision": "latest@sha256:" + "b" * 64, "revision": f"main@sha1:{SHA}"}, SHA),
    ],
)
def test_flux_revision_forms(metadata: dict[str, str], sha: str) -> None:
    assert flux_revision(metadata) == sha
    assert parse_flux(flux_body(metadata=metadata)).revision == sha


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"revision": "latest@sha256:" + "c" * 64},
        {"revision": f"main@sha1:{SHA[:12]}"},
        {"revision": f"main@sha1:{SHA}0"},
        {"revision": f"main@sha256:{SHA}"},
        {"digest": f"sha1:{SHA}"},
    ],
)
def test_a_kustomization_event_without_a_commit_is_ignored(metadata: Any) -> None:
    """A Kustomization of an OCI artifact with no origin, or an event before the source
    resolved: authentic, and nothing Ritmo can place (202, not 422)."""
    with pytest.raises(Ignored) as raised:
        parse_flux(flux_body(metadata=metadata))
    assert raised.value.reason == "no-revision"
    assert "no git commit sha" in raised.value.message


def test_the_oci_sample_is_ignored_naming_what_it_saw() -> None:
    with pytest.raises(Ignored, match=r"revision='latest@sha256:3b6c") as raised:
        parse_flux(sample("kustomization-oci-succeeded"))
    assert raised.value.reason == "no-revision"


@pytest.mark.parametrize("kind", ["GitRepository", "HelmChart", "OCIRepository", "Bucket", "x"])
def test_flux_other_kinds_are_not_deployments(kind: str) -> None:
    event = json.loads(sample("gitrepository-new-artifact"))
    event["involvedObject"]["kind"] = kind
    with pytest.raises(NotADeployment) as raised:
        parse_flux(json.dumps(event).encode())
    assert raised.value.field == "involvedObject.kind"
    assert raised.value.reason == "not-a-deployment"
    assert not isinstance(raised.value, IntakeError)  # answered 202, not 422


def test_flux_gitrepository_sample_is_not_a_deployment() -> None:
    with pytest.raises(NotADeployment, match="Kustomization and HelmRelease"):
        parse_flux(sample("gitrepository-new-artifact"))


def involved(**changes: Any) -> dict[str, Any]:
    obj = json.loads(sample("kustomization-succeeded"))["involvedObject"]
    for key, value in changes.items():
        if value is None:
            obj.pop(key)
        else:
            obj[key] = value
    return dict(obj)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"null", "body"),
        (b"\xc3\x28", "body"),
        (flux_body(involvedObject=None), "involvedObject"),
        (flux_body(involvedObject="Kustomization/web"), "involvedObject"),
        (flux_body(involvedObject=involved(kind=None)), "involvedObject.kind"),
        (flux_body(involvedObject=involved(name=None)), "involvedObject.name"),
        (flux_body(involvedObject=involved(name="")), "involvedObject.name"),
        (flux_body(involvedObject=involved(name="Web_App")), "involvedObject.name"),
        (flux_body(involvedObject=involved(name="w" * 300)), "involvedObject.name"),
        (flux_body(involvedObject=involved(namespace="flux system")), "involvedObject.namespace"),
        (flux_body(involvedObject=involved(uid="a b")), "involvedObject.uid"),
        (flux_body(involvedObject=involved(uid="u" * 65)), "involvedObject.uid"),
        (flux_body(severity="warning"), "severity"),
        (flux_body(severity=None), "severity"),
        (flux_body(reason=None), "reason"),
        (flux_body(reason=""), "reason"),
        (flux_body(reason="Reconciliation Succeeded"), "reason"),
        (flux_body(reason="R" * 200), "reason"),
        (flux_body(metadata="main@sha1:" + SHA), "metadata"),
        (flux_body(metadata={"revision": ["main", SHA]}), "metadata"),
        (flux_body(metadata={"revision": "m" * 600 + SHA}), "metadata.revision"),
        (flux_body(message=12), "message"),
    ],
)
def test_flux_rejections(body: bytes, field: str) -> None:
    """Bodies notification-controller never sends: the field and the fix, 422."""
    with pytest.raises(IntakeError) as raised:
        parse_flux(body)
    assert raised.value.field == field
    assert type(raised.value) is IntakeError


def test_flux_message_is_capped() -> None:
    report = parse_flux(flux_body(message="y" * 39_000))
    assert len(report.message) == MESSAGE_LIMIT


def test_the_readme_says_which_flux_objects_and_versions() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deployments and rollback", 1)[1].split("\n## ", 1)[0]
    assert "notification-controller 1.8.4 or later" in section
    assert "Kustomizations that apply the manifests repository" in section
    assert "ritmo_cd_ignored_total" in section
