"""Pure: an event and its context -> the `${VAR}` values -> each matching target, rendered.

What is rendered is stored in the outbox as it is, so a later policy edit does not change
work already queued, and a restart re-sends exactly what was first meant. Secrets are
not rendered: they are looked up by name when the request is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.notify.urls import render_url, substitute_text, url_problem
from bot.policy.integration_fields import EVENTS, TargetKind
from bot.policy.integrations import Integration

# Target fields that are names, never texts: left as they are.
_LITERAL_FIELDS = ("secret", "secret_header")
# Fields that are URLs: each value is percent-encoded where it stands, and the result
# must still go where the template says (bot.notify.urls).
_URL_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url",),
    "spinnaker": ("url",),
    "update_gitops_repo": ("url",),
}
# Fields that are Slack mrkdwn: values are escaped so CI cannot write <!channel> or links.
_SLACK_FIELDS: dict[str, tuple[str, ...]] = {"slack": ("text",)}


@dataclass(frozen=True)
class EventContext:
    """What happened, to which artifact.

    `event_id` identifies the occurrence (e.g. the promotion commit): emitting the same
    event with the same id again enqueues nothing new. `artifact` is the artifact record
    (id, name, version, storage_url, image, build_id, metadata{commit, build_number, ...}).
    `extra` may hold from_environment and manifest_commit (the commit in the manifests
    repo) and anything else worth passing on in the event document.
    """

    event_id: str
    app: str
    artifact: Mapping[str, Any]
    environment: str | None = None
    correlation_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """One integration's work for one event, ready to store."""

    kind: TargetKind
    target: dict[str, Any]  # the target's fields, `${VAR}` substituted
    event: dict[str, Any]  # the event document (a webhook's default body)
    integration: str | None  # the integration's name, if it has one
    key: str  # the idempotency key: stable for this event and target
    refused: str | None = None  # why this must not be sent (a URL a value redirected)

    def request(self) -> dict[str, Any]:
        """What the outbox stores: everything needed to send, except credentials; a
        refused one carries its reason and is dead-lettered instead of sent."""
        stored = {"kind": self.kind, "target": self.target, "event": self.event}
        return stored if self.refused is None else {**stored, "refused": self.refused}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def variables(event: str, context: EventContext) -> dict[str, str]:
    """The value of every `${VAR}` for this event; missing values are empty strings."""
    record = context.artifact
    raw_meta = record.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}

    def first(*values: object) -> str:
        return next((_text(v) for v in values if v not in (None, "")), "")

    return {
        "APP": context.app,
        "EVENT": event,
        "ARTIFACT_ID": first(record.get("id")),
        "ARTIFACT_URL": first(record.get("storage_url")),
        "VERSION": first(record.get("version"), meta.get("version")),
        "IMAGE": first(record.get("image")),
        "GIT_COMMIT": first(meta.get("commit"), meta.get("git_commit")),
        "GIT_TAG": first(meta.get("tag"), meta.get("git_tag")),
        "BUILD_ID": first(record.get("build_id")),
        "BUILD_NUMBER": first(meta.get("build_number")),
        "ENVIRONMENT": first(context.environment),
        "FROM_ENVIRONMENT": first(context.extra.get("from_environment")),
        "MANIFEST_COMMIT": first(context.extra.get("manifest_commit")),
        "CORRELATION_ID": first(context.correlation_id),
        "MESSAGE": first(context.extra.get("message"), default_message(event, context)),
    }


def default_message(event: str, context: EventContext) -> str:
    """One line a person can read, e.g. for Slack: `text: "${MESSAGE}"`."""
    version = context.artifact.get("version")
    what = " ".join(str(p) for p in (context.app, version) if p) or "Ritmo"
    where = f" in {context.environment}" if context.environment else ""
    return f"{what}: {event.replace('_', ' ')}{where}"


def slack_escape(text: str) -> str:
    """Slack's "Escaping text": `&`, `<` and `>` as `&amp;`, `&lt;` and `&gt;`, so a
    value cannot mention `<!channel>` or hide a link behind `<url|label>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """Substitute in every string value, recursively (mapping keys are left alone)."""
    if isinstance(value, str):
        return substitute_text(value, values)
    if isinstance(value, Mapping):
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, values) for v in value]
    return value


def event_document(event: str, context: EventContext) -> dict[str, Any]:
    """The event as JSON: a webhook's body when it sets none, Spinnaker's `ritmo` field."""
    return {
        "event": event,
        "id": context.event_id,
        "app": context.app,
        "environment": context.environment,
        "artifact": _plain(context.artifact),
        "correlation_id": context.correlation_id,
        "extra": _plain(context.extra),
    }


def matching(
    integrations: Iterable[Integration], event: str, app: str, environment: str | None
) -> list[Integration]:
    """The integrations that want this event, for this app, in this environment."""
    return [i for i in integrations if i.matches(event, app, environment)]


def idempotency_key(event: str, event_id: str, kind: str, target: Mapping[str, Any]) -> str:
    """Stable for one event occurrence and one rendered target: the same emit twice,
    or a re-send after a restart, carries the same key."""
    canonical = json.dumps([event, event_id, kind, target], sort_keys=True, separators=(",", ":"))
    return "ritmo-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def render(integration: Integration, event: str, context: EventContext) -> Rendered:
    kind, target = integration.target
    values = variables(event, context)
    fields = target.model_dump(mode="json")
    urls, slack = _URL_FIELDS.get(kind, ()), _SLACK_FIELDS.get(kind, ())
    escaped = {name: slack_escape(value) for name, value in values.items()}
    rendered: dict[str, Any] = {}
    refused: str | None = None
    for name, value in fields.items():
        if name in _LITERAL_FIELDS:
            rendered[name] = value
        elif name in urls and isinstance(value, str):
            rendered[name] = render_url(value, values)
            refused = refused or url_problem(value, rendered[name])
        elif name in slack:
            rendered[name] = substitute(value, escaped)
        else:
            rendered[name] = substitute(value, values)  # JSON data: serialised when sent
    return Rendered(
        kind=kind,
        target=rendered,
        event=event_document(event, context),
        integration=integration.name,
        key=idempotency_key(event, context.event_id, kind, rendered),
        refused=refused,
    )


def render_all(
    integrations: Iterable[Integration], event: str, context: EventContext
) -> list[Rendered]:
    """Every matching integration rendered for the event, one per idempotency key."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; the events are {', '.join(EVENTS)}")
    found: dict[str, Rendered] = {}
    for integration in matching(integrations, event, context.app, context.environment):
        one = render(integration, event, context)
        found.setdefault(one.key, one)
    return list(found.values())


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, anything else not JSON as a string."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
