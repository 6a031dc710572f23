"""Flux intake and authentication: the shipped Alert, parsing, status mapping, rejections,
signatures and tokens. ArgoCD's side is tests/deploy/test_argocd.py."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.deploy.intake import (
    MESSAGE_LIMIT,
    IntakeError,
    NotADeployment,
    Report,
    check_flux_signature,
    check_token,
    flux_revision,
    flux_status,
    parse_flux,
)

ROOT = Path(__file__).resolve().parents[2]
FLUX_ALERT = ROOT / "templates" / "flux" / "ritmo-alert.yaml"
SAMPLES = ROOT / "tests" / "samples"
FLUX_SAMPLES = SAMPLES / "flux"
SHA = "9c1e0f7a3b5d2e4f6a8b0c1d3e5f7a9b1c3d5e7f"


def sample(kind: str, name: str) -> bytes:
    return (SAMPLES / kind / f"{name}.json").read_bytes()


def flux_body(name: str = "kustomization-succeeded", **changes: Any) -> bytes:
    data = json.loads(sample("flux", name))
    data.update(changes)
    return json.dumps(data).encode()


def load_yaml(path: Path) -> list[Any]:
    return list(YAML(typ="safe").load_all(path.read_text()))


# ---------------------------------------------------------------------------------------
# The shipped Flux Provider and Alert


def test_flux_provider_and_alert() -> None:
    provider, alert = load_yaml(FLUX_ALERT)
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


# ---------------------------------------------------------------------------------------
# parse_flux


def test_parse_flux_documented_event() -> None:
    """The generic webhook Event from Flux's notification-controller docs."""
    assert parse_flux(sample("flux", "kustomization-validation-failed")) == Report(
        source="flux",
        name="webapp",
        revision="731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
        trigger="ValidationFailed",
        status="failed",
        message="service/apps/webapp validation error: spec.type: Unsupported value: Ingress",
        log_url=None,
        namespace="apps",
    )


@pytest.mark.parametrize(
    ("name", "status", "revision"),
    [
        ("kustomization-succeeded", "succeeded", "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"),
        ("kustomization-health-failed", "degraded", "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"),
        ("kustomization-progressing", "progressing", "e7c17dd8b8384bbc84b7e7385394cb7f48332b2d"),
        ("kustomization-validation-failed", "failed", "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"),
        ("helmrelease-upgrade-succeeded", "succeeded", "69b59063470310ebbd88a9156325322a124e55a3"),
        ("helmrelease-install-failed", "failed", "bd88a9156325322a124e55a369b59063470310eb"),
    ],
)
def test_flux_samples(name: str, status: str, revision: str) -> None:
    report = parse_flux(sample("flux", name))
    event = json.loads(sample("flux", name))
    assert report.source == "flux"
    assert (report.status, report.revision) == (status, revision)
    assert report.trigger == event["reason"]
    assert report.name == event["involvedObject"]["name"]
    assert report.namespace == event["involvedObject"]["namespace"]
    assert report.log_url is None


def test_flux_multiline_message_becomes_one_line() -> None:
    report = parse_flux(sample("flux", "kustomization-succeeded"))
    assert report.message == "Deployment/web/web configured Service/web/web unchanged"


@pytest.mark.parametrize(
    ("severity", "reason", "status"),
    [
        ("error", "HealthCheckFailed", "degraded"),
        ("error", "ReconciliationFailed", "failed"),
        ("error", "ValidationFailed", "failed"),
        ("error", "InstallFailed", "failed"),
        ("error", "UpgradeFailed", "failed"),
        ("error", "ReconciliationSucceeded", "failed"),
        ("info", "ReconciliationSucceeded", "succeeded"),
        ("info", "InstallSucceeded", "succeeded"),
        ("info", "UpgradeSucceeded", "succeeded"),
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
        ({"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}"}, SHA),
        ({"revision": "1.4.2", "originRevision": f"main@sha1:{SHA}"}, SHA),
        ({"helm.toolkit.fluxcd.io/originRevision": f"main@sha1:{SHA}"}, SHA),
        # Flux's own order: commit, then originRevision, then revision.
        ({"revision": f"main@sha1:{'a' * 40}", "originRevision": f"main@sha1:{SHA}"}, SHA),
        ({"commit": SHA, "revision": f"main@sha1:{'a' * 40}"}, SHA),
        # An origin revision that is not a commit falls through to the revision.
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
        {"revision": "6.5.4", "token": "9d1c7a3e"},
        {"revision": "latest@sha256:" + "c" * 64},
        {"revision": f"main@sha1:{SHA[:12]}"},
        {"revision": f"main@sha1:{SHA}0"},
        {"revision": f"main@sha256:{SHA}"},
        {"digest": f"sha1:{SHA}"},
        {"revision": ["main", SHA]},
        {"revision": "m" * 600 + SHA},
    ],
)
def test_flux_without_a_commit_is_rejected_on_metadata_revision(
    metadata: dict[str, Any] | None,
) -> None:
    with pytest.raises(IntakeError) as raised:
        parse_flux(flux_body(metadata=metadata))
    assert raised.value.field == "metadata.revision"
    assert not isinstance(raised.value, NotADeployment)


