"""What ArgoCD and Flux send about a sync: parse, validate and authenticate it (pure).

ArgoCD's body is Ritmo's own template (bot/deploy/argocd.py parses it), authenticated
by a shared token header (`check_token`). Flux's
notification-controller posts its `Event` JSON through a `generic-hmac` Provider
(templates/flux/ritmo-alert.yaml; bot/deploy/flux.py parses it), authenticated by the
`X-Signature` HMAC of the raw body (`check_flux_signature`).

Everything here comes from outside and may be hostile: bodies are capped, identifiers are
checked against what Kubernetes and git allow, and the free-text message loses its
control characters and is cut to MESSAGE_LIMIT.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from bot.statuses import DeploymentStatus

Source = Literal["argocd", "flux"]

BODY_LIMIT = 256 * 1024  # Flux caps an event's message at 39,000 characters
MESSAGE_LIMIT = 1_000
NAME_LIMIT = 253  # a Kubernetes object name (DNS subdomain)
NAMESPACE_LIMIT = 63  # a DNS label
URL_LIMIT = 2_048
REVISION_LIMIT = 512  # "<branch or tag>@sha1:<sha>"; git refs are rarely longer
TOKEN_LIMIT = 128  # phase, health, severity, reason, kind

# HMAC algorithms an `X-Signature: <algo>=<hex>` header may name.
HMAC_ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

SHA = re.compile(r"[0-9a-fA-F]{40}")
NAME = re.compile(r"[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?")
NAMESPACE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
HEX = re.compile(r"[0-9a-fA-F]+")
# Bidirectional overrides and isolates can make a message read differently from what it
# says (CVE-2021-42574); they go with the control characters.
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@dataclass(frozen=True)
class Report:
    """One sync outcome as a CD engine reported it."""

    source: Source
    name: str  # the ArgoCD Application / Flux Kustomization or HelmRelease name
    revision: str  # the 40-hex git commit sha that was synced (lowercase); "" for versions
    trigger: str  # argocd: the notification trigger; flux: the event reason
    status: DeploymentStatus
    message: str  # short human text, at most MESSAGE_LIMIT characters
    log_url: str | None  # a link to the CD app when the payload has one
    namespace: str | None = None
    # Which engine said it: the cluster or engine instance, so that two objects of one
    # name (two clusters, two ArgoCD instances) are not taken for each other.
    instance: str = ""
    # A HelmRelease names no commit: the chart version and the app version it deployed,
    # matched against the versions recorded for the app (used when `revision` is "").
    versions: tuple[str, ...] = ()


class IntakeError(ValueError):
    """A body Ritmo cannot accept: which field, and what to fix.

    The HTTP layer turns it into a 400/422 body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Why an authentic, well-formed report is not recorded: a closed set, counted by reason in
# /metrics (ritmo_cd_ignored). The engines do not retry a 4xx (notifications-engine even
# marks the notification sent), so these are answered 202 and the reason says what to fix.
IGNORED_REASONS: dict[str, str] = {
    "not-a-deployment": "the object is not a deployment (a Flux source, an image policy)",
    "unknown-app": "the name is no app and environment of the policy (not Ritmo's)",
    "no-revision": "the report names no git commit, nor a chart or app version",
    "unknown-revision": "the commit is not on the manifests repository's default branch, "
    "or the app's overlay is not in it",
    "unknown-version": "the version deployed is no version recorded for the app and pinned "
    "in the environment",
}


class Ignored(Exception):
    """An authentic report Ritmo cannot use: answered 202 {"status": "ignored", "reason"}.

    Raised by the parsers and the deployment service; `reason` is one of IGNORED_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in IGNORED_REASONS:
            raise ValueError(f"{reason!r} is not one of IGNORED_REASONS")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class NotADeployment(Ignored):
    """A well-formed event about something that is not a deployment (a GitRepository, a
    HelmChart...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("not-a-deployment", message)
        self.field = field


# ---------------------------------------------------------------------------------------
# Authentication


def check_token(given: str | None, expected: str) -> bool:
    """Whether the shared token matches, in constant time. No token, or no token
    configured, never matches."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_flux_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether `header` ("sha256=<hex>"; sha1, sha224, sha384 and sha512 too) is the HMAC
    of the raw `body` under `secret`, compared in constant time."""
    if header is None or not secret:
        return False
    algorithm, sep, given = header.strip().partition("=")
    digest = HMAC_ALGORITHMS.get(algorithm.strip().lower())
    given = given.strip()
    if not sep or digest is None or not HEX.fullmatch(given):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, digest).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii"))


