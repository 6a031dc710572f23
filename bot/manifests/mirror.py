"""A bare GitPython mirror of the manifests remote: fetch, read, write objects, push."""

from __future__ import annotations

import base64
import enum
import fcntl
import hashlib
import io
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git
from gitdb import IStream

from bot.config import ConfigError


class PushStatus(enum.Enum):
    PUSHED = "pushed"
    REJECTED = "rejected"  # not a fast-forward: someone else pushed first
    FAILED = "failed"  # remote down, hook declined, timeout


@dataclass(frozen=True)
class PushResult:
    status: PushStatus
    detail: str = ""


def git_environment(url: str, token: str | None) -> dict[str, str]:
    """Variables that hand git its credentials; the token never lands in a URL or config."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    if token and url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


class Mirror:
    """One bare clone per (remote, branch); writes are serialised by a file lock."""

    def __init__(
        self, root: Path, url: str, branch: str, token: str | None = None, timeout: float = 60
    ) -> None:
        key = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
        self.path = root / key
        self.url = url
        self.branch = branch
        self.timeout = timeout
        self._env = git_environment(url, token)
        self._tracking = f"refs/remotes/origin/{branch}"
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / "HEAD").exists():
            git.Repo.init(self.path, bare=True)
        self.repo = git.Repo(self.path)
        with self.repo.config_writer() as cfg:
            # The URL is stored, a token never is (it comes through the environment).
            cfg.set_value('remote "origin"', "url", url)
            cfg.set_value("gc", "auto", "0")
        self._lock_path = self.path / "ritmo-writer.lock"

    # -- remote ----------------------------------------------------------------
    def _git(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self._env}
        return subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
            check=False,
        )

    def check_reachable(self) -> None:
        try:
            proc = self._git("ls-remote", "--heads", "origin", timeout=30)
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            err = proc.stderr.strip() if proc else ""
            why = err.splitlines()[-1] if err else "timeout"
            raise ConfigError(
                f"setting manifests.url (RITMO_MANIFESTS__URL): cannot reach {self.url} ({why}); "
                "check the URL and the credentials in RITMO_MANIFESTS__TOKEN"
            )

    def fetch(self) -> str | None:
        """Fetch the branch; return its tip, or None when the remote has no such branch."""
        proc = self._git(
            "fetch", "--no-tags", "--prune", "origin",
            f"+refs/heads/{self.branch}:{self._tracking}",
        )  # fmt: skip
        if proc.returncode != 0:
            if "couldn't find remote ref" in proc.stderr:
                return None
            raise OSError(f"git fetch from {self.url} failed: {proc.stderr.strip()}")
        return self.tip()

    def tip(self) -> str | None:
        """The tip of the branch as last fetched or pushed."""
        proc = self._git("rev-parse", "--verify", "--quiet", self._tracking)
        return proc.stdout.strip() or None

    def push(self, sha: str) -> PushResult:
        """Fast-forward the remote branch to `sha`. Never forced."""
        try:
            proc = self._git("push", "--porcelain", "origin", f"{sha}:refs/heads/{self.branch}")
        except subprocess.TimeoutExpired:
            return PushResult(PushStatus.FAILED, "push timed out")
        out = proc.stdout + proc.stderr
        if proc.returncode == 0:
            self._git("update-ref", self._tracking, sha)
            return PushResult(PushStatus.PUSHED)
        if "[rejected]" in out or "fetch first" in out or "non-fast-forward" in out:
            return PushResult(PushStatus.REJECTED, "not a fast-forward")
        return PushResult(PushStatus.FAILED, _push_failure(proc.stdout, proc.stderr))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise writers across processes that share this mirror."""
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- objects (ObjectStore) -------------------------------------------------
    def read(self, sha: str) -> tuple[str, bytes]:
        info = self.repo.odb.stream(bytes.fromhex(sha))
        return info.type.decode(), info.read()

    def write(self, kind: str, data: bytes) -> str:
        istream = self.repo.odb.store(IStream(kind.encode(), len(data), io.BytesIO(data)))
        return str(istream.hexsha.decode())

    def tree_of(self, commit: str) -> str:
        kind, data = self.read(commit)
        if kind != "commit" or not data.startswith(b"tree "):
            raise ValueError(f"{commit} is not a commit")
        return data[5:45].decode()

    # -- history ---------------------------------------------------------------
    def is_ancestor(self, older: str, newer: str) -> bool:
        return self._git("merge-base", "--is-ancestor", older, newer).returncode == 0

    def added_files(self, since: str | None, until: str, prefix: str) -> list[tuple[str, str]]:
        """(commit, path) for every file under `prefix` added in since..until, oldest first."""
        rev = f"{since}..{until}" if since else until
        proc = self._git(
            "log", "--reverse", "--no-renames", "--diff-filter=A", "--name-only",
            "--format=%x00%H", rev, "--", prefix,
        )  # fmt: skip
        if proc.returncode != 0:
            raise OSError(f"git log failed: {proc.stderr.strip()}")
        out: list[tuple[str, str]] = []
        for chunk in proc.stdout.split("\0")[1:]:
            sha, _, names = chunk.partition("\n")
            out += [(sha.strip(), n) for n in names.split("\n") if n.strip()]
        return out

    def blobs_under(self, commit: str, prefix: str) -> dict[str, str]:
        """path -> blob sha for every file under `prefix` at `commit`."""
        proc = self._git("ls-tree", "-r", "--full-tree", commit, "--", prefix)
        result = {}
        for line in proc.stdout.splitlines():
            meta, _, path = line.partition("\t")
            result[path] = meta.split()[2]
        return result


def _push_failure(stdout: str, stderr: str) -> str:
    """The remote's own reason, without local paths: the porcelain status and remote: lines."""
    status = [ln.split("\t")[-1] for ln in stdout.splitlines() if ln.startswith("!")]
    said = [ln[7:].strip() for ln in stderr.splitlines() if ln.startswith("remote:")]
    parts = status + [ln for ln in said if ln]
    if parts:
        return "; ".join(parts)
    errors = [ln for ln in stderr.splitlines() if ln.startswith("fatal:")]
    return errors[-1] if errors else "the push failed"
