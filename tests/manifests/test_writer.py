"""ManifestWriter: batches, a push in flight while the next batch builds, and refusals."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.config import Settings
from bot.manifests.objects import Identity
from bot.manifests.plans import Edit, Reader, Unchanged
from bot.manifests.remote import PushResult
from bot.manifests.segments import WriteResult
from bot.manifests.writer import Conflict, ManifestWriter
from bot.runtime import Runtime, open_mirror
from tests.helpers import commits_since, git, show, verify_commit


@dataclass
class AddFile:
    """Adds one file; unchanged when it is already there with the same content."""

    path: str
    content: bytes
    on_plan: list[object] = field(default_factory=list)

    def plan(self, read: Reader) -> Edit | Unchanged:
        for hook in self.on_plan:
            hook()  # type: ignore[operator]
        existing = read(self.path)
        if existing == self.content:
            return Unchanged()
        if existing is not None:
            raise Conflict(f"{self.path} holds other content")
        return Edit({self.path: self.content}, f"Add {self.path}\n")


def _foreign_commit(remote: Path, workdir: Path) -> str:
    git(remote.parent, "clone", "--quiet", str(remote), str(workdir))
    (workdir / "FOREIGN.md").write_text("pushed by someone else\n")
    git(workdir, "add", "FOREIGN.md")
    git(workdir, "-c", "user.name=Dana", "-c", "user.email=dana@example.com",
        "commit", "--quiet", "-m", "foreign")  # fmt: skip
    git(workdir, "push", "--quiet", "origin", "main")
    return git(workdir, "rev-parse", "HEAD").strip()


class TestPipeline:
    """Jobs arriving during a push are built on top of it and pushed after it."""

    def test_refused_push_with_a_batch_built_on_top(
        self, runtime: Runtime, remote: Path, settings: Settings, tmp_path: Path
    ) -> None:
        base = git(remote, "rev-parse", "main").strip()
        writer = runtime.writer
        later: list[Future[WriteResult]] = []

        def enqueue_more() -> None:
            # Called while the first job is being planned: these wait for the next batch.
            if not later:
                later.extend(
                    writer.submit(AddFile(f"notes/{i}.txt", f"{i}\n".encode())) for i in range(5)
                )

        foreign: list[str] = []
        real_push = runtime.mirror.push
        pushed: list[str] = []

        def push(sha: str) -> PushResult:
            if not pushed:
                foreign.append(_foreign_commit(remote, tmp_path / "dana"))
            pushed.append(sha)
            return real_push(sha)

        runtime.mirror.push = push  # type: ignore[method-assign]
        started = writer.pushes  # the start-up's adoption of the policy
        first = writer.submit(AddFile("notes/first.txt", b"first\n", [enqueue_more]))
        results = [first.result(timeout=60)] + [f.result(timeout=60) for f in later]

        history = commits_since(remote, base)
        assert history[0] == foreign[0]
        assert len(history) == 7
        assert sorted(r.commit for r in results) == sorted(history[1:])  # type: ignore[type-var]
        for sha in history[1:]:
            verify_commit(remote, sha, settings.gnupghome)
        assert show(remote, "main:notes/4.txt") == "4\n"
        assert show(remote, "main:FOREIGN.md") == "pushed by someone else\n"
        # The refused push, then one push for both batches rebuilt on the foreign commit.
        assert len(pushed) == 2
        assert writer.pushes == started + 1

    def test_the_next_push_starts_before_the_last_one_lands(
        self, runtime: Runtime, remote: Path
    ) -> None:
        """The index follows and the callers hear while the next batch is on the wire."""
        writer = runtime.writer
        later: list[Future[WriteResult]] = []

        def enqueue_more() -> None:
            if not later:  # while the first job is planned: the next batch
                later.extend(writer.submit(AddFile(f"next/{i}.txt", b"n\n")) for i in range(3))

        real_push, pushes, second = runtime.mirror.push, [], threading.Event()

        def push(sha: str) -> PushResult:
            pushes.append(sha)
            if len(pushes) == 2:
                second.set()
            return real_push(sha)

        runtime.mirror.push = push  # type: ignore[method-assign]
        real_advance, seen = writer._on_advance, []

        def advance(old: str | None, new: str, written: object) -> object:
            # Landing the first batch: the second one's push has started (or never will).
            seen.append((new, second.wait(10 if not seen else 0), first.done()))
            return real_advance(old, new, written)  # type: ignore[arg-type]

        writer._on_advance = advance
        first = writer.submit(AddFile("next/first.txt", b"f\n", [enqueue_more]))
        head = first.result(timeout=60).commit
        assert all(f.result(timeout=60).commit for f in later)
        landed_first, second_on_its_way, answered = seen[0]
        assert landed_first == head and second_on_its_way and not answered
        assert len(pushes) == 2
        assert git(remote, "rev-parse", "main").strip() == pushes[-1]

    def test_unchanged_and_conflict(self, runtime: Runtime, remote: Path) -> None:
        writer = runtime.writer
        made = writer.write(AddFile("a.txt", b"one\n"))
        assert made.commit is not None
        tip = git(remote, "rev-parse", "main").strip()
        same = writer.write(AddFile("a.txt", b"one\n"))
        assert same.commit is None and same.tip == tip
        with pytest.raises(Conflict):
            writer.write(AddFile("a.txt", b"two\n"))
        assert git(remote, "rev-parse", "main").strip() == tip

    def test_a_failing_plan_fails_only_its_job(self, runtime: Runtime, remote: Path) -> None:
        class Broken:
            def plan(self, read: Reader) -> Edit | Unchanged:
                raise ValueError("cannot plan")

        writer = runtime.writer
        bad = writer.submit(Broken())
        good = writer.submit(AddFile("b.txt", b"b\n"))
        with pytest.raises(ValueError, match="cannot plan"):
            bad.result(timeout=60)
        assert good.result(timeout=60).commit is not None
        assert show(remote, "main:b.txt") == "b\n"


class TestTakingTurns:
    """Writers of two replicas on one remote, each with its own mirror, that hold one
    shared lock around fetch, plan and push (PostgreSQL's advisory lock in production):
    neither pushes on a stale tip, so no push is refused and none is retried."""

    def test_no_refused_push_between_writers_that_take_turns(
        self, runtime: Runtime, settings: Settings, remote: Path, tmp_path: Path
    ) -> None:
        turn = threading.Lock()
        writers = [
            ManifestWriter(
                open_mirror(settings.model_copy(update={"data_dir": tmp_path / name})),
                runtime.chain_signer.sign,
                Identity("Ritmo", "ritmo@example.com"),
                exclusive=lambda: turn,
                known_tip=lambda: None,  # nothing says where the branch is: always fetch
            )
            for name in ("one", "two")
        ]
        base = git(remote, "rev-parse", "main").strip()
        futures = [
            writers[i % 2].submit(AddFile(f"turns/{i}.txt", f"{i}\n".encode())) for i in range(16)
        ]
        assert all(f.result(timeout=120).commit for f in futures)
        assert len(commits_since(remote, base)) == 16
        for writer in writers:
            assert writer.push_retries == 0
            assert writer.pushes >= 1
            assert set(writer.attempts_per_batch) == {1}

    def test_a_group_is_planned_together_in_one_push(self, runtime: Runtime, remote: Path) -> None:
        """A record and its chained pins: no other change comes between them."""
        base = git(remote, "rev-parse", "main").strip()
        pushes = runtime.writer.pushes
        group = runtime.writer.submit_all(
            [AddFile(f"group/{i}.txt", f"{i}\n".encode()) for i in range(3)]
        )
        commits = [f.result(timeout=60).commit for f in group]
        assert commits_since(remote, base) == commits
        assert runtime.writer.pushes == pushes + 1


def test_close_lands_what_is_queued_and_lets_go_of_the_mirror(
    runtime: Runtime, remote: Path
) -> None:
    """`ritmo serve` writes, closes its runtime, then gunicorn forks: a writer thread still
    holding the mirror's flock at the fork hands the worker a lock it waits on for ever."""
    import fcntl

    writer = runtime.writer
    writer.write(AddFile("first.txt", b"first\n"))  # the thread runs
    running = writer._thread
    assert running is not None and running.is_alive()
    futures = [writer.submit(AddFile(f"f{i}.txt", f"{i}\n".encode())) for i in range(5)]
    writer.close()
    assert all(f.done() and f.result().commit is not None for f in futures)
    assert writer._thread is None and not running.is_alive()  # stopped, not merely idle
    with open(runtime.mirror.path / "ritmo-writer.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises if still held
        fcntl.flock(handle, fcntl.LOCK_UN)
    assert show(remote, "main:f4.txt") == "4\n"
    # A write after close starts the thread again.
    assert writer.write(AddFile("g.txt", b"g\n")).commit is not None
