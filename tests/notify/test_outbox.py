"""The outbox end to end: emit, store, deliver to a real local server, survive restarts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import responses
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bot.notify.outbox import Outbox
from bot.notify.render import render_all
from tests.notify.conftest import (
    Clock,
    PolicyHolder,
    RecordingServer,
    Reply,
    context,
    free_port,
    policy_with,
)

MakeOutbox = Callable[..., Outbox]


def webhook_policy(url: str, **extra: Any) -> list[dict[str, Any]]:
    target = {"url": url, "secret": "cd_token", "body": {"version": "${VERSION}"}, **extra}
    return [{"on": ["promoted"], "webhook": target}]


def test_emit_then_deliver(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook_policy(server.url + "/deploy"))
    outbox = make_outbox()
    [row_id] = outbox.emit("promoted", context())
    assert outbox.deliver_due() == 1
    [seen] = server.seen
    assert seen.body == {"version": "1.2.3"}
    assert seen.headers["Authorization"] == "Bearer s3cret-cd-token"
    row = outbox.get(row_id)
    assert row is not None and row.status == "delivered" and row.attempts == 1
    assert seen.headers["Idempotency-Key"] == row.key
    assert row.delivered_at == "2023-11-14T22:13:20Z"
    assert "s3cret" not in str(row.request)  # secrets are looked up when sent, never stored
    assert outbox.deliver_due() == 0


def test_the_same_event_twice_is_queued_once(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    outbox = make_outbox()
    assert len(outbox.emit("promoted", context("pro-1"))) == 1
    assert outbox.emit("promoted", context("pro-1")) == []
    assert len(outbox.emit("promoted", context("pro-2"))) == 1
    assert outbox.emit("deployed", context("pro-1")) == []  # no integration wants it
    assert outbox.store.counts()["queued"] == 2


def test_emit_is_one_transaction(
    server: RecordingServer,
    policy: PolicyHolder,
    make_outbox: MakeOutbox,
    engines: Callable[[], Engine],
) -> None:
    policy.policy = policy_with(
        webhook_policy(server.url + "/a") + webhook_policy(server.url + "/b")
    )
    engine = engines()
    outbox = make_outbox(engine)
    begun: list[object] = []
    sa.event.listen(engine, "begin", lambda conn: begun.append(conn))
    assert len(outbox.emit("promoted", context())) == 2
    assert len(begun) == 1


def test_queued_work_keeps_what_the_policy_said_when_emitted(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook_policy(server.url + "/old"))
    outbox = make_outbox()
    outbox.emit("promoted", context())
    policy.policy = policy_with(webhook_policy(server.url + "/new", method="PUT"))
    outbox.deliver_due()
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/old")]


def test_target_down_then_restart_then_up_delivers_exactly_once(
    policy: PolicyHolder, make_outbox: MakeOutbox, engines: Callable[[], Engine], clock: Clock
) -> None:
    port = free_port()
    policy.policy = policy_with(webhook_policy(f"http://127.0.0.1:{port}/deploy"))
    first_engine = engines()
    first = make_outbox(first_engine)
    [row_id] = first.emit("promoted", context())
    key = render_all(policy().integrations, "promoted", context())[0].key

    assert first.deliver_due() == 1  # the target is down
    row = first.get(row_id)
    assert row is not None and row.status == "queued" and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith("ConnectionError")
    assert row.next_attempt_at == clock.now + 2.0  # 2 s backoff at full jitter 1.0

    # The process goes away; a new one opens the same database file.
    first.stop()
    del first
    first_engine.dispose()
    second = make_outbox(engines())

    target = RecordingServer(port)  # the target comes up
    try:
        assert second.deliver_due() == 0  # not due yet
        clock.advance(2.0)
        assert second.deliver_due() == 1
        assert second.deliver_due() == 0
        clock.advance(3600)
        assert second.deliver_due() == 0
        [seen] = target.seen
    finally:
        target.close()
    assert seen.headers["Idempotency-Key"] == key
    row = second.get(row_id)
    assert row is not None and row.status == "delivered" and row.attempts == 2


def test_a_delivery_in_flight_at_a_crash_is_resent_with_the_same_key(
    server: RecordingServer,
    policy: PolicyHolder,
    make_outbox: MakeOutbox,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    first = make_outbox()
    [row_id] = first.emit("promoted", context())

    def crash(*_args: object) -> None:
        raise SystemExit("killed after sending, before recording it")

    monkeypatch.setattr(first.store, "delivered", crash)
    with pytest.raises(SystemExit):
        first.deliver_due()
    row = first.get(row_id)
    assert row is not None and row.status == "delivering"

    second = make_outbox()  # the next process, or another replica
    assert second.deliver_due() == 0  # the dead holder's lease has not run out yet
    clock.advance(second.store.lease)
    assert second.deliver_due() == 1  # taken over: the dead holder's try counts as failed
    taken = second.get(row_id)
    assert taken is not None and (taken.status, taken.attempts) == ("queued", 1)
    assert "stopped before recording the outcome" in (taken.last_error or "")
    clock.advance(60)  # past the backoff
    assert second.deliver_due() == 1
    assert [s.headers["Idempotency-Key"] for s in server.seen] == [row.key, row.key]
    done = second.get(row_id)
    assert done is not None and done.status == "delivered"


def test_a_row_whose_sender_always_dies_goes_dead(
    server: RecordingServer,
    policy: PolicyHolder,
    make_outbox: MakeOutbox,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each holder dies inside the attempt (say the request crashes the process): after
    max_attempts such takeovers the row is a dead letter instead of a crash loop."""
    policy.policy = policy_with(webhook_policy(server.url))
    [row_id] = make_outbox(max_attempts=3).emit("promoted", context())
    crashes = 0
    for _ in range(10):
        holder = make_outbox(max_attempts=3)

        def crash(*_args: object) -> None:
            raise SystemExit("killed inside the attempt")

        monkeypatch.setattr(holder, "_attempt", crash)
        clock.advance(3600)  # past any lease and backoff
        try:
            holder.deliver_due()  # a takeover counts the dead try, then waits its backoff
        except SystemExit:
            crashes += 1
        row = holder.get(row_id)
        assert row is not None
        if row.status == "dead":
            break
    assert crashes == 3 and row.attempts == 3, row
    assert "gave up after 3 attempts" in (row.last_error or "")
    assert holder.deliver_due() == 0  # a dead letter waits for `ritmo outbox retry`


