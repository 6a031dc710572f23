"""`ritmo verify` goes on from the walk it kept for an earlier tip (bot/audit/tip_cache.py),
and says exactly what a full run without the cache says: the same lines, the same exit
code, over a real history (registrations, promotions, a request merged after two
approvals, a deployment and a rollback), then after Ritmo's commits, a person's forged,
unsigned and merged ones, and a branch reset to another line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskClient

from bot.audit import walk as walk_module
from bot.audit.tip_cache import TipCache
from bot.audit.verify import RecordFact, VerifyCommit
from bot.audit.walk import WalkState
from bot.config import Settings
from bot.policy.load import default_policy
from bot.runtime import Runtime
from bot.trust.drift import PinMove
from tests.audit.test_trail import OVERLAY, POLICY, _history, _register, _verify
from tests.helpers import git, remote_refs


@pytest.fixture
def remote_policy() -> str:
    return POLICY


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The revisions each walk read the first-parent line of."""
    seen: list[str] = []
    real = walk_module._line

    def spy(mirror: object, rev: str) -> object:
        seen.append(rev)
        return real(mirror, rev)  # type: ignore[arg-type]

    monkeypatch.setattr(walk_module, "_line", spy)
    return seen


def _same_as_full(settings: Settings, reads: list[str], resumed_from: str | None) -> Result:
    """A run with the cache, then one without: the same output; the first went on from
    `resumed_from` (None: it walked the whole line)."""
    tip = remote_refs(Path(str(settings.remote_url)))["refs/heads/main"]
    del reads[:]
    kept = _verify(settings)
    assert reads == [f"{resumed_from}..{tip}" if resumed_from else tip], reads
    full = _verify(settings, "--no-cache")
    assert (kept.exit_code, kept.stdout, kept.stderr) == (full.exit_code, full.stdout, full.stderr)
    return kept


class TestVerifyGoesOnFromTheKeptTip:
    def test_resumed_runs_say_what_full_runs_say(
        self,
        client: FlaskClient,
        runtime: Runtime,
        tokens: dict[str, str],
        settings: Settings,
        remote: Path,
        tmp_path: Path,
        reads: list[str],
    ) -> None:
        def tip() -> str:
            return remote_refs(remote)["refs/heads/main"]

        _history(client, runtime, tokens)
        first = tip()
        assert _same_as_full(settings, reads, None).exit_code == 0
        assert _same_as_full(settings, reads, first).exit_code == 0  # the same tip: nothing new

        _register(client, tokens["ci"], "2.0.0")
        assert _same_as_full(settings, reads, first).exit_code == 0
        ritmo_tip = tip()

        # A person's commits after the kept tip: each is still caught.
        person = tmp_path / "person"
        git(tmp_path, "clone", "--quiet", str(remote), str(person))
        who = ["-c", "user.name=Eve", "-c", "user.email=eve@example.com"]

        def commit(message: str, **pins: str) -> str:
            for env, version in pins.items():
                path = person / OVERLAY.format(env=env)
                text = re.sub(r'newTag: "?[^"\s]+"?', f'newTag: "{version}"', path.read_text())
                path.write_text(text)
            if not pins:
                (person / "NOTES.md").write_text(message)
            git(person, "add", "-A")
            git(person, *who, "commit", "--quiet", "-m", message)
            return git(person, "rev-parse", "HEAD").strip()

        def force() -> None:  # the remote refuses a forced push: as an administrator would
            sha = git(person, "rev-parse", "HEAD").strip()
            git(person, "push", "--quiet", "origin", f"HEAD:refs/heads/line-{sha}")
            git(remote, "update-ref", "refs/heads/main", sha)

        forged = commit("Register web 9.0.0\n\nRitmo-Artifact: art-forged\nRitmo-Build: b-9")
        git(person, "push", "--quiet", "origin", "main")
        broken = _same_as_full(settings, reads, ritmo_tip)
        assert broken.exit_code == 1
        assert f"{forged} untrusted-signature" in broken.stdout

        hand = commit("Pin production by hand", production="2.0.0")
        git(person, "push", "--quiet", "origin", "main")
        broken = _same_as_full(settings, reads, forged)
        assert f"{hand} unsigned-pin" in broken.stdout
        assert f"{hand} skipped-environment" in broken.stdout
        assert f"{forged} untrusted-signature" in broken.stdout  # what was before stays

        # A merge of a side branch that pins staging: its commits come in with it.
        git(person, "checkout", "--quiet", "-b", "hotfix")
        side = commit("Pin staging\n\nRitmo-Promotion: dev -> staging", staging="2.0.0")
        git(person, "checkout", "--quiet", "main")
        commit("Notes")
        git(person, *who, "merge", "--quiet", "--no-ff", "-m", "Merge hotfix", "hotfix")
        merge = git(person, "rev-parse", "HEAD").strip()
        git(person, "push", "--quiet", "origin", "main")
        merged = _same_as_full(settings, reads, hand)
        assert f"{merge} unrecorded-merge" in merged.stdout
        assert f"{side} untrusted-signature" in merged.stdout

        # Reset to Ritmo's line and then on a different one: the kept walks do not apply
        # to the new commit's line, but the one for ritmo_tip does when it is the base.
        git(remote, "update-ref", "refs/heads/main", ritmo_tip)
        assert _same_as_full(settings, reads, ritmo_tip).exit_code == 0
        git(person, "reset", "--quiet", "--hard", first)
        other = commit("Another line", dev="9.9.9")
        force()
        reset = _same_as_full(settings, reads, first)
        assert f"{other} unknown-version" in reset.stdout
        git(person, "commit", "--quiet", "--amend", "-m", "Rewritten")
        rewritten = git(person, "rev-parse", "HEAD").strip()
        force()
        assert rewritten != other
        assert f"{rewritten} unknown-version" in _same_as_full(settings, reads, first).stdout
        # A line that none of the kept tips is on: the whole line is walked.
        git(person, "reset", "--quiet", "--hard", f"{first}~1")
        elsewhere = commit("Yet another line", dev="8.8.8")
        force()
        assert f"{elsewhere} unknown-version" in _same_as_full(settings, reads, None).stdout


