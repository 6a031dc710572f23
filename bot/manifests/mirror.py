"""A bare GitPython mirror of the manifests remote: fetch, read, write objects, push."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import git
from git.refs.symbolic import SymbolicReference

from bot.config import ConfigError
from bot.manifests.history import History
from bot.manifests.packs import object_id, pack
from bot.manifests.remote import (
    GitFailed,
    PushResult,
    PushStatus,
    Token,
    git_environment,
    public_reason,
    push_failure,
)

log = logging.getLogger(__name__)


_REMOTE_COMMANDS = frozenset({"fetch", "push", "ls-remote"})
TIMED_OUT = "timeout"  # Mirror.unreachable: the remote did not answer in time


class Mirror(History):
    """One bare clone per (remote, branch); writes are serialised by a file lock."""

    def __init__(
        self, root: Path, url: str, branch: str, token: Token = None, timeout: float = 60
    ) -> None:
        key = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
        self.path = root / key
        self.url = url
        self.branch = branch
        self.timeout = timeout
        self._token = token
        self._tracking = f"refs/remotes/origin/{branch}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path / "ritmo-writer.lock"
        # New objects wait in memory and reach disk as one pack before they are needed
        # there: a file (or a `git hash-object`) per object costs more than the commit.
        self._pending: dict[str, tuple[str, bytes]] = {}
        self._trees: dict[str, bytes] = {}
        # Gunicorn's workers open the same mirror at once: one sets it up at a time, and
        # through `git config` (a lock file renamed into place), since the others may be
        # running git here already and must never read a half-written config.
        with self.locked():
            if not (self.path / "HEAD").exists():
                git.Repo.init(self.path, bare=True)
            self.repo = git.Repo(self.path)
            # The URL is stored, a token never is (it comes through the environment). With
            # the branch's refspec configured, a push moves the tracking ref itself: no
            # `git update-ref` after each push.
            for key, value in (
                ("remote.origin.url", url),
                ("remote.origin.fetch", f"+refs/heads/{branch}:{self._tracking}"),
                ("gc.auto", "0"),
            ):
                if self._git("config", "--get", key).stdout.strip() != value:
                    self._git("config", key, value)

    # -- remote ----------------------------------------------------------------
    def _git(
        self, *args: str, timeout: float | None = None, gnupghome: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            env = {**os.environ, **self._environment(remote=args[0] in _REMOTE_COMMANDS)}
        except OSError as exc:  # no token to be had: as if the remote were down
            return subprocess.CompletedProcess(["git", *args], 128, "", f"fatal: {exc}\n")
        if gnupghome is not None:  # signatures are checked against these keys only
            env["GNUPGHOME"] = str(gnupghome)
        # Its own process group: on a timeout the helpers git started go too (a local
        # remote's receive-pack and its hooks, ssh), or a push given up on may land later.
        with subprocess.Popen(
            ["git", *args],
            cwd=self.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                out, err = proc.communicate(timeout=timeout or self.timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.communicate()
                raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def _environment(self, remote: bool) -> dict[str, str]:
        """Credentials only for commands that reach the remote: reading objects must not
        wait on (or fail with) GitHub's token endpoint."""
        token = self._token
        if callable(token):
            token = token() if remote else None
        return git_environment(self.url, token)

    def _failed(self, what: str, stderr: str) -> GitFailed:
        detail = f"{what} failed: {stderr.strip()}"
        log.warning("%s (remote %s)", detail, self.url)
        reason = public_reason(stderr, self.url, str(self.path))
        return GitFailed(f"{what} failed: {reason}", detail)

    def _push_failure(self, proc: subprocess.CompletedProcess[str]) -> str:
        reason = push_failure(proc.stdout, proc.stderr)
        if proc.stderr.strip():
            log.warning("git push failed: %s (remote %s)", proc.stderr.strip(), self.url)
        return public_reason(reason, self.url, str(self.path))

    def unreachable(self, timeout: float = 30) -> str | None:
        """Why `git ls-remote` cannot reach the remote: git's last line, TIMED_OUT when it
        did not answer within `timeout`, "" when it failed silently; None when it answers."""
        try:
            proc = self._git("ls-remote", "--heads", "origin", timeout=timeout)
        except subprocess.TimeoutExpired:
            return TIMED_OUT
        if proc.returncode == 0:
            return None
        err = proc.stderr.strip()
        return err.splitlines()[-1] if err else ""

    def check_reachable(self) -> None:
        why = self.unreachable(timeout=30)
        if why is not None:
            credentials = (
                "the GitHub App's installation (it must cover the repository with contents: "
                "write), or set RITMO_MANIFESTS__TOKEN"
                if callable(self._token)
                else "the credentials in RITMO_MANIFESTS__TOKEN"
            )
            raise ConfigError(
                f"setting manifests.url (RITMO_MANIFESTS__URL): cannot reach {self.url} "
                f"({why or TIMED_OUT}); check the URL and {credentials}"
            )

    def push_refused(self, sha: str, timeout: float) -> str | None:
        """Whether the remote gives push access (`git push --dry-run` of `sha` to the
        branch: the transport asks for it even when nothing would change). None when it
        does, TIMED_OUT when it did not answer in time, else what git said."""
        try:
            proc = self._git(
                "push", "--dry-run", "--porcelain", "origin", f"{sha}:refs/heads/{self.branch}",
                timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return TIMED_OUT
        if proc.returncode != 0 or "[rejected]" in proc.stdout:
            return proc.stderr or proc.stdout or f"exit {proc.returncode}"
        return None

    def fetch(self) -> str | None:
        """Fetch the branch; return its tip, or None when the remote has no such branch."""
        proc = self._git(
            "fetch", "--no-tags", "--prune", "origin",
            f"+refs/heads/{self.branch}:{self._tracking}",
        )  # fmt: skip
        if proc.returncode != 0:
            if "couldn't find remote ref" in proc.stderr:
                return None
            raise self._failed("git fetch from the manifests remote", proc.stderr)
        return self.tip()

    def fetch_branches(self, prefix: str) -> dict[str, str]:
        """Fetch every remote branch under `prefix` (e.g. ritmo/promote/); branch -> sha."""
        proc = self._git(
            "fetch", "--no-tags", "--prune", "origin",
            f"+refs/heads/{prefix}*:refs/remotes/origin/{prefix}*",
        )  # fmt: skip
        if proc.returncode != 0:
            raise self._failed("git fetch from the manifests remote", proc.stderr)
        return self.branches(prefix)

    def branches(self, prefix: str) -> dict[str, str]:
        """The remote branches under `prefix` as last fetched or pushed."""
        proc = self._git(
            "for-each-ref", "--format=%(refname) %(objectname)", f"refs/remotes/origin/{prefix}"
        )
        found = {}
        for line in proc.stdout.splitlines():
            ref, sha = line.split(" ", 1)
            found[ref.removeprefix("refs/remotes/origin/")] = sha
        return found

    def push_branch(self, sha: str, branch: str) -> PushResult:
        """Create or fast-forward another branch (a promotion request's). Never forced."""
        try:
            proc = self._git("push", "--porcelain", "origin", f"{sha}:refs/heads/{branch}")
        except subprocess.TimeoutExpired:
            return PushResult(PushStatus.FAILED, "push timed out")
        if proc.returncode == 0:
            self._git("update-ref", f"refs/remotes/origin/{branch}", sha)
            return PushResult(PushStatus.PUSHED)
        out = proc.stdout + proc.stderr
        if "[rejected]" in out or "fetch first" in out or "non-fast-forward" in out:
            return PushResult(PushStatus.REJECTED, "not a fast-forward")
        return PushResult(PushStatus.FAILED, self._push_failure(proc))

    def delete_branch(self, branch: str, expected: str) -> bool:
        """Delete a request branch if it still points at `expected`; True when gone.

        A compare-and-delete: the lease makes git refuse when someone else moved the
        branch, so their commits are never lost. The branch being written is never deleted.
        """
        if branch == self.branch:
            raise ValueError(f"refusing to delete {branch}, the branch Ritmo writes")
        proc = self._git(
            "push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{expected}",
            "origin", f":refs/heads/{branch}",
        )  # fmt: skip
        if proc.returncode == 0:
            self._git("update-ref", "-d", f"refs/remotes/origin/{branch}")
            return True
        return False

    def tip(self) -> str | None:
        """The tip of the branch as last fetched or pushed: the ref read from its file (or
        packed-refs), no git process; git writes a ref by renaming a new file into place."""
        try:
            return SymbolicReference.dereference_recursive(self.repo, self._tracking)
        except ValueError:  # no such ref: nothing fetched yet, or an empty remote
            return None

    def push(self, sha: str) -> PushResult:
        """Fast-forward the remote branch to `sha`. Never forced.

        Runs beside the thread that builds commits, so it leaves pending objects alone:
        flush() first.
        """
        try:
            proc = self._git("push", "--porcelain", "origin", f"{sha}:refs/heads/{self.branch}")
        except subprocess.TimeoutExpired:
            return PushResult(PushStatus.FAILED, "push timed out")
        out = proc.stdout + proc.stderr
        if proc.returncode == 0:  # the tracking ref moved with it (remote.origin.fetch)
            return PushResult(PushStatus.PUSHED)
        if "[rejected]" in out or "fetch first" in out or "non-fast-forward" in out:
            return PushResult(PushStatus.REJECTED, "not a fast-forward")
        return PushResult(PushStatus.FAILED, self._push_failure(proc))

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
        tree = self._trees.get(sha)
        if tree is not None:
            return "tree", tree
        pending = self._pending.get(sha)
        if pending is not None:
            return pending
        info = self.repo.odb.stream(bytes.fromhex(sha))
        kind, data = info.type.decode(), info.read()
        if kind == "tree":
            self._remember_tree(sha, data)
        return kind, data

    def write(self, kind: str, data: bytes) -> str:
        sha = object_id(kind, data)
        self._pending[sha] = (kind, data)
        if kind == "tree":
            self._remember_tree(sha, data)
        return sha

    def flush(self) -> None:
        """Write the objects made since the last flush as one pack."""
        if not self._pending:
            return
        self._write_pack(self._pending)
        self._pending.clear()

    def _write_pack(self, objects: dict[str, tuple[str, bytes]]) -> None:
        proc = subprocess.run(
            ["git", "index-pack", "--stdin"],
            cwd=self.path,
            input=pack(list(objects.values())),
            capture_output=True,
            timeout=self.timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise self._failed("git index-pack", proc.stderr.decode(errors="replace"))

    def _remember_tree(self, sha: str, data: bytes) -> None:
        # Objects never change, so a tree read once stays right; the bound keeps memory flat.
        if len(self._trees) >= 4096:
            self._trees.clear()
        self._trees[sha] = data

    def close(self) -> None:
        """Stop GitPython's helper processes."""
        self.repo.close()

    def tree_of(self, commit: str) -> str:
        kind, data = self.read(commit)
        if kind != "commit" or not data.startswith(b"tree "):
            raise ValueError(f"{commit} is not a commit")
        return data[5:45].decode()

    def commit_objects(self, shas: Sequence[str]) -> dict[str, bytes]:
        """sha -> the raw commit object, for every sha given; one `git cat-file --batch`
        of its own (GitPython's shared one is not for concurrent readers)."""
        if not shas:
            return {}
        proc = subprocess.run(
            ["git", "cat-file", "--batch"], cwd=self.path, input="\n".join(shas).encode() + b"\n",
            capture_output=True, env={**os.environ, **git_environment(self.url, None)},
            timeout=self.timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise self._failed("git cat-file", proc.stderr.decode(errors="replace"))
        found: dict[str, bytes] = {}
        out, pos = proc.stdout, 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) == 3 and header[1] == b"commit":
                size = int(header[2])
                found[header[0].decode()] = out[pos : pos + size]
                pos += size + 1
            elif len(header) == 3:  # another kind of object: skip its bytes
                pos += int(header[2]) + 1
        return found


def init_bare(path: Path, branch: str) -> None:
    """An empty bare repository whose default branch is `branch` (the embedded remote)."""
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch", branch, str(path)], check=True
    )