def test_flux_chart_version_only_names_the_fix() -> None:
    with pytest.raises(IntakeError, match=r"no git commit sha.*revision='6\.5\.4'.*GitRepository"):
        parse_flux(sample("flux", "helmrelease-chart-version-only"))


@pytest.mark.parametrize("kind", ["GitRepository", "HelmChart", "OCIRepository", "Bucket", "x"])
def test_flux_other_kinds_are_not_deployments(kind: str) -> None:
    event = json.loads(sample("flux", "gitrepository-new-artifact"))
    event["involvedObject"]["kind"] = kind
    with pytest.raises(NotADeployment) as raised:
        parse_flux(json.dumps(event).encode())
    assert raised.value.field == "involvedObject.kind"
    assert isinstance(raised.value, IntakeError)


def test_flux_gitrepository_sample_is_not_a_deployment() -> None:
    with pytest.raises(NotADeployment, match="Kustomization and HelmRelease"):
        parse_flux(sample("flux", "gitrepository-new-artifact"))


def involved(**changes: Any) -> dict[str, Any]:
    obj = json.loads(sample("flux", "kustomization-succeeded"))["involvedObject"]
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
        (flux_body(severity="warning"), "severity"),
        (flux_body(severity=None), "severity"),
        (flux_body(reason=None), "reason"),
        (flux_body(reason=""), "reason"),
        (flux_body(reason="Reconciliation Succeeded"), "reason"),
        (flux_body(reason="R" * 200), "reason"),
        (flux_body(metadata="main@sha1:" + SHA), "metadata"),
        (flux_body(message=12), "message"),
    ],
)
def test_flux_rejections(body: bytes, field: str) -> None:
    with pytest.raises(IntakeError) as raised:
        parse_flux(body)
    assert raised.value.field == field
    assert type(raised.value) is IntakeError


def test_flux_message_is_capped() -> None:
    report = parse_flux(flux_body(message="y" * 39_000))
    assert len(report.message) == MESSAGE_LIMIT


# ---------------------------------------------------------------------------------------
# Authentication


SECRET = "s3cr3t-hmac-key"


def signature(body: bytes, algorithm: str = "sha256", key: str = SECRET) -> str:
    return f"{algorithm}=" + hmac.new(key.encode(), body, getattr(hashlib, algorithm)).hexdigest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha224", "sha256", "sha384", "sha512"])
def test_flux_signature_right(algorithm: str) -> None:
    body = sample("flux", "kustomization-succeeded")
    assert check_flux_signature(body, signature(body, algorithm), SECRET)


def test_flux_signature_tolerates_case_and_blanks() -> None:
    body = sample("flux", "kustomization-succeeded")
    algorithm, _, digest = signature(body).partition("=")
    assert check_flux_signature(body, f" {algorithm.upper()}={digest.upper()} ", SECRET)


def test_flux_signature_is_over_the_raw_body() -> None:
    body = sample("flux", "kustomization-succeeded")
    reformatted = json.dumps(json.loads(body)).encode()
    assert not check_flux_signature(reformatted, signature(body), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256",
        "=abc",
        "md5=d41d8cd98f00b204e9800998ecf8427e",  # a prefix Flux never sends
        "sha256:{digest}",  # wrong separator
        "sha512={digest}",  # right digest, wrong prefix
        "sha256={digest}00",
        "sha256={short}",  # one hex digit missing
        "sha256=zz{digest}",
        "sha256={wrong}",  # signed with another key
        "sha256={digest}, sha256={digest}",
    ],
)
def test_flux_signature_wrong_or_missing(header: str | None) -> None:
    body = sample("flux", "kustomization-succeeded")
    digest = signature(body).partition("=")[2]
    wrong = signature(body, key="another-key").partition("=")[2]
    if header is not None:
        header = header.format(digest=digest, wrong=wrong, short=digest[:-1])
    assert not check_flux_signature(body, header, SECRET)


def test_flux_signature_needs_a_secret() -> None:
    body = b"{}"
    assert not check_flux_signature(body, signature(body, key=""), "")


def test_flux_signature_non_ascii_header() -> None:
    assert not check_flux_signature(b"{}", "sha256=é" * 10, SECRET)


@pytest.mark.parametrize(
    ("given", "expected", "ok"),
    [
        ("tok-123", "tok-123", True),
        ("tok-124", "tok-123", False),
        ("tok-12", "tok-123", False),
        ("", "tok-123", False),
        (None, "tok-123", False),
        ("", "", False),  # no token configured never matches
        (None, "", False),
        ("tøken", "tøken", True),
        ("tøken", "token", False),
    ],
)
def test_check_token(given: str | None, expected: str, ok: bool) -> None:
    assert check_token(given, expected) is ok


def test_check_token_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("bot.deploy.intake.hmac.compare_digest", spy)
    assert check_token("abc", "abc")
    assert check_flux_signature(b"{}", signature(b"{}"), SECRET)
    assert len(calls) == 2
