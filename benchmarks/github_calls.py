"""GitHub API calls per promotion operation, counted by the forge itself (`GitHubForge.calls`).

GitHub is served by `responses` from tests/samples/github/ (nothing leaves the process); the
forge counts every HTTP request PyGithub sends, retries and token exchanges included. The
operations run in the order RequestService runs them:

- open: `opened` on a fresh forge (token exchange, pull request, team reviewers, status);
- review event, warm caches: `reviews`, `author` and `memberships` (what `decide` asks),
  then `progressed` with the pending decision;
- merge: the same decision turning approved; the merge itself is Ritmo's signed push to git.

    .venv/bin/python benchmarks/github_calls.py
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot.forge import RequestView  # noqa: E402
from bot.forge.github import GitHubForge  # noqa: E402
from bot.policy.evaluate import Decision, PromotionRequest, evaluate  # noqa: E402
from tests.forge.github_sandbox import GitHubSandbox, forge, policy, review, sandbox  # noqa: E402

HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
VIEW = RequestView(
    id="req-6dcb09b5b57875f3",
    app="web",
    version="2.0.0",
    from_env="staging",
    to_env="production",
    branch="ritmo/promote/web/production",
    head=HEAD,
    requested_by="release-bot",
    title="Promote web 2.0.0 to production",
    body="## Promote web 2.0.0 to production",
    groups=("ops-team", "security-team"),
    forge_ref="7",
)
OPENED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Row:
    operation: str
    calls: Counter[str]
    target: int

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _decide(github: GitHubForge) -> Decision:
    """What RequestService.decide asks of the forge."""
    current = policy()
    reviews = github.reviews(VIEW) or []
    request = PromotionRequest(
        app=VIEW.app, version=VIEW.version, from_env=VIEW.from_env, to_env=VIEW.to_env,
        author=github.author(), requested_by=VIEW.requested_by, head=VIEW.head,
        opened_at=OPENED_AT,
    )  # fmt: skip
    return evaluate(current, request, reviews, github.memberships(current, VIEW.groups), NOW)


def _measure(github: GitHubForge, run: Callable[[], object]) -> Counter[str]:
    before = Counter(github.calls)
    run()
    return github.calls - before


def main() -> int:
    rows: list[Row] = []
    with sandbox() as gh:
        _register(gh)
        github = forge()
        rows.append(Row("open a promotion PR (reviewers, status)", _measure(
            github, lambda: github.opened(VIEW)), 6))  # fmt: skip

        # The first evaluation fills the caches: the bot login and the two teams.
        cold = _measure(github, lambda: github.progressed(VIEW, _decide(github)))
        rows.append(Row("evaluate, cold caches (reference)", cold, 0))

        gh.reviews(body=[review("bob", "APPROVED", HEAD, "2026-03-02T10:00:00Z")])
        pending: list[Decision] = []

        def review_event() -> None:
            decision = _decide(github)
            pending.append(decision)
            github.progressed(VIEW, decision)

        rows.append(Row("evaluate a review event, warm caches", _measure(github, review_event), 3))
        assert pending[0].status == "pending", pending[0]

        gh.reviews(body=[
            review("bob", "APPROVED", HEAD, "2026-03-02T10:00:00Z", rid=1),
            review("alice", "APPROVED", HEAD, "2026-03-02T11:00:00Z", rid=2),
        ])  # fmt: skip
        approved: list[Decision] = []
        rows.append(Row("merge (approval seen; merge is a git push)", _measure(
            github, lambda: approved.append(_decide(github))), 3))  # fmt: skip
        assert approved[0].status == "approved", approved[0]
        github.close()

    print(f"{'operation':<46} {'calls':>5} {'target':>7}  result   by forge operation")
    for row in rows:
        target = f"<= {row.target}" if row.target else "-"
        result = "-" if not row.target else ("met" if row.total <= row.target else "MISSED")
        detail = ", ".join(f"{k} {v}" for k, v in sorted(row.calls.items()))
        print(f"{row.operation:<46} {row.total:>5} {target:>7}  {result:<7}  {detail}")
    return 0


def _register(gh: GitHubSandbox) -> None:
    gh.opening(HEAD)
    gh.reviews(body=[])
    gh.app()
    gh.team("ops")
    gh.team("security")


if __name__ == "__main__":
    sys.exit(main())
