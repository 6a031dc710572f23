"""The history queries of a mirror (bot/manifests/mirror.py): commits, the files they
changed, `git log`. Git itself runs only in Mirror._git, which these call."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

from bot.manifests.remote import GitFailed


class _Repo(Protocol):
    """What the history queries use of their Mirror."""

    def _git(
        self, *args: str, timeout: float | None = None, gnupghome: Path | None = None
    ) -> subprocess.CompletedProcess[str]: ...

    def _failed(self, what: str, stderr: str) -> GitFailed: ...

    def flush(self) -> None: ...

    def log(self, *args: str, gnupghome: Path | None = None) -> str: ...


class History:
    """Mirror's read-only questions about commits (a base class of Mirror)."""

    def has_commit(self: _Repo, sha: str) -> bool:
        self.flush()
        return self._git("cat-file", "-e", f"{sha}^{{commit}}").returncode == 0

    def is_ancestor(self: _Repo, older: str, newer: str) -> bool:
        self.flush()
        return self._git("merge-base", "--is-ancestor", older, newer).returncode == 0

    def added_files(
        self: _Repo, since: str | None, until: str, prefix: str
    ) -> list[tuple[str, str]]:
        """(commit, path) for every file under `prefix` added in since..until, oldest first."""
        rev = f"{since}..{until}" if since else until
        proc = self._git(
            "log", "--reverse", "--no-renames", "--diff-filter=A", "--name-only",
            "--format=%x00%H", rev, "--", prefix,
        )  # fmt: skip
        if proc.returncode != 0:
            raise self._failed("git log", proc.stderr)
        out: list[tuple[str, str]] = []
        for chunk in proc.stdout.split("\0")[1:]:
            sha, _, names = chunk.partition("\n")
            out += [(sha.strip(), n) for n in names.split("\n") if n.strip()]
        return out

    def changed_files(self: _Repo, since: str, until: str, prefix: str) -> list[str]:
        """Paths under `prefix` that differ between `since` and `until` (added, changed or
        deleted)."""
        proc = self._git("diff", "--no-renames", "--name-only", since, until, "--", prefix)
        if proc.returncode != 0:
            raise self._failed("git diff", proc.stderr)
        return [line for line in proc.stdout.splitlines() if line.strip()]

    def commit_messages(
        self: _Repo, since: str | None, until: str, grep: str | None = None
    ) -> list[tuple[str, int, str]]:
        """(sha, commit time, message) for commits in since..until, oldest first;
        optionally --grep'd."""
        rev = f"{since}..{until}" if since else until
        args = ["log", "--reverse", "--format=%x00%H%x00%ct%x00%B"]
        if grep:
            args += ["-E", f"--grep={grep}"]
        proc = self._git(*args, rev)
        if proc.returncode != 0:
            raise self._failed("git log", proc.stderr)
        parts = proc.stdout.split("\0")[1:]
        return [
            (parts[i].strip(), int(parts[i + 1]), parts[i + 2]) for i in range(0, len(parts) - 2, 3)
        ]

    def log(self: _Repo, *args: str, gnupghome: Path | None = None) -> str:
        """`git log ARGS` in the mirror; its output. `gnupghome`: the keys `%G?` checks."""
        proc = self._git("log", *args, gnupghome=gnupghome)
        if proc.returncode != 0:
            raise self._failed("git log", proc.stderr)
        return proc.stdout

    def first_parent_changes(self: _Repo, tip: str) -> list[tuple[str, tuple[str, ...], str, str]]:
        """(sha, parents, message, name-status lines) of every commit of `tip`'s
        first-parent line, oldest first; a merge's changes are those against its first
        parent."""
        out = self.log(
            "--first-parent", "--reverse", "--root", "--no-renames", "--diff-merges=first-parent",
            "--name-status", "--format=%x00%x01%H%x00%P%x00%B%x00", tip, "--",
        )  # fmt: skip
        line = []
        for chunk in out.split("\0\x01")[1:]:
            sha, parents, message, changes = chunk.split("\0", 3)
            line.append((sha.strip(), tuple(parents.split()), message, changes))
        return line

    def first_parent_line(self: _Repo, rev: str) -> list[str]:
        """The commits of `rev`'s first-parent line, oldest first."""
        proc = self._git("rev-list", "--first-parent", "--reverse", rev)
        if proc.returncode != 0:
            raise self._failed("git rev-list", proc.stderr)
        return proc.stdout.split()

    def blobs_under(self: _Repo, commit: str, prefix: str) -> dict[str, str]:
        """path -> blob sha for every file under `prefix` at `commit`."""
        proc = self._git("ls-tree", "-r", "--full-tree", commit, "--", prefix)
        result = {}
        for line in proc.stdout.splitlines():
            meta, _, path = line.partition("\t")
            result[path] = meta.split()[2]
        return result
