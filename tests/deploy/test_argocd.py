"""ArgoCD intake: parse_argocd on what Ritmo's templates send; status mapping, the
revision rules, rejections (4xx) and the bodies ignored with a reason (202).

What the shipped ConfigMap really sends is tests/deploy/test_argocd_render.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.argocd import argocd_status, parse_argocd
from bot.deploy.intake import MESSAGE_LIMIT, Ignored, IntakeError, NotADeployment, Report

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "argocd"
SHA = "9c1e0f7a3b5d2e4f6a8b0c1d3e5f7a9b1c3d5e7f"


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def argocd_body(**changes: Any) -> bytes:
    data = json.loads(sample("on-deployed"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_samples_are_documented_and_parse(path: Path) -> None:
    assert f"`{path.name}`" in (SAMPLES / "SOURCES.md").read_text()
    assert set(json.loads(path.read_text())) == set(json.loads(sample("on-deployed")))
    parse_argocd(path.read_bytes())


def test_parse_argocd_deployed() -> None:
    assert parse_argocd(sample("on-deployed")) == Report(
        source="argocd",
        name="web-production",
        revision=SHA,
        trigger="on-deployed",
        status="succeeded",
        message="successfully synced (all tasks run)",
        log_url="https://argocd.example.com/applications/web-production",
        namespace="argocd",
        instance="argocd.example.com",
    )


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("on-deployed", "succeeded"),
        ("on-deployed-multi-source", "succeeded"),
        ("on-sync-succeeded", "progressing"),  # synced, still rolling out
        ("on-sync-failed", "failed"),
        ("on-health-degraded", "degraded"),
        ("on-sync-running", "progressing"),
    ],
)
def test_argocd_samples_status(name: str, status: str) -> None:
    report = parse_argocd(sample(name))
    assert (report.source, report.trigger, report.status) == (
        "argocd",
        name.split("-multi")[0],
        status,
    )


def test_a_multi_source_revision_comes_from_revisions() -> None:
    assert parse_argocd(sample("on-deployed-multi-source")).revision == SHA
    body = argocd_body(revision="", revisions=["1.4.2", SHA.upper(), "f" * 40])
    assert parse_argocd(body).revision == SHA


@pytest.mark.parametrize(
    ("trigger", "phase", "health", "fresh", "status"),
    [
        # on-sync-failed, or a failed/errored operation
        ("on-sync-failed", "Failed", "Healthy", True, "failed"),
        ("on-sync-failed", "", "", False, "failed"),
        ("on-sync-succeeded", "Failed", "Healthy", True, "failed"),
        ("on-health-degraded", "Error", "Degraded", True, "failed"),
        # on-health-degraded, or health Degraded
        ("on-health-degraded", "Succeeded", "Healthy", True, "degraded"),
        ("on-health-degraded", "", "", False, "degraded"),
        ("on-sync-succeeded", "Succeeded", "Degraded", False, "degraded"),
        ("on-deployed", "Succeeded", "Degraded", True, "degraded"),
        # on-deployed, or a succeeded sync whose health changed after it started
        ("on-deployed", "Succeeded", "Healthy", False, "succeeded"),
        ("on-deployed", "", "", False, "succeeded"),
        ("on-sync-succeeded", "Succeeded", "Healthy", True, "succeeded"),
        # a Healthy from before the sync started is the previous version's (argo-cd #9070)
        ("on-sync-succeeded", "Succeeded", "Healthy", False, "progressing"),
        # on-sync-running, phase Running, health Progressing/Missing, anything unsettled
        ("on-sync-running", "Running", "Healthy", True, "progressing"),
        ("on-sync-running", "", "", False, "progressing"),
        ("on-sync-succeeded", "Running", "Healthy", True, "progressing"),
        ("on-sync-succeeded", "Succeeded", "Progressing", True, "progressing"),
        ("on-sync-succeeded", "Succeeded", "Missing", True, "progressing"),
        ("on-sync-succeeded", "Succeeded", "Suspended", True, "progressing"),
    ],
)
def test_argocd_status_mapping(
    trigger: str, phase: str, health: str, fresh: bool, status: str
) -> None:
    assert argocd_status(trigger, phase, health, health_since_sync=fresh) == status
    changed = "2026-12-03T10:06:10Z" if fresh else "2026-12-03T10:04:59Z"
    body = argocd_body(
        trigger=trigger, phase=phase, health=health, startedAt="2026-12-03T10:05:00Z",
        healthChangedAt=changed,
    )  # fmt: skip
    assert parse_argocd(body).status == status


@pytest.mark.parametrize(
    ("started", "changed"),
    [
        ("2026-12-03T10:05:00Z", "2026-12-03T10:05:00Z"),  # not newer
        ("2026-12-03T10:05:00Z", None),  # ArgoCD before 2.14, or a health never set
        (None, "2026-12-03T10:06:00Z"),
        ("", ""),
    ],
)
def test_success_needs_a_health_newer_than_the_sync(
    started: str | None, changed: str | None
) -> None:
    body = argocd_body(trigger="on-sync-succeeded", startedAt=started, healthChangedAt=changed)
    assert parse_argocd(body).status == "progressing"
    later = argocd_body(
        trigger="on-sync-succeeded",
        startedAt="2026-12-03T10:05:00+00:00",
        healthChangedAt="2026-12-03T11:05:00.5+01:00",  # 0.5 s later, another zone
    )
    assert parse_argocd(later).status == "succeeded"


def test_argocd_revision_is_lowercased() -> None:
    assert parse_argocd(argocd_body(revision=SHA.upper())).revision == SHA


def test_argocd_optional_fields() -> None:
    body = argocd_body(
        namespace=None, message=None, url=None, phase=None, revisions=None, startedAt=None,
        healthChangedAt=None,
    )  # fmt: skip
    report = parse_argocd(body)
    assert (report.namespace, report.message, report.log_url) == (None, "", None)
    assert report.status == "succeeded"


@pytest.mark.parametrize(
    "url",
    ["<no value>/applications/web-production", "javascript:alert(1)", "ftp://x/y", ""],
)
def test_argocd_link_that_is_not_http_is_dropped(url: str) -> None:
    assert parse_argocd(argocd_body(url=url)).log_url is None


def test_argocd_message_is_cleaned_and_capped() -> None:
    hostile = "line one\r\n\x1b[31mred\x1b[0m\x00 \u202eevil\u202c\ttab " + "x" * 5000
    report = parse_argocd(argocd_body(message=hostile))
    assert report.message.startswith("line one [31mred[0m evil tab x")
    assert len(report.message) == MESSAGE_LIMIT
    assert report.message.endswith("…")
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in report.message)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"", "body"),
        (b"\xff\xfe{}", "body"),
        (b"[1, 2]", "body"),
        (b'"string"', "body"),
        (b'{"app": NaN}', "body"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b"{" + b" " * 300_000 + b"}", "body"),
        (b'{"trigger": "on-deployed", "trigger": "on-sync-failed"}', "trigger"),
        (argocd_body(trigger="on-created"), "trigger"),
        (argocd_body(trigger=None), "trigger"),
        (argocd_body(trigger=["on-deployed"]), "trigger"),
        (argocd_body(app=None), "app"),
        (argocd_body(app=""), "app"),
        (argocd_body(app="Web Production"), "app"),
        (argocd_body(app="web/../../etc"), "app"),
        (argocd_body(app="a" * 254), "app"),
        (argocd_body(app=42), "app"),
        (argocd_body(namespace="Argo CD"), "namespace"),
        (argocd_body(namespace="n" * 64), "namespace"),
        (argocd_body(revision=42), "revision"),
        (argocd_body(revision="f" * 600), "revision"),
        (argocd_body(revisions="1.4.2"), "revisions"),
        (argocd_body(revisions=[SHA] * 65), "revisions"),
        (argocd_body(revision="", revisions=["1.4.2", 7]), "revisions[1]"),
        (argocd_body(revision="", revisions=["f" * 600]), "revisions[0]"),
        (argocd_body(phase="Succeeded; rm -rf"), "phase"),
        (argocd_body(health="h" * 200), "health"),
        (argocd_body(startedAt="yesterday"), "startedAt"),
        (argocd_body(healthChangedAt="2026-12-03T10:05:00"), "healthChangedAt"),
        (argocd_body(healthChangedAt=1764756300), "healthChangedAt"),
        (argocd_body(message=["not", "text"]), "message"),
        (argocd_body(url="https://" + "a" * 3000), "url"),
    ],
)
def test_argocd_rejections(body: bytes, field: str) -> None:
    with pytest.raises(IntakeError) as raised:
        parse_argocd(body)
    assert raised.value.field == field
    assert not isinstance(raised.value, NotADeployment)
    assert str(raised.value).startswith(f"{field}: ")
    assert len(raised.value.message) < 1_000


@pytest.mark.parametrize(
    "changes",
    [
        {"revision": None},
        {"revision": ""},
        {"revision": "HEAD"},
        {"revision": "main"},
        {"revision": "1.4.2"},
        {"revision": SHA[:12]},
        {"revision": SHA + "0"},
        {"revision": "g" * 40},
        {"revision": f"main@sha1:{SHA}"},
        {"revision": "", "revisions": ["18.2.1", "main"]},
    ],
)
def test_no_commit_is_ignored_with_the_reason(changes: dict[str, Any]) -> None:
    with pytest.raises(Ignored) as raised:
        parse_argocd(argocd_body(**changes))
    assert raised.value.reason == "no-revision"
    assert "no 40-hex git commit" in raised.value.message
    assert "Helm chart or OCI source" in raised.value.message


def test_the_instance_is_the_argocd_host_the_link_names() -> None:
    """One app name in two ArgoCD instances is two apps: de-duplication keys on it."""
    other = parse_argocd(argocd_body(url="https://ArgoCD.eu.example.com/applications/web"))
    assert other.instance == "argocd.eu.example.com"
    assert parse_argocd(argocd_body(url=None)).instance == ""