# ---------------------------------------------------------------------------------------
# Reading hostile JSON


def _fail(field: str, message: str) -> NoReturn:
    raise IntakeError(field, message)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _fail(key, "appears twice in the object; send each field once")
        out[key] = value
    return out


def _reject_constant(name: str) -> NoReturn:
    _fail("body", f"{name} is not JSON")


def _load(body: bytes) -> dict[str, Any]:
    if len(body) > BODY_LIMIT:
        _fail("body", f"larger than {BODY_LIMIT} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        _fail("body", "not UTF-8: send JSON with Content-Type application/json")
    try:
        data = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        _fail("body", f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
    except RecursionError:
        _fail("body", "nested too deeply")
    if not isinstance(data, dict):
        _fail("body", "must be a JSON object")
    return data


def _string(data: Mapping[str, Any], key: str, limit: int, *, field: str | None = None) -> str:
    """A string field, "" when absent or null; another type or an oversize value is an
    error."""
    field = field or key
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(field, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        _fail(field, f"longer than {limit} characters")
    return value


def _token(data: Mapping[str, Any], key: str, *, field: str | None = None) -> str:
    """A machine word (a phase, a health status, a reason, a kind), or ""."""
    value = _string(data, key, TOKEN_LIMIT, field=field)
    if value and not TOKEN.fullmatch(value):
        _fail(field or key, f"{_show(value)} is not a single word of letters and digits")
    return value


def _name(data: Mapping[str, Any], key: str, *, field: str | None = None) -> str:
    field = field or key
    value = _string(data, key, NAME_LIMIT, field=field)
    if not value:
        _fail(field, "missing: the Application, Kustomization or HelmRelease name is required")
    if not NAME.fullmatch(value):
        _fail(field, f"{_show(value)} is not a Kubernetes object name")
    return value


def _namespace(data: Mapping[str, Any], key: str, *, field: str | None = None) -> str | None:
    field = field or key
    value = _string(data, key, NAMESPACE_LIMIT, field=field)
    if not value:
        return None
    if not NAMESPACE.fullmatch(value):
        _fail(field, f"{_show(value)} is not a Kubernetes namespace")
    return value


def _url(data: Mapping[str, Any], key: str) -> str | None:
    """An http(s) link, or None: a link that is not one (ArgoCD renders "<no value>" when
    `context.argocdUrl` is unset) is dropped rather than refused."""
    value = _string(data, key, URL_LIMIT).strip()
    if not re.fullmatch(r"https?://[^\s<>\"'\\]+", value):
        return None
    if any(unicodedata.category(ch)[0] == "C" for ch in value):
        return None
    return value


def _message(data: Mapping[str, Any]) -> str:
    """The free-text message, cleaned: control characters go (newlines and tabs become
    spaces), runs of blanks collapse, and it is cut to MESSAGE_LIMIT characters. An
    oversize message is cut, not refused: it is the least important field."""
    value = data.get("message")
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail("message", f"must be a string, not {type(value).__name__}")
    return clean_message(value[: MESSAGE_LIMIT * 8])


def clean_message(text: str) -> str:
    kept = []
    for ch in text:
        if ch in "\n\t\r":
            kept.append(" ")
        elif ch in BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Co"):
            continue
        else:
            kept.append(ch)
    cleaned = " ".join("".join(kept).split())
    if len(cleaned) > MESSAGE_LIMIT:
        cleaned = cleaned[: MESSAGE_LIMIT - 1].rstrip() + "…"
    return cleaned


def _show(value: str, limit: int = 80) -> str:
    """A value quoted for an error message, cut and made printable."""
    shown = clean_message(value)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return repr(shown)
