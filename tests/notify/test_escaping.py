"""CI values in notifications are data: they cannot move a request, ping a Slack channel,
hide a link, or add JSON keys (issue 14, item 4). Deliveries go to a real local server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from bot.notify.outbox import EventContext, Outbox
from bot.notify.targets import Sender, Unsendable
from bot.notify.urls import render_url, url_problem
from bot.policy.integrations import WebhookTarget
from tests.notify.conftest import ARTIFACT, PolicyHolder, RecordingServer, policy_with

MakeOutbox = Callable[..., Outbox]

STEAL = "../../../api/v1/admin?steal=1#"
INJECTED = '"}, "admin": true, "x": {"\n'


def ci_context(build_id: str = "build-77", **metadata: Any) -> EventContext:
    artifact = {**ARTIFACT, "build_id": build_id, "metadata": {**ARTIFACT["metadata"], **metadata}}
    return EventContext("pro-1", "web", artifact, "staging", "corr-42")


def webhook(url: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"on": "promoted", "webhook": {"url": url, "secret": "cd_token", **extra}}]


def test_a_build_id_cannot_move_a_webhook_off_its_path(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook(server.url + "/builds/${BUILD_ID}"))
    outbox = make_outbox()
    [row_id] = outbox.emit("promoted", ci_context(build_id=STEAL))
    assert outbox.deliver_due() == 1
    [seen] = server.seen
    assert seen.path == "/builds/..%2F..%2F..%2Fapi%2Fv1%2Fadmin%3Fsteal%3D1%23"
    assert seen.headers["Authorization"] == "Bearer s3cret-cd-token"
    assert not any(s.path.startswith("/api") for s in server.seen)
    row = outbox.get(row_id)
    assert row is not None and row.status == "delivered"


@pytest.mark.parametrize("path", ["/builds/${BUILD_ID}", "/builds/${BUILD_ID}/logs"])
def test_a_value_that_climbs_out_of_the_path_is_dead_lettered_unsent(
    path: str, server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook(server.url + path))
    outbox = make_outbox()
    [row_id] = outbox.emit("promoted", ci_context(build_id=".."))
    assert outbox.deliver_due() == 1
    assert server.seen == []  # no request, so no Authorization header anywhere
    row = outbox.get(row_id)
    assert row is not None and row.status == "dead" and row.attempts == 1
    assert row.last_error is not None and "leaves the template's path '/builds/'" in (
        row.last_error
    )
    assert outbox.retry(row_id) is not None  # retried by hand: refused again, still unsent
    outbox.deliver_due()
    assert server.seen == []
    again = outbox.get(row_id)
    assert again is not None and again.status == "dead"


def test_query_values_are_encoded_as_one_value(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook(server.url + "/hook?build=${BUILD_ID}&v=${VERSION}"))
    outbox = make_outbox()
    outbox.emit("promoted", ci_context(build_id="7&admin=1#frag"))
    assert outbox.deliver_due() == 1
    [seen] = server.seen
    assert seen.path == "/hook?build=7%26admin%3D1%23frag&v=1.2.3"


def test_a_spinnaker_url_is_guarded_too(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    target = {"url": server.url + "/webhooks/webhook/${BUILD_ID}", "secret": "gate"}
    policy.policy = policy_with([{"on": "promoted", "spinnaker": target}])
    outbox = make_outbox()
    [row_id] = outbox.emit("promoted", ci_context(build_id=".."))
    outbox.deliver_due()
    assert server.seen == []
    row = outbox.get(row_id)
    assert row is not None and row.status == "dead" and "refused" in (row.last_error or "")


@pytest.mark.parametrize(
    ("template", "rendered", "problem"),
    [
        ("https://cd.example.com/b/${BUILD_ID}", "https://cd.example.com/b/x%2Fy", None),
        ("https://cd.example.com/b/${BUILD_ID}", "https://cd.example.com/b/..", "leaves"),
        ("https://cd${ENVIRONMENT}/x", "https://cd.evil.example/x", "goes to"),
        ("https://cd${ENVIRONMENT}/x", "https://cd/x", None),  # empty value: same host
        ("https://cd.example.com:8443/v${VERSION}", "https://cd.example.com:8443/v1", None),
        ("https://cd.example.com:8443/v${VERSION}", "https://cd.example.com/v1", "goes to"),
        ("git@github.com:acme/${APP}.git", "git@github.com:acme/web.git", None),
        ("/srv/git/${APP}", "/srv/git/..", "leaves"),
    ],
)
def test_url_problem(template: str, rendered: str, problem: str | None) -> None:
    found = url_problem(template, rendered)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_render_url_encodes_every_reserved_character() -> None:
    values = {"BUILD_ID": "a/b?c#d&e=f@g%h i", "APP": "web"}
    url = render_url("https://cd.example.com/${APP}/${BUILD_ID}?x=$${APP}", values)
    assert url == "https://cd.example.com/web/a%2Fb%3Fc%23d%26e%3Df%40g%25h%20i?x=${APP}"


def test_a_variable_in_a_url_host_is_refused_when_the_policy_loads() -> None:
    with pytest.raises(ValidationError, match="in its host"):
        WebhookTarget(url="https://${ENVIRONMENT}.cd.example.com/hook")
    WebhookTarget(url="https://cd.example.com/${ENVIRONMENT}/hook")  # a path segment is fine


def test_slack_text_escapes_ci_values_not_the_template(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    text = "<https://ci.example/b|build> ${GIT_COMMIT} (${BUILD_ID})"
    policy.policy = policy_with([{"on": "promoted", "slack": {"secret": "slack", "text": text}}])
    outbox = make_outbox(secrets={"slack": server.url + "/services/T0/B0/XYZ"})
    commit = "<!channel> <https://evil.example/login|Log in again> & <@U123>"
    outbox.emit("promoted", ci_context(build_id="a>b", commit=commit))
    assert outbox.deliver_due() == 1
    [seen] = server.seen
    assert seen.body == {
        "text": "<https://ci.example/b|build> &lt;!channel&gt; "
        "&lt;https://evil.example/login|Log in again&gt; &amp; &lt;@U123&gt; (a&gt;b)"
    }


def test_json_bodies_are_data_for_every_target(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    """A value written to break out of a JSON string arrives as that exact string."""
    value = "${BUILD_ID}"
    policy.policy = policy_with(
        [
            {"on": "promoted", "slack": {"secret": "slack", "text": value}},
            {"on": "promoted", "webhook": {"url": server.url + "/hook", "body": {"b": value}}},
            {"on": "promoted", "spinnaker": {"url": server.url + "/gate",
                                             "parameters": {"b": value},
                                             "artifacts": [{"name": value}]}},
            {"on": "promoted", "github_workflow": {"repository": "acme/web",
                                                   "workflow": "deploy.yml", "ref": value,
                                                   "inputs": {"b": value}}},
            {"on": "promoted", "repository_dispatch": {"repository": "acme/web",
                                                       "event_type": value,
                                                       "client_payload": {"b": value}}},
        ]
    )  # fmt: skip
    outbox = make_outbox(
        secrets={"slack": server.url + "/slack"},
        github_token=lambda: "ghs_installation",
        api_url=server.url + "/api",
    )
    outbox.emit("promoted", ci_context(build_id=INJECTED))
    assert outbox.deliver_due() == 5
    bodies = {s.path: s.body for s in server.seen}
    escaped = INJECTED.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert bodies["/slack"] == {"text": escaped}
    assert bodies["/hook"] == {"b": INJECTED}
    assert bodies["/gate"]["parameters"] == {"b": INJECTED}
    assert bodies["/gate"]["artifacts"] == [{"name": INJECTED}]
    assert bodies["/gate"]["ritmo"]["artifact"]["build_id"] == INJECTED
    dispatch = "/api/repos/acme/web/actions/workflows/deploy.yml/dispatches"
    assert bodies[dispatch] == {"ref": INJECTED, "inputs": {"b": INJECTED}}
    assert bodies["/api/repos/acme/web/dispatches"] == {
        "event_type": INJECTED,
        "client_payload": {"b": INJECTED},
    }
    assert all("admin" not in body for body in bodies.values())


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("repository_dispatch", {"repository": "acme/..", "event_type": "deploy"}),
        ("repository_dispatch", {"repository": "acme/web/../../x", "event_type": "deploy"}),
        ("github_workflow", {"repository": "acme/web", "workflow": ".."}),
        ("github_workflow", {"repository": "acme/web", "workflow": "../../x.yml"}),
    ],
)
def test_a_rendered_github_path_that_is_not_a_name_is_refused(
    kind: str, target: dict[str, Any]
) -> None:
    sender = Sender({}, 2.0, github_token=lambda: "ghs_installation")
    with pytest.raises(Unsendable, match="refused"):
        sender.build(kind, target, {}, "key")
