"""Targets build one request each; `classify` says delivered, retry or dead."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import responses

from bot.notify.outcomes import Outcome, classify, retry_after
from bot.notify.targets import MissingSecret, Sender, Unsendable, find_secret
from tests.notify.conftest import START, RecordingServer, Reply, free_port

EVENT: dict[str, Any] = {"event": "promoted", "id": "pro-1", "app": "web"}
KEY = "ritmo-" + "0" * 40
GH = "https://api.github.com"


def sender(secrets: dict[str, str] | None = None, **kw: Any) -> Sender:
    return Sender(secrets or {}, 2.0, clock=lambda: START, **kw)


# -- building requests (pure) ---------------------------------------------------------


def test_slack_posts_text_to_the_secret_url() -> None:
    req = sender({"Slack_Deploys": "https://hooks.slack.com/services/T/B/X"}).build(
        "slack", {"secret": "slack-deploys", "text": "hi"}, EVENT, KEY
    )
    assert (req.method, req.url) == ("POST", "https://hooks.slack.com/services/T/B/X")
    assert req.json == {"text": "hi"}
    assert req.headers == {"User-Agent": "ritmo", "Idempotency-Key": KEY}
    assert req.hide("to https://hooks.slack.com/services/T/B/X") == "to ***"
    assert req.hide("url: /services/T/B/X") == "url: ***"


def test_webhook_defaults_to_the_event_document_and_bearer_secret() -> None:
    target = {"url": "https://cd/x", "method": "PUT", "secret": "cd", "headers": {"X-Team": "a"}}
    req = sender({"cd": "tok"}).build("webhook", {**target, "body": None}, EVENT, KEY)
    assert req.method == "PUT" and req.json == EVENT
    assert req.headers == {
        "X-Team": "a",
        "User-Agent": "ritmo",
        "Idempotency-Key": KEY,
        "Authorization": "Bearer tok",
    }
    without = sender().build("webhook", {"url": "https://cd/x", "body": {"a": 1}}, EVENT, KEY)
    assert without.json == {"a": 1} and "Authorization" not in without.headers


def test_github_requests_follow_the_rest_api() -> None:
    s = sender({"ghe": "ghp_named"}, github_token=lambda: "ghs_app", api_url=GH + "/")
    wf = s.build(
        "github_workflow",
        {"repository": "acme/web", "workflow": "deploy.yml", "ref": "main", "inputs": {"v": "1"}},
        EVENT,
        KEY,
    )
    assert wf.url == GH + "/repos/acme/web/actions/workflows/deploy.yml/dispatches"
    assert wf.json == {"ref": "main", "inputs": {"v": "1"}}
    assert wf.headers["Authorization"] == "Bearer ghs_app"
    assert wf.headers["Accept"] == "application/vnd.github+json"
    assert wf.headers["X-GitHub-Api-Version"] == "2022-11-28"
    rd = s.build(
        "repository_dispatch",
        {"repository": "acme/web", "event_type": "deploy", "client_payload": {}, "secret": "ghe"},
        EVENT,
        KEY,
    )
    assert rd.url == GH + "/repos/acme/web/dispatches"
    assert rd.json == {"event_type": "deploy", "client_payload": {}}
    assert rd.headers["Authorization"] == "Bearer ghp_named"


def test_spinnaker_sends_parameters_and_the_event() -> None:
    target = {"url": "https://gate/webhooks/webhook/ritmo", "secret": "gate", "parameters": {}}
    req = sender({"gate": "g"}).build(
        "spinnaker", {**target, "secret_header": "X-Gate"}, EVENT, KEY
    )
    assert req.headers["X-Gate"] == "g"
    assert req.json == {"parameters": {}, "artifacts": [], "ritmo": EVENT}


def test_secrets_are_looked_up_by_name_and_missing_ones_say_what_to_set() -> None:
    assert find_secret({"slack_deploys": "u"}, "Slack-Deploys") == "u"
    with pytest.raises(MissingSecret, match="set RITMO_NOTIFY__SECRETS__CD_TOKEN"):
        sender().build("webhook", {"url": "https://cd/x", "secret": "cd-token"}, EVENT, KEY)
    with pytest.raises(Unsendable, match="no GitHub token"):
        sender().build("repository_dispatch", {"repository": "a/b", "event_type": "e"}, EVENT, KEY)
    with pytest.raises(Unsendable, match="not a URL"):
        sender({"s": "not-a-url"}).build("slack", {"secret": "s", "text": "t"}, EVENT, KEY)


# -- classifying responses (pure) -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, "delivered"),
        (204, {}, "delivered"),
        (408, {}, "retry"),
        (429, {}, "retry"),
        (500, {}, "retry"),
        (502, {}, "retry"),
        (503, {}, "retry"),
        (400, {}, "dead"),
        (401, {}, "dead"),
        (403, {}, "dead"),
        (404, {}, "dead"),
        (422, {}, "dead"),
        (301, {"Location": "https://elsewhere"}, "dead"),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(START) + 60)}, "retry"),
        (403, {"Retry-After": "60"}, "retry"),
    ],
)
def test_classify(status: int, headers: dict[str, str], expected: str) -> None:
    assert classify(status, headers, "", START).status == expected


def test_retry_after_in_seconds_dates_and_rate_limit_resets() -> None:
    assert retry_after({"Retry-After": "120"}, START) == 120.0
    assert retry_after({"Retry-After": "Tue, 14 Nov 2023 22:15:00 GMT"}, START) == 100.0
    assert retry_after({"Retry-After": "soon"}, START) is None
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(START) + 30)}
    assert retry_after(reset, START) == 30.0
    assert retry_after({}, START) is None
    outcome = classify(429, {"Retry-After": "7"}, '{"message": "slow down"}', START)
    assert outcome == Outcome("retry", "HTTP 429: slow down", 7.0)


# -- sending to a real local server -----------------------------------------------------


def test_a_webhook_reaches_the_server(server: RecordingServer) -> None:
    outcome = sender({"cd": "tok"}).send(
        "webhook", {"url": server.url + "/hook", "secret": "cd", "body": {"v": "1"}}, EVENT, KEY
    )
    assert outcome.status == "delivered"
    [seen] = server.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/hook", {"v": "1"})
    assert seen.headers["Idempotency-Key"] == KEY
    assert seen.headers["User-Agent"] == "ritmo"
    assert seen.headers["Authorization"] == "Bearer tok"
    assert seen.headers["Content-Type"] == "application/json"


def test_server_errors_retry_and_client_errors_are_dead(server: RecordingServer) -> None:
    target = {"url": server.url + "/hook"}
    server.reply = Reply(503, {"Retry-After": "30"}, b"maintenance")
    assert sender().send("webhook", target, EVENT, KEY) == Outcome(
        "retry", "HTTP 503: maintenance", 30.0
    )
    server.reply = Reply(400, {}, json.dumps({"error": "version is required"}).encode())
    assert sender().send("webhook", target, EVENT, KEY) == Outcome(
        "dead", "HTTP 400: version is required"
    )
    server.reply = Reply(302, {"Location": "/elsewhere"}, b"")
    assert sender().send("webhook", target, EVENT, KEY).status == "dead"
    assert len(server.seen) == 3  # the redirect was not followed


def test_a_server_that_is_down_is_retried_without_showing_the_slack_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRETPATH"
    outcome = sender({"slack": url}).send("slack", {"secret": "slack", "text": "t"}, EVENT, KEY)
    assert outcome.status == "retry"
    assert outcome.detail.startswith("ConnectionError")
    assert "SECRETPATH" not in outcome.detail


def test_a_server_that_never_answers_is_a_timeout_to_retry() -> None:
    # A listening socket nobody accepts from: the connection is made, no answer comes.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)
        port = hung.getsockname()[1]
        s = Sender({}, 0.2, clock=lambda: START)
        outcome = s.send("webhook", {"url": f"http://127.0.0.1:{port}/x"}, EVENT, KEY)
    assert outcome.status == "retry" and "Timeout" in outcome.detail


# -- GitHub over `responses` ------------------------------------------------------------

WORKFLOW = {"repository": "acme/web", "workflow": "deploy.yml", "ref": "main", "inputs": {}}


@responses.activate
def test_workflow_dispatch_204_is_delivered() -> None:
    responses.post(GH + "/repos/acme/web/actions/workflows/deploy.yml/dispatches", status=204)
    s = sender(github_token=lambda: "ghs_app")
    assert s.send("github_workflow", WORKFLOW, EVENT, KEY) == Outcome("delivered", "HTTP 204")


@responses.activate
def test_workflow_dispatch_422_is_dead_with_githubs_message() -> None:
    responses.post(
        GH + "/repos/acme/web/actions/workflows/deploy.yml/dispatches",
        status=422,
        json={
            "message": 'Unexpected inputs provided: ["nope"]',
            "documentation_url": "https://docs.github.com/rest/actions/workflows"
            "#create-a-workflow-dispatch-event",
            "status": "422",
        },
    )
    outcome = sender(github_token=lambda: "ghs_app").send("github_workflow", WORKFLOW, EVENT, KEY)
    assert outcome == Outcome("dead", 'HTTP 422: Unexpected inputs provided: ["nope"]')


@responses.activate
def test_github_rate_limit_is_retried_at_the_reset() -> None:
    responses.post(
        GH + "/repos/acme/web/dispatches",
        status=403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(START) + 900)},
        json={
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            "status": "403",
        },
    )
    target = {"repository": "acme/web", "event_type": "deploy", "client_payload": {}}
    outcome = sender(github_token=lambda: "ghs_app").send("repository_dispatch", target, EVENT, KEY)
    assert outcome.status == "retry" and outcome.retry_after == 900.0
    assert "rate limit" in outcome.detail


def test_a_failing_token_provider_is_retried() -> None:
    def broken() -> str:
        raise RuntimeError("GitHub is down")

    outcome = sender(github_token=broken).send("github_workflow", WORKFLOW, EVENT, KEY)
    assert outcome.status == "retry" and "GitHub is down" in outcome.detail
