"""Handlers against a fake HandlerContext: no git, no gpg, no database, no GitHub.

The fake has exactly the Protocol's members; each part records the calls made on it,
so a row says what a delivery makes Ritmo do (nothing, for the ones it ignores).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bot.config import Settings
from bot.statuses import RequestStatus
from bot.store.request_record import RequestRecord
from bot.webhooks.context import HandlerContext
from bot.webhooks.payloads import NotIndexedYet
from bot.webhooks.pull_requests import record_closed_promotion, reject_tampered_promotion
from bot.webhooks.pushes import follow_default_branch
from bot.webhooks.reviews import settle_reviewed_promotion
from bot.webhooks.router import Event
from tests.forge.github_sandbox import REPOSITORY
from tests.webhooks.hooks import payload

RITMO = "ritmo-app[bot]"
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"  # the head of pull request #7 in the samples
PUSHED = "9f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6"  # `after` in pull_request-synchronize
MERGE = "e5bd3914e2e596debea16f433f57875b5b90bcd6"
PENDING = RequestRecord(
    id="req-7", artifact_id="art-" + "0" * 20, app="web", version="1.2.3", from_env="staging",
    to_env="production", branch="ritmo/promote/web/production", head=HEAD, tip=HEAD,
    status=RequestStatus.PENDING, requested_by="alice", opened_at="2026-12-01T00:00:00Z",
)  # fmt: skip
MEMBERS = sorted(n for n, v in vars(HandlerContext).items() if isinstance(v, property))
SETTINGS = Settings(forge={"github": {"repository": REPOSITORY}}, manifests={"branch": "main"})

Call = tuple[Any, ...]


class Recorder:
    """One part of the context: any method call is recorded as (part.method, *args),
    keyword arguments last; `returns` answers by method name."""

    def __init__(self, part: str, calls: list[Call], **returns: Any) -> None:
        self._part, self._calls, self._returns = part, calls, returns

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((f"{self._part}.{method}", *args, *sorted(kwargs.items())))
            return self._returns.get(method)

        return call


def fake_context(calls: list[Call], request: RequestRecord | None = PENDING) -> HandlerContext:
    parts: dict[str, Any] = {name: Recorder(name, calls) for name in MEMBERS}
    parts.update(
        settings=SETTINGS,
        forge=SimpleNamespace(author=lambda: RITMO),
        requests_index=Recorder("requests_index", calls, by_forge_ref=request),
        requests=Recorder("requests", calls, merged_on_forge=True, settle="pending"),
    )
    return cast(HandlerContext, SimpleNamespace(**parts))


def event(name: str, **changes: Any) -> Event:
    """A sample delivery; `changes` set payload keys, "a.b" reaching into objects."""
    body = copy.deepcopy(payload(name))
    for path, value in changes.items():
        *outer, last = path.split(".")
        target = body
        for key in outer:
            target = target[key]
        target[last] = value
    return Event(name.split("-")[0], f"delivery-{name}", body)


def test_the_fake_has_only_what_handlers_use() -> None:
    assert MEMBERS == [
        "deployments", "drift", "environments", "forge", "index", "policy", "promotions",
        "requests", "requests_index", "settings", "writer",
    ]  # fmt: skip


LOOKUP = ("requests_index.by_forge_ref", "7")
CLOSED_MESSAGE = "pull request #7 was closed by alice without merging"


@pytest.mark.parametrize(
    ("handler", "delivery", "expected"),
    [
        # push: a person's push to the default branch is followed at once, drift settled
        (follow_default_branch, event("push"), [("writer.sync",), ("drift.settle",)]),
        (follow_default_branch, event("push", **{"sender.login": RITMO}), []),
        (follow_default_branch, event("push", **{"sender.login": RITMO.upper()}), []),
        (follow_default_branch, event("push", ref="refs/heads/other"), []),
        (follow_default_branch, event("push", deleted=True), []),
        (follow_default_branch, event("push", **{"repository.full_name": "acme/other"}), []),
        # synchronize: someone else's push to a pending request's branch
        (
            reject_tampered_promotion,
            event("pull_request-synchronize"),
            [LOOKUP, ("requests.tampered", "req-7", "mallory", PUSHED)],
        ),
        (
            reject_tampered_promotion,
            event("pull_request-synchronize", after=HEAD),  # Ritmo's own push: the tip
            [LOOKUP],
        ),
        (
            reject_tampered_promotion,
            event("pull_request-synchronize", **{"pull_request.head.ref": "feature/x"}),
            [],
        ),
        (
            reject_tampered_promotion,
            event("pull_request-synchronize", **{"pull_request.head.repo.full_name": "eve/fork"}),
            [],
        ),
        (
            reject_tampered_promotion,
            event("pull_request-synchronize", **{"repository.full_name": "acme/other"}),
            [],
        ),
        # closed: unmerged by a person rejects; Ritmo's own close or merge is already saved
        (
            record_closed_promotion,
            event("pull_request-closed"),
            [
                LOOKUP,
                ("requests.close", "req-7", "rejected", CLOSED_MESSAGE, ("tell_forge", False)),
            ],
        ),
        (
            record_closed_promotion,
            event("pull_request-closed", **{"sender.login": RITMO}),
            [LOOKUP],
        ),
        (
            record_closed_promotion,
            event(
                "pull_request-merged",
                **{
                    "pull_request.merge_commit_sha": MERGE,
                    "pull_request.merged_at": "2026-03-02T12:00:00Z",
                },
            ),
            [
                LOOKUP,
                (
                    "requests.merged_on_forge",
                    "req-7",
                    MERGE,
                    "alice",
                    HEAD,
                    datetime(2026, 3, 2, 12, tzinfo=UTC),
                ),
            ],
        ),
        (
            record_closed_promotion,
            event("pull_request-merged", **{"pull_request.merged_by.login": RITMO}),
            [LOOKUP],
        ),
        # a review re-reads every review from the forge
        (
            settle_reviewed_promotion,
            event("pull_request_review-submitted"),
            [LOOKUP, ("requests.settle", "req-7")],
        ),
        (
            settle_reviewed_promotion,
            event("pull_request_review-submitted", **{"pull_request.head.ref": "main"}),
            [],
        ),
    ],
)
def test_what_a_delivery_makes_ritmo_do(
    handler: Callable[[Event, HandlerContext], None], delivery: Event, expected: list[Call]
) -> None:
    calls: list[Call] = []
    handler(delivery, fake_context(calls))
    assert calls == expected


@pytest.mark.parametrize("status", ["merged", "rejected", "superseded", "expired"])
def test_a_request_that_ended_is_left_alone(status: str) -> None:
    calls: list[Call] = []
    context = fake_context(calls, replace(PENDING, status=RequestStatus(status)))
    for handler, name in [
        (reject_tampered_promotion, "pull_request-synchronize"),
        (record_closed_promotion, "pull_request-closed"),
        (record_closed_promotion, "pull_request-merged"),
    ]:
        handler(event(name), context)
    assert calls == [LOOKUP] * 3


def test_a_request_not_recorded_yet_is_retried() -> None:
    calls: list[Call] = []
    with pytest.raises(NotIndexedYet, match="#7"):
        settle_reviewed_promotion(event("pull_request_review-submitted"), fake_context(calls, None))
    assert calls == [LOOKUP]
