"""Shared by the behaviour tests: a GitHub runtime on a real bare remote, signed deliveries
through the real Flask app, and payloads from tests/samples/github/webhooks/.

Test modules take the fixtures by name (`rt = hooks.rt`), so pytest finds them there.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings
from bot.runtime import Runtime
from bot.webhooks.verify import signature_for
from tests.forge.github_sandbox import (
    POLICY,
    REPOSITORY,
    SAMPLES,
    WEBHOOK_SECRET,
    GitHubSandbox,
    sandboxed_runtime,
)
from tests.helpers import artifact_body, bearer, git, kill_gpg_agent

HOOK_SAMPLES = SAMPLES / "webhooks"
BRANCH = "ritmo/promote/web/production"
OVERLAY = "apps/web/overlays/production/kustomization.yaml"


@pytest.fixture
def remote_policy() -> str:
    return POLICY


class Clock:
    """The delivery worker's clock, moved by hand past each retry's backoff."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    """forge.kind github; deliveries wait in the queue until the test drains it."""
    runtime = sandboxed_runtime(settings)
    runtime.webhooks.notify = lambda: None  # type: ignore[method-assign]  # no background worker
    runtime.webhooks._clock = Clock()
    yield runtime
    runtime.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


@pytest.fixture
def hook(rt: Runtime) -> FlaskClient:
    return create_app(rt.settings, rt).test_client()


# -- payloads and deliveries ---------------------------------------------------------------


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HOOK_SAMPLES / f"{name}.json").read_text())
    return data


def stamp(minutes: float = 0) -> str:
    """Now plus `minutes`, as GitHub writes times."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def review_event(
    action: str, login: str, state: str, head: str, rid: int = 80, ref: str = BRANCH
) -> dict[str, Any]:
    """A pull_request_review delivery on #7 by `login` (state as webhooks write it)."""
    sample = (
        "pull_request_review-dismissed"
        if action == "dismissed"
        else ("pull_request_review-submitted")
    )
    event = copy.deepcopy(payload(sample))
    event["action"] = action
    event["review"].update(id=rid, state=state, commit_id=head, submitted_at=stamp())
    event["review"]["user"]["login"] = login
    event["pull_request"]["head"].update(ref=ref, sha=head)
    event["sender"]["login"] = login
    return event


def deliver(
    client: FlaskClient, event: str, body: dict[str, Any], delivery: str | None = None
) -> Any:
    """POST a signed delivery to /webhooks/github, as GitHub does."""
    raw = json.dumps(body).encode()
    return client.post(
        "/webhooks/github",
        data=raw,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature_for(WEBHOOK_SECRET, raw),
            "User-Agent": "GitHub-Hookshot/044aadd",
            "Content-Type": "application/json",
        },
    )


def queued(client: FlaskClient, event: str, body: dict[str, Any], delivery: str | None = None
           ) -> str:  # fmt: skip
    """Deliver and check it was queued; returns the delivery id."""
    delivery = delivery or str(uuid.uuid4())
    resp = deliver(client, event, body, delivery)
    assert resp.status_code == 202 and resp.json["status"] == "queued", resp.json
    return delivery


def drain_later(rt: Runtime, seconds: float = 600) -> int:
    """Move the worker's clock past any backoff, then handle what is due."""
    rt.webhooks._clock.now += seconds  # type: ignore[attr-defined]
    return rt.webhooks.drain()


# -- a promotion request on GitHub ---------------------------------------------------------


def open_promotion(client: FlaskClient, rt: Runtime, gh: GitHubSandbox) -> dict[str, Any]:
    """web 2.0.0 reaches staging by policy; promoting it to production opens PR #7."""
    ci = rt.tokens.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ])
    promoter = rt.tokens.create("release-bot", [Scope.PROMOTIONS_WRITE])
    art = client.post("/api/v1/artifacts", json=artifact_body(version="2.0.0"), headers=bearer(ci))
    assert art.status_code == 201 and art.json["promotion_status"] == "staging", art.json
    gh.opening()
    gh.reviews(body=[])
    gh.app()
    gh.team("ops")
    gh.team("security")
    gh.comment()
    gh.close()
    resp = client.post(
        f"/api/v1/artifacts/{art.json['id']}/promote",
        json={"from": "staging", "to": "production"},
        headers=bearer(promoter),
    )
    assert resp.status_code == 202, resp.json
    request: dict[str, Any] = resp.json["request"]
    assert request["forge_ref"] == "7"
    return request


def statuses(gh: GitHubSandbox, sha: str) -> list[tuple[str, str]]:
    return [
        (s["state"], s["description"])
        for s in gh.sent("POST", f"/repos/{REPOSITORY}/statuses/{sha}")
    ]


def as_person(work: Path, *args: str) -> str:
    return git(work, "-c", "user.name=Mallory", "-c", "user.email=mallory@example.com", *args)


def clone(remote: Path, where: Path) -> Path:
    git(where.parent, "clone", "--quiet", str(remote), str(where))
    return where


def head_of(remote: Path, ref: str = "main") -> str:
    return git(remote, "rev-parse", ref).strip()
