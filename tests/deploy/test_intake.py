"""ArgoCD and Flux intake: the shipped templates, parsing, status mapping, rejections, auth."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.deploy.intake import (
    ARGOCD_TRIGGERS,
    MESSAGE_LIMIT,
    IntakeError,
    NotADeployment,
    Report,
    argocd_status,
    check_flux_signature,
    check_token,
    parse_argocd,
)

ROOT = Path(__file__).resolve().parents[2]
ARGOCD_CM = ROOT / "templates" / "argocd" / "argocd-notifications-cm.yaml"
FLUX_ALERT = ROOT / "templates" / "flux" / "ritmo-alert.yaml"
SAMPLES = ROOT / "tests" / "samples"
ARGOCD_SAMPLES = sorted((SAMPLES / "argocd").glob("*.json"))
FLUX_SAMPLES = SAMPLES / "flux"
ARGOCD_URL = "https://argocd.example.com"
SHA = "9c1e0f7a3b5d2e4f6a8b0c1d3e5f7a9b1c3d5e7f"


def sample(kind: str, name: str) -> bytes:
    return (SAMPLES / kind / f"{name}.json").read_bytes()


def argocd_body(**changes: Any) -> bytes:
    data = json.loads(sample("argocd", "on-deployed"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def flux_body(name: str = "kustomization-succeeded", **changes: Any) -> bytes:
    data = json.loads(sample("flux", name))
    data.update(changes)
    return json.dumps(data).encode()


# ---------------------------------------------------------------------------------------
# A tiny evaluator for the Go template expressions the ArgoCD ConfigMap uses, so the test
# renders each body the way argocd-notifications would. An expression it does not know
# fails the test: a template change must come with a renderer change here.

EXPR = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)
TOKENS = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+')


def _lookup(path: str, scope: dict[str, Any]) -> Any:
    value: Any = scope
    for part in path.strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            raise AssertionError(f"{path} is not in the sample Application")
        value = value[part]
    return value


def _dig(*args: Any) -> Any:
    *keys, default, data = args
    value: Any = data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _to_json(value: Any) -> str:
    return json.dumps(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {"toJson": _to_json, "dig": _dig}


def _evaluate(tokens: list[str], scope: dict[str, Any]) -> Any:
    def term(pos: int) -> tuple[Any, int]:
        token = tokens[pos]
        if token == "(":
            value, pos = call(pos + 1)
            assert tokens[pos] == ")", tokens
            return value, pos + 1
        if token.startswith('"'):
            return json.loads(token), pos + 1
        if token.startswith("."):
            return _lookup(token, scope), pos + 1
        raise AssertionError(f"unexpected {token!r} in a template expression")

    def call(pos: int) -> tuple[Any, int]:
        if tokens[pos] in FUNCTIONS:
            function = FUNCTIONS[tokens[pos]]
            pos += 1
            args = []
            while pos < len(tokens) and tokens[pos] != ")":
                arg, pos = term(pos)
                args.append(arg)
            return function(*args), pos
        return term(pos)

    value, end = call(0)
    assert end == len(tokens), f"unparsed: {tokens[end:]}"
    return value


def render(template: str, app: dict[str, Any]) -> str:
    scope = {"app": app, "context": {"argocdUrl": ARGOCD_URL}}

    def one(match: re.Match[str]) -> str:
        value = _evaluate(TOKENS.findall(match[1]), scope)
        return value if isinstance(value, str) else json.dumps(value)

    return EXPR.sub(one, template)


def load_yaml(path: Path) -> list[Any]:
    return list(YAML(typ="safe").load_all(path.read_text()))


def argocd_cm() -> dict[str, Any]:
    (cm,) = load_yaml(ARGOCD_CM)
    data: dict[str, Any] = cm["data"]
    return data


def webhook_bodies() -> dict[str, str]:
    """trigger name -> the `body` its Ritmo template sends."""
    out = {}
    for key, value in argocd_cm().items():
        if key.startswith("template.ritmo-"):
            template = YAML(typ="safe").load(value)
            assert template["webhook"]["ritmo"]["method"] == "POST"
            out[key.removeprefix("template.ritmo-")] = template["webhook"]["ritmo"]["body"]
    return out


def application(
    *,
    name: str = "web-production",
    revision: str | None = SHA,
    phase: str | None = "Succeeded",
    health: str = "Healthy",
    message: str = "successfully synced (all tasks run)",
    sync_revision: str = "ffffffffffffffffffffffffffffffffffffffff",
) -> dict[str, Any]:
    """An ArgoCD Application as the notifications controller sees it (.app)."""
    status: dict[str, Any] = {
        "sync": {"status": "Synced", "revision": sync_revision},
        "health": {"status": health},
    }
    if phase is not None:
        operation: dict[str, Any] = {"phase": phase, "message": message}
        if revision is not None:
            operation["syncResult"] = {"revision": revision}
        status["operationState"] = operation
    return {"metadata": {"name": name, "namespace": "argocd"}, "status": status}


# ---------------------------------------------------------------------------------------
# The shipped ArgoCD ConfigMap


def test_argocd_configmap_is_a_ready_notifications_configmap() -> None:
    (cm,) = load_yaml(ARGOCD_CM)
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "argocd-notifications-cm"
    data = cm["data"]
    service = YAML(typ="safe").load(data["service.webhook.ritmo"])
    assert service["url"] == "https://ritmo.example.com/webhooks/argocd"
    headers = {h["name"]: h["value"] for h in service["headers"]}
    assert headers == {"Content-Type": "application/json", "X-Ritmo-Token": "$ritmo-token"}
    assert YAML(typ="safe").load(data["context"]) == {"argocdUrl": "https://argocd.example.com"}
    assert "kubectl -n argocd patch secret argocd-notifications-secret" in ARGOCD_CM.read_text()


def test_every_trigger_sends_its_ritmo_template_and_every_app_subscribes() -> None:
    data = argocd_cm()
    triggers = {k.removeprefix("trigger."): v for k, v in data.items() if k.startswith("trigger.")}
    assert set(triggers) == set(ARGOCD_TRIGGERS)
    assert set(webhook_bodies()) == set(ARGOCD_TRIGGERS)
    for name, text in triggers.items():
        (condition,) = YAML(typ="safe").load(text)
        assert condition["send"] == [f"ritmo-{name}"]
        assert condition["oncePer"] == "app.status.operationState?.syncResult?.revision"
        assert condition["when"]
    (subscription,) = YAML(typ="safe").load(data["subscriptions"])
    assert subscription["recipients"] == ["ritmo"]
    assert set(subscription["triggers"]) == set(ARGOCD_TRIGGERS)
    assert "selector" not in subscription


def test_catalog_conditions() -> None:
    data = argocd_cm()

    def when(trigger: str) -> str:
        (condition,) = YAML(typ="safe").load(data[f"trigger.{trigger}"])
        return " ".join(str(condition["when"]).split())

    assert "phase in ['Error', 'Failed']" in when("on-sync-failed")
    assert when("on-health-degraded") == "app.status.health.status == 'Degraded'"
    assert "phase in ['Succeeded']" in when("on-sync-succeeded")
    assert "phase in ['Running']" in when("on-sync-running")
    deployed = when("on-deployed")
    assert "app.status.health.status == 'Healthy'" in deployed
    assert "!time.Parse(app.status.health.lastTransitionTime).Before(" in deployed


@pytest.mark.parametrize("trigger", sorted(ARGOCD_TRIGGERS))
def test_each_template_body_is_json_naming_its_trigger(trigger: str) -> None:
    body = webhook_bodies()[trigger]
    expressions = EXPR.findall(body)
    assert any("syncResult" in e and '"sync" "revision"' in e for e in expressions)
    # The worst a sync message can hold still makes JSON: values go through toJson.
    hostile = 'quote " backslash \\ newline \n tab \t </script> {{ .x }}'
    rendered = render(body, application(message=hostile))
    payload = json.loads(rendered)
    assert payload["trigger"] == trigger
    assert payload["message"] == hostile
    assert payload["url"] == f"{ARGOCD_URL}/applications/web-production"
    assert parse_argocd(rendered.encode()).trigger == trigger


def test_template_falls_back_to_the_sync_revision() -> None:
    body = webhook_bodies()["on-health-degraded"]
    never_synced = application(phase=None, health="Degraded", sync_revision=SHA)
    payload = json.loads(render(body, never_synced))
    assert payload["revision"] == SHA
    assert payload["phase"] == "" and payload["message"] == ""
    report = parse_argocd(json.dumps(payload).encode())
    assert (report.revision, report.status) == (SHA, "degraded")


@pytest.mark.parametrize("path", ARGOCD_SAMPLES, ids=lambda p: p.stem)
def test_argocd_samples_are_what_the_template_renders(path: Path) -> None:
    expected = json.loads(path.read_text())
    app = application(
        name=expected["app"],
        revision=expected["revision"],
        phase=expected["phase"],
        health=expected["health"],
        message=expected["message"],
    )
    rendered = json.loads(render(webhook_bodies()[expected["trigger"]], app))
    assert rendered == expected


# ---------------------------------------------------------------------------------------
# parse_argocd


def test_parse_argocd_deployed() -> None:
    assert parse_argocd(sample("argocd", "on-deployed")) == Report(
        source="argocd",
        name="web-production",
        revision=SHA,
        trigger="on-deployed",
        status="succeeded",
        message="successfully synced (all tasks run)",
        log_url="https://argocd.example.com/applications/web-production",
        namespace="argocd",
    )


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("on-deployed", "succeeded"),
        ("on-sync-succeeded", "progressing"),  # synced, still rolling out
        ("on-sync-failed", "failed"),
        ("on-health-degraded", "degraded"),
        ("on-sync-running", "progressing"),
    ],
)
def test_argocd_samples_status(name: str, status: str) -> None:
    report = parse_argocd(sample("argocd", name))
    assert (report.source, report.trigger, report.status) == ("argocd", name, status)


@pytest.mark.parametrize(
    ("trigger", "phase", "health", "status"),
    [
        # on-sync-failed, or a failed/errored operation
        ("on-sync-failed", "Failed", "Healthy", "failed"),
        ("on-sync-failed", "", "", "failed"),
        ("on-sync-succeeded", "Failed", "Healthy", "failed"),
        ("on-health-degraded", "Error", "Degraded", "failed"),
        # on-health-degraded, or health Degraded
        ("on-health-degraded", "Succeeded", "Healthy", "degraded"),
        ("on-health-degraded", "", "", "degraded"),
        ("on-sync-succeeded", "Succeeded", "Degraded", "degraded"),
        ("on-deployed", "Succeeded", "Degraded", "degraded"),
        # on-deployed, or a succeeded operation on a healthy app
        ("on-deployed", "Succeeded", "Healthy", "succeeded"),
        ("on-deployed", "", "", "succeeded"),
        ("on-sync-succeeded", "Succeeded", "Healthy", "succeeded"),
        # on-sync-running, phase Running, health Progressing/Missing, anything unsettled
        ("on-sync-running", "Running", "Healthy", "progressing"),
        ("on-sync-running", "", "", "progressing"),
        ("on-sync-succeeded", "Running", "Healthy", "progressing"),
        ("on-sync-succeeded", "Succeeded", "Progressing", "progressing"),
        ("on-sync-succeeded", "Succeeded", "Missing", "progressing"),
        ("on-sync-succeeded", "Succeeded", "Suspended", "progressing"),
    ],
)
def test_argocd_status_mapping(trigger: str, phase: str, health: str, status: str) -> None:
    assert argocd_status(trigger, phase, health) == status
    body = argocd_body(trigger=trigger, phase=phase, health=health)
    assert parse_argocd(body).status == status


def test_argocd_revision_is_lowercased() -> None:
    assert parse_argocd(argocd_body(revision=SHA.upper())).revision == SHA


def test_argocd_optional_fields() -> None:
    report = parse_argocd(argocd_body(namespace=None, message=None, url=None, phase=None))
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
        (argocd_body(revision=None), "revision"),
        (argocd_body(revision="HEAD"), "revision"),
        (argocd_body(revision="1.4.2"), "revision"),
        (argocd_body(revision=SHA[:12]), "revision"),
        (argocd_body(revision=SHA + "0"), "revision"),
        (argocd_body(revision="g" * 40), "revision"),
        (argocd_body(revision=f"main@sha1:{SHA}"), "revision"),
        (argocd_body(revision="f" * 600), "revision"),
        (argocd_body(phase="Succeeded; rm -rf"), "phase"),
        (argocd_body(health="h" * 200), "health"),
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


def test_argocd_revision_error_names_the_fix() -> None:
    with pytest.raises(IntakeError, match="not a 40-hex git commit sha; the Application"):
        parse_argocd(argocd_body(revision="1.4.2"))


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
