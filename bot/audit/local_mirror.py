"""A scratch mirror of a repository on this machine, for `ritmo verify --repo PATH`.

It borrows the repository's objects (git's alternates: `objects/info/alternates` names
the repository's object directory) and copies its branch refs, instead of fetching: a
fetch packs and indexes the whole history again (about 5 s at 20,000 commits) only to
read what is already on this disk. Nothing is written to the repository itself.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bot.manifests.mirror import Mirror
from bot.manifests.remote import GitFailed


class LocalMirror(Mirror):
    def __init__(self, root: Path, source: Path, branch: str) -> None:
        self.source = source
        super().__init__(root, str(source), branch)

    def _borrow(self) -> None:
        alternates = self.path / "objects" / "info" / "alternates"
        if alternates.exists():
            return
        objects = self._in_source("rev-parse", "--path-format=absolute", "--git-path", "objects")
        alternates.parent.mkdir(parents=True, exist_ok=True)
        alternates.write_text(objects.strip() + "\n")

    def _in_source(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=self.source, capture_output=True, text=True, check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )  # fmt: skip
        if proc.returncode != 0:
            raise GitFailed(f"git {args[0]} failed in {self.source}", proc.stderr.strip())
        return proc.stdout

    def _copy(self, pattern: str) -> dict[str, str]:
        """The source's branches matching `pattern` (fnmatch), as remote-tracking refs."""
        self._borrow()
        found = {}
        listed = self._in_source("for-each-ref", "--format=%(refname) %(objectname)", pattern)
        for line in listed.splitlines():
            ref, sha = line.split(" ", 1)
            name = ref.removeprefix("refs/heads/")
            found[name] = sha
            self._git("update-ref", f"refs/remotes/origin/{name}", sha)
        return found

    def fetch(self) -> str | None:
        return self._copy(f"refs/heads/{self.branch}").get(self.branch)

    def fetch_branches(self, prefix: str) -> dict[str, str]:
        self._copy(f"refs/heads/{prefix}*")
        return self.branches(prefix)
