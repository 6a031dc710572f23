"""A nested-alias bomb as .ritmo/policy.yaml on main (issue 14, finding 2).

Someone with push access commits it unsigned: it is not obeyed (only trusted commits move
the policy) but Ritmo still reads it, to follow the branch and to judge drift. Reading it
must cost nothing: registrations stay fast while it sits there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.runtime import Runtime
from tests.helpers import TWO_APPROVERS_POLICY, alias_bomb, artifact_body, bearer, git


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY


def _push(work: Path, path: str, text: str) -> str:
    """Mallory (no signature) commits `text` at `path` and pushes to main."""
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    who = ["-c", "user.name=Mallory", "-c", "user.email=mallory@example.com"]
    git(work, "add", path)
    git(work, *who, "commit", "--quiet", "--no-gpg-sign", "-m", f"edit {path}")
    git(work, "pull", "--quiet", "--rebase", "--no-gpg-sign", "origin", "main")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD").strip()


def test_branch_moves_and_registrations_stay_fast_with_a_bomb_on_main(
    runtime: Runtime, client: FlaskClient, tokens: dict[str, str], remote: Path, tmp_path: Path
) -> None:
    """Each fetch judges the new commits for drift, with the policy as it stood before
    them: the bomb, read again for every team's edit of a manifest (9**7 strings: seconds
    per read without the limits, and it was read on every branch move)."""
    work = tmp_path / "mallory"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    bomb = _push(work, ".ritmo/policy.yaml", alias_bomb(7, TWO_APPROVERS_POLICY))
    runtime.writer.sync()  # Ritmo fetches (a push webhook or the scheduler)
    runtime.drift.settle()
    assert runtime.policy.untrusted_commits() == [bomb]
    for i in range(3):
        _push(work, "apps/web/base/deployment.yaml", f"# a team's own manifest, edit {i}\n")
        started = time.perf_counter()
        runtime.writer.sync()
        runtime.drift.settle()
        resp = client.post(
            "/api/v1/artifacts",
            json=artifact_body(version=f"2.0.{i}"),
            headers=bearer(tokens["ci"]),
        )
        took = time.perf_counter() - started
        assert resp.status_code == 201, resp.json
        assert resp.json["promotion_status"] == "staging"  # the trusted policy, in force
        assert took < 2.0, took