def _commit(sha: str, policy: Any = None) -> VerifyCommit:
    return VerifyCommit(
        sha=sha, parents=("p" * 40,), trailers={"Ritmo-Artifact": ["art-1"]}, signature="G",
        signer="F" * 40, environments=("dev", "prod"),
        pins=(PinMove("web", "dev", "apps/web/dev.yaml", None, "1.0.0"),),
        records=(RecordFact("art-1", "web", "1.0.0", frozenset({"1.0.0"})),), policy=policy,
    )  # fmt: skip


def test_a_kept_walk_reads_back_as_it_was_and_at_most_eight_are_kept(tmp_path: Path) -> None:
    policy = default_policy()
    tips = TipCache(tmp_path / "cache.sqlite")
    state = WalkState("a" * 40, [_commit("1" * 40, policy)], [_commit("2" * 40)],
                      policies={b"x": policy}, last_policy=policy, images={"web": "r/web"},
                      managed={"web"}, file_policy=policy)  # fmt: skip
    tips.keep("keys-1", state)
    back = tips.load("keys-1", "a" * 40)
    assert back is not None
    assert (back.line, back.off_line, back.images, back.managed) == (
        state.line, state.off_line, state.images, state.managed,
    )  # fmt: skip
    assert back.line[0].policy is back.policies[b"x"] is back.file_policy
    # Kept again with one more commit: the parts so far stay, one is added.
    back.line.append(_commit("3" * 40, policy))
    back.tip = "b" * 40
    tips.keep("keys-1", back)
    again = tips.load("keys-1", "b" * 40)
    assert again is not None and [c.sha for c in again.line] == ["1" * 40, "3" * 40]
    assert len(again.stored) == 2
    assert tips.load("keys-2", "b" * 40) is None  # other keys: nothing
    # A walk whose verdicts may change with time is not kept.
    tips.keep("keys-1", WalkState("c" * 40, [], [], lasting=False))
    assert tips.load("keys-1", "c" * 40) is None
    for i in range(10):
        tips.keep("keys-1", WalkState(f"{i:040d}", [], []))
    assert len(tips.tips("keys-1")) == 8
    assert tips.tips("keys-1")[0] == f"{9:040d}"
