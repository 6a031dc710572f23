"""Rendering is pure: context -> variables -> substituted target, one key per delivery."""

from __future__ import annotations

import pytest

from bot.notify.render import (
    EventContext,
    event_document,
    matching,
    render,
    render_all,
    substitute,
    variables,
)
from tests.notify.conftest import ARTIFACT, context, policy_with


def test_variables_come_from_the_record_and_the_context() -> None:
    values = variables("promoted", context(extra={"from_environment": "dev"}))
    assert values == {
        "APP": "web",
        "EVENT": "promoted",
        "ARTIFACT_ID": "art-0123456789abcdef",
        "ARTIFACT_URL": "s3://artifacts/web-1.2.3.tar",
        "VERSION": "1.2.3",
        "IMAGE": "ghcr.io/acme/web:1.2.3",
        "GIT_COMMIT": "deadbeef" * 5,
        "GIT_TAG": "v1.2.3",
        "BUILD_ID": "build-77",
        "BUILD_NUMBER": "77",
        "ENVIRONMENT": "staging",
        "FROM_ENVIRONMENT": "dev",
        "MANIFEST_COMMIT": "",
        "CORRELATION_ID": "corr-42",
        "MESSAGE": "web 1.2.3: promoted in staging",
    }


def test_missing_values_are_empty() -> None:
    bare = EventContext(event_id="e", app="web", artifact={"id": "art-1", "version": "2"})
    values = variables("artifact_recorded", bare)
    assert values["ENVIRONMENT"] == values["GIT_TAG"] == values["CORRELATION_ID"] == ""
    assert values["VERSION"] == "2"


def test_substitution_is_recursive_in_values_only() -> None:
    values = {"APP": "web", "VERSION": "1.2.3"}
    given = {
        "${APP}": "${APP}-${VERSION}",
        "list": ["${VERSION}", 3, True, None, {"deep": "v${VERSION}"}],
        "literal": "$${APP} costs $5",
    }
    assert substitute(given, values) == {
        "${APP}": "web-1.2.3",
        "list": ["1.2.3", 3, True, None, {"deep": "v1.2.3"}],
        "literal": "${APP} costs $5",
    }


def test_render_substitutes_the_target_but_not_secret_names() -> None:
    policy = policy_with(
        [
            {
                "on": ["promoted"],
                "name": "cd",
                "webhook": {
                    "url": "https://cd.example.com/${APP}",
                    "secret": "cd_token",
                    "body": {"version": "${VERSION}", "env": "${ENVIRONMENT}", "n": 1},
                },
            }
        ]
    )
    one = render(policy.integrations[0], "promoted", context())
    assert one.kind == "webhook"
    assert one.integration == "cd"
    assert one.target == {
        "url": "https://cd.example.com/web",
        "method": "POST",
        "secret": "cd_token",
        "headers": {},
        "body": {"version": "1.2.3", "env": "staging", "n": 1},
    }
    assert one.event == event_document("promoted", context())
    assert one.event["artifact"] == ARTIFACT
    assert one.request() == {"kind": "webhook", "target": one.target, "event": one.event}


def test_the_key_is_stable_per_event_and_target() -> None:
    policy = policy_with([{"on": ["promoted"], "slack": {"secret": "s", "text": "${VERSION}"}}])
    entry = policy.integrations[0]
    first = render(entry, "promoted", context("pro-1"))
    assert render(entry, "promoted", context("pro-1")).key == first.key
    assert render(entry, "promoted", context("pro-2")).key != first.key
    assert render(entry, "deployed", context("pro-1")).key != first.key
    assert first.key.startswith("ritmo-") and len(first.key) == 46


def test_matching_and_render_all() -> None:
    policy = policy_with(
        [
            {
                "on": ["promoted"],
                "environments": ["staging"],
                "slack": {"secret": "s", "text": "a"},
            },
            {"on": ["promoted"], "apps": ["api"], "slack": {"secret": "s", "text": "b"}},
            {"on": ["deployed"], "slack": {"secret": "s", "text": "c"}},
            {"on": ["promoted"], "slack": {"secret": "s", "text": "a"}},  # renders like the 1st
        ]
    )
    found = matching(policy.integrations, "promoted", "web", "staging")
    assert [i.slack.text for i in found if i.slack] == ["a", "a"]
    assert [r.target["text"] for r in render_all(policy.integrations, "promoted", context())] == [
        "a"
    ]
    assert render_all(policy.integrations, "promoted", context(environment="production")) != []
    assert render_all(policy.integrations, "rolled_back", context()) == []
    with pytest.raises(ValueError, match="unknown event 'promotion'"):
        render_all(policy.integrations, "promotion", context())
