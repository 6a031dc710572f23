"""A request waiting through many scheduler passes posts its `ritmo/approval` status when
the status changes, not on every pass: GitHub keeps at most 1,000 statuses per commit and
context, so a week of 5-minute passes would hide the final success or failure."""

from __future__ import annotations

from flask.testing import FlaskClient

from bot.runtime import Runtime
from tests.forge.github_sandbox import GitHubSandbox, review
from tests.webhooks import hooks
from tests.webhooks.hooks import open_promotion, stamp, statuses

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


def test_a_request_waiting_100_passes_posts_at_most_2_statuses(
    hook: FlaskClient, rt: Runtime, gh: GitHubSandbox
) -> None:
    request = open_promotion(hook, rt, gh)
    head = request["head"]
    for _ in range(100):
        rt.requests.expire_due()  # the scheduler's pass over pending requests
    posted = statuses(gh, head)
    assert 1 <= len(posted) <= 2, posted
    assert all(state == "pending" for state, _ in posted)

    # A change is still posted: one approval moves the progress.
    gh.reviews(body=[review("alice", "APPROVED", head, stamp(-1), rid=91)])
    for _ in range(10):
        rt.requests.expire_due()
    moved = statuses(gh, head)[len(posted) :]
    assert len(moved) == 1 and moved[0][1].startswith("1/2 approvals"), moved
