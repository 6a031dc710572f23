"""notification-controller's path from a controller's event to a generic-hmac POST, in Python.

Each step names the upstream function it copies (notification-controller v1.9.3; fluxcd/pkg
apis/event/v1beta1 for the Event type). tests/samples/flux/SOURCES.md says the same in prose.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

EVENT_GROUP = "event.toolkit.fluxcd.io"
# eventv1.Event's fields in declaration order (encoding/json writes them in this order);
# metadata and reportingInstance are omitempty.
EVENT_FIELDS = (
    "involvedObject", "severity", "timestamp", "message", "reason", "metadata",
    "reportingController", "reportingInstance",
)  # fmt: skip
# corev1.ObjectReference's fields in declaration order, all omitempty.
OBJECT_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def object_group(event: dict[str, Any]) -> str:
    """InvolvedObject.GroupVersionKind().Group: "" for a core object."""
    api_version = str(event["involvedObject"].get("apiVersion", ""))
    return api_version.partition("/")[0] if "/" in api_version else ""


def as_controller_sends(forwarded: dict[str, Any], token: str) -> dict[str, Any]:
    """The event as a controller posts it to notification-controller (fluxcd/pkg
    runtime/events/recorder.go): every key under the object's API group, and the `token`
    helm-controller and kustomize-controller add (internal/reconcile/release.go eventMeta)."""
    event = copy.deepcopy(forwarded)
    group = object_group(event)
    metadata = event.get("metadata") or {}
    event["metadata"] = {f"{group}/{k.rpartition('/')[2]}": v for k, v in metadata.items()}
    event["metadata"][f"{group}/token"] = token
    event["metadata"][f"{group}/digest"] = "sha256:" + "0" * 64  # dropped by cleanupMetadata
    event["metadata"]["other.example.com/annotation"] = "x"  # another group: dropped too
    return event


def cleanup_metadata(event: dict[str, Any]) -> None:
    """internal/server/event_server.go cleanupMetadata: keep the event group's and the
    object group's keys, less checksum and digest."""
    group = object_group(event) + "/"
    exclude = {f"{group}checksum".lower(), f"{group}digest".lower()}
    event["metadata"] = {
        k: v
        for k, v in (event.get("metadata") or {}).items()
        if k.lower() not in exclude and (k.startswith(EVENT_GROUP + "/") or k.startswith(group))
    }


def exclude_internal_metadata(event: dict[str, Any]) -> None:
    """internal/server/event_handlers.go excludeInternalMetadata: drop `<group>/token`."""
    if event.get("metadata"):
        event["metadata"].pop(f"{object_group(event)}/token", None)


def combine_event_metadata(event: dict[str, Any], alert_event_metadata: dict[str, str]) -> None:
    """internal/server/event_handlers.go combineEventMetadata: the event group's keys and
    the object group's keys with their prefix stripped, the Alert's spec.eventMetadata as
    they are; the object's keys win a conflict."""
    combined: dict[str, str] = {}
    metadata: dict[str, str] = event.get("metadata") or {}
    for key, value in metadata.items():
        if key.startswith(EVENT_GROUP + "/"):
            combined[key.removeprefix(EVENT_GROUP + "/")] = value
    combined.update(alert_event_metadata)
    group = object_group(event) + "/"
    for key, value in metadata.items():
        if key.startswith(group):
            combined[key.removeprefix(group)] = value
    if combined:
        event["metadata"] = combined


def go_json(event: dict[str, Any]) -> bytes:
    """encoding/json's Marshal of an eventv1.Event: struct fields in declaration order,
    omitempty honoured, map keys sorted, no blanks, <, >, & and U+2028/U+2029 escaped."""
    obj = {k: event["involvedObject"][k] for k in OBJECT_FIELDS if event["involvedObject"].get(k)}
    ordered: dict[str, Any] = {}
    for field in EVENT_FIELDS:
        value = obj if field == "involvedObject" else event.get(field)
        if field in ("metadata", "reportingInstance") and not value:
            continue
        ordered[field] = dict(sorted(value.items())) if field == "metadata" else (value or "")
    text = json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def sign(body: bytes, key: str) -> str:
    """internal/notifier/forwarder.go sign: fmt.Sprintf("sha256=%x", HMAC-SHA256)."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def forward(
    posted: dict[str, Any], key: str, alert_event_metadata: dict[str, str] | None = None
) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """What a generic-hmac Provider sends for the event a controller `posted`: the event as
    forwarded, the body bytes, and the headers (Forwarder.Post and postMessage)."""
    event = copy.deepcopy(posted)
    cleanup_metadata(event)  # eventMiddleware
    exclude_internal_metadata(event)  # handleEvent
    combine_event_metadata(event, alert_event_metadata or {})  # getNotificationParams
    body = go_json(event)
    headers = {
        "Content-Type": "application/json",
        "gotk-component": str(event["reportingController"]),
        "X-Signature": sign(body, key),
        "User-Agent": "Go-http-client/1.1",
    }
    return event, body, headers
