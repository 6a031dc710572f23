"""Test helpers over real git and gpg."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

SAMPLE_POLICIES = Path(__file__).resolve().parent / "samples" / "policies"


def sample_policy(name: str) -> str:
    """tests/samples/policies/<name>.yaml: a policy several test modules use."""
    return (SAMPLE_POLICIES / f"{name}.yaml").read_bytes().decode("utf-8")


# dev and staging by themselves; production needs one from ops-team and one from
# security-team (local groups: token groups), within 7 days.
TWO_APPROVERS_POLICY = sample_policy("two-approvers")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def kill_gpg_agent(home: Path) -> None:
    if home.exists():
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
        )


def remote_refs(remote: Path) -> dict[str, str]:
    out = git(remote, "for-each-ref", "--format=%(refname) %(objectname)")
    refs = {}
    for line in out.splitlines():
        name, sha = line.split(" ", 1)
        refs[name] = sha
    return refs


def commits_since(remote: Path, base: str, branch: str = "main") -> list[str]:
    return git(remote, "rev-list", "--reverse", f"{base}..{branch}").split()


def verify_commit(remote: Path, sha: str, gnupghome: Path) -> str:
    """Run `git verify-commit`; return gpg's report. Fails the test on a bad signature."""
    proc = subprocess.run(
        ["git", "verify-commit", "--raw", sha],
        cwd=remote,
        capture_output=True,
        text=True,
        env={**os.environ, "GNUPGHOME": str(gnupghome)},
        check=False,
    )
    assert proc.returncode == 0, f"verify-commit {sha}: {proc.stderr}"
    assert "GOODSIG" in proc.stderr and "VALIDSIG" in proc.stderr, proc.stderr
    return proc.stderr


def trailers(remote: Path, sha: str) -> dict[str, str]:
    out = git(remote, "log", "-1", "--format=%(trailers:only,unfold)", sha)
    pairs = [line.split(": ", 1) for line in out.splitlines() if ": " in line]
    return {k: v for k, v in pairs}


def show(remote: Path, rev_path: str) -> str:
    return git(remote, "show", rev_path)


def checksum(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def artifact_body(name: str = "web", version: str = "1.2.3", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "build_id": f"build-{version}",
        "name": name,
        "version": version,
        "storage_url": f"s3://artifacts/{name}-{version}.tar.gz",
        "image": f"registry.example.com/acme/{name}:{version}",
        "checksum": checksum(f"{name}-{version}"),
        "metadata": {"commit": "abc123", "branch": "main", "repository": "acme/web"},
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def alias_bomb(levels: int = 9, policy: str = TWO_APPROVERS_POLICY) -> str:
    """`policy` with a nested-alias bomb under an extra key: 9 x 9 x ... references.

    Each level is a list of nine aliases of the one before, so it stands for 9**levels
    strings in a few hundred bytes (levels=9: about 390 million, minutes to walk)."""
    lol = ",".join(['"lol"'] * 9)
    lines = [policy.rstrip("\n"), "bomb:", f"  l0: &l0 [{lol}]"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"