def test_a_permanent_failure_is_dead_at_once(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    server.reply = Reply(404, {}, b'{"message": "no such pipeline"}')
    outbox = make_outbox(max_attempts=5)
    [row_id] = outbox.emit("promoted", context())
    outbox.deliver_due()
    row = outbox.get(row_id)
    assert row is not None and row.status == "dead" and row.attempts == 1
    assert row.last_error == "HTTP 404: no such pipeline"


def test_retries_back_off_with_jitter_then_give_up(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox, clock: Clock
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    server.reply = Reply(503, {}, b"busy")
    jitter = iter([0.5, 0.25, 1.0, 0.75])
    outbox = make_outbox(max_attempts=5, random=lambda: next(jitter))
    [row_id] = outbox.emit("promoted", context())
    delays = []
    for _ in range(4):
        assert outbox.deliver_due() == 1
        row = outbox.get(row_id)
        assert row is not None and row.status == "queued"
        delays.append(row.next_attempt_at - clock.now)
        clock.now = row.next_attempt_at
    # ceilings 2, 4, 8, 16 s, each scaled by its jitter
    assert delays == [1.0, 1.0, 8.0, 12.0]
    assert outbox.deliver_due() == 1
    row = outbox.get(row_id)
    assert row is not None and row.status == "dead" and row.attempts == 5
    assert row.last_error == "gave up after 5 attempts; last: HTTP 503: busy"
    assert len(server.seen) == 5


def test_retry_after_is_honoured(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox, clock: Clock
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    server.reply = Reply(429, {"Retry-After": "120"}, b"")
    outbox = make_outbox()
    [row_id] = outbox.emit("promoted", context())
    outbox.deliver_due()
    row = outbox.get(row_id)
    assert row is not None and row.next_attempt_at == clock.now + 120


def test_a_missing_secret_is_a_dead_letter_saying_what_to_set(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    outbox = make_outbox(secrets={})
    [row_id] = outbox.emit("promoted", context())
    outbox.deliver_due()
    row = outbox.get(row_id)
    assert row is not None and row.status == "dead"
    assert row.last_error is not None and "set RITMO_NOTIFY__SECRETS__CD_TOKEN" in row.last_error
    assert server.seen == []


def test_every_kind_through_the_outbox(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    slack_url = server.url + "/services/T0/B0/XYZ"
    policy.policy = policy_with(
        [
            {
                "on": "promoted",
                "slack": {"secret": "slack", "text": "${APP} ${VERSION} in ${ENVIRONMENT}"},
            },
            {
                "on": "promoted",
                "spinnaker": {
                    "url": server.url + "/webhooks/webhook/ritmo",
                    "secret": "gate",
                    "parameters": {"version": "${VERSION}", "tag": "${GIT_TAG}"},
                },
            },
            {
                "on": "promoted",
                "github_workflow": {
                    "repository": "acme/web",
                    "workflow": "deploy.yml",
                    "inputs": {"version": "${VERSION}", "environment": "${ENVIRONMENT}"},
                },
            },
            {
                "on": "promoted",
                "repository_dispatch": {
                    "repository": "acme/web",
                    "event_type": "deploy",
                    "client_payload": {"artifact_url": "${ARTIFACT_URL}"},
                },
            },
        ]
    )
    outbox = make_outbox(
        secrets={"slack": slack_url, "gate": "gate-secret"},
        github_token=lambda: "ghs_installation",
    )
    ids = outbox.emit("promoted", context())
    assert len(ids) == 4
    with responses.RequestsMock() as gh:
        gh.add_passthru(server.url)
        wf = gh.post(
            "https://api.github.com/repos/acme/web/actions/workflows/deploy.yml/dispatches",
            status=204,
        )
        rd = gh.post("https://api.github.com/repos/acme/web/dispatches", status=204)
        assert outbox.deliver_due() == 4
    assert all(r.status == "delivered" for r in outbox.search()[0])
    by_path = {s.path: s for s in server.seen}
    assert by_path["/services/T0/B0/XYZ"].body == {"text": "web 1.2.3 in staging"}
    gate = by_path["/webhooks/webhook/ritmo"]
    assert gate.headers["X-Ritmo-Token"] == "gate-secret"
    assert gate.body["parameters"] == {"version": "1.2.3", "tag": "v1.2.3"}
    assert gate.body["ritmo"]["event"] == "promoted"
    assert gate.body["ritmo"]["artifact"]["id"] == "art-0123456789abcdef"
    wf_call = wf.calls[0].request
    assert wf_call.headers["Authorization"] == "Bearer ghs_installation"
    assert wf_call.body is not None
    assert json.loads(wf_call.body) == {
        "ref": "main",
        "inputs": {"version": "1.2.3", "environment": "staging"},
    }
    assert json.loads(rd.calls[0].request.body or b"{}") == {
        "event_type": "deploy",
        "client_payload": {"artifact_url": "s3://artifacts/web-1.2.3.tar"},
    }
    keys = {s.headers["Idempotency-Key"] for s in server.seen}
    keys |= {wf_call.headers["Idempotency-Key"], rd.calls[0].request.headers["Idempotency-Key"]}
    assert len(keys) == 4


def test_github_404_is_a_dead_letter(policy: PolicyHolder, make_outbox: MakeOutbox) -> None:
    policy.policy = policy_with(
        [{"on": "promoted", "repository_dispatch": {"repository": "acme/gone", "event_type": "d"}}]
    )
    outbox = make_outbox(github_token=lambda: "ghs_installation")
    [row_id] = outbox.emit("promoted", context())
    with responses.RequestsMock() as gh:
        gh.post(
            "https://api.github.com/repos/acme/gone/dispatches",
            status=404,
            json={
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/repos/repos"
                "#create-a-repository-dispatch-event",
                "status": "404",
            },
        )
        outbox.deliver_due()
    row = outbox.get(row_id)
    assert row is not None and (row.status, row.last_error) == ("dead", "HTTP 404: Not Found")


def test_emit_never_raises_for_a_broken_policy_or_database(
    policy: PolicyHolder,
    make_outbox: MakeOutbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    server: RecordingServer,
) -> None:
    outbox = make_outbox()

    def broken() -> Any:
        raise RuntimeError("no policy")

    monkeypatch.setattr(outbox, "_policy", broken)
    with caplog.at_level(logging.ERROR, logger="bot.notify.outbox"):
        assert outbox.emit("promoted", context()) == []
    assert "could not queue the promoted notifications of web" in caplog.text
    monkeypatch.setattr(outbox, "_policy", policy)
    policy.policy = policy_with(webhook_policy(server.url))

    def down(*_args: object) -> list[int]:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(outbox.store, "enqueue", down)
    assert outbox.emit("promoted", context()) == []
    with pytest.raises(ValueError, match="unknown event"):
        outbox.emit("promotion", context())  # a caller's bug is not swallowed


def test_the_worker_thread_delivers_when_woken(
    server: RecordingServer, policy: PolicyHolder, make_outbox: MakeOutbox
) -> None:
    policy.policy = policy_with(webhook_policy(server.url))
    outbox = make_outbox(idle_wait=5.0)
    outbox.start()
    outbox.start()  # idempotent
    [row_id] = outbox.emit("promoted", context())
    assert server.got.wait(2.0)
    outbox.stop()
    outbox.stop()
    row = outbox.get(row_id)
    assert row is not None and row.status == "delivered"
    assert len(server.seen) == 1
