"""The README's quick start runs as written: its fenced block, word for word, in bash
against a live `ritmo serve` on embedded defaults, from the directory the server runs in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import git, kill_gpg_agent, verify_commit
from tests.test_cli import _Server, free_port

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "**Quick start: a promotion to production.**"


def quick_start_block() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADING)
    found = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M).search(text, start)
    assert found, "no ```sh block after the quick start heading"
    return found[1]


def test_the_block_captures_its_own_values() -> None:
    """Nothing to copy by hand: no placeholder token, id or elided value."""
    block = quick_start_block()
    assert "ritmo_" not in block and "..." not in block and "<" not in block
    for name in ("CI", "RELEASE", "ALICE", "BOB", "ARTIFACT", "REQUEST"):
        assert re.search(rf"^{name}=\$\(", block, re.M), name


@pytest.fixture
def serve_cwd(short_tmp_path: Path) -> Iterator[Path]:
    cwd = short_tmp_path / "clone"
    cwd.mkdir()
    yield cwd
    kill_gpg_agent(cwd / ".ritmo" / "gnupg")
    kill_gpg_agent(cwd / ".ritmo" / "trusted-gnupg")


def test_the_readme_quick_start_runs_as_written(serve_cwd: Path) -> None:
    block = quick_start_block()
    # The block calls .venv/bin/ritmo, as in a clone set up by the README.
    (serve_cwd / ".venv").symlink_to(Path(sys.executable).parent.parent)
    server = _Server(serve_cwd, free_port())
    try:
        server.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RITMO_")}
        env["RITMO_SERVER"] = server.base  # the block keeps a RITMO_SERVER already set
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=serve_cwd, env=env,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "1.2.3" in "\n".join(lines[:-2]), lines  # `ritmo status`: pinned by itself
    assert lines[-2].startswith("pending: request req-"), lines
    merged = re.fullmatch(
        r"merged: request (req-\S+) \(web 1\.2\.3 to production\) merged as ([0-9a-f]{40})",
        lines[-1],
    )
    assert merged, lines
    bare = serve_cwd / ".ritmo" / "manifests.git"
    assert git(bare, "rev-parse", "main").strip() == merged[2]
    assert "Ritmo-Approved-By: alice, bob" in git(bare, "log", "-1", "--format=%B", "main")
    verify_commit(bare, merged[2], serve_cwd / ".ritmo" / "gnupg")


def test_no_internal_jargon_where_users_read() -> None:
    """The README, the shipped policy and the OpenAPI document speak to users, not to the
    team that wrote them."""
    from bot.api.openapi import build_document

    repo = README.parent
    texts = {
        "README.md": README.read_text(encoding="utf-8"),
        "policies/default.yaml": (repo / "policies" / "default.yaml").read_text(),
        "openapi.json": json.dumps(build_document()),
    }
    for name, text in texts.items():
        assert not re.search(r"\bthe brief\b|\bbrief's\b", text, re.I), name


def test_the_promote_recipe_can_read_status() -> None:
    """`ritmo status` needs artifacts:read: every release-bot token the README makes has it."""
    text = README.read_text(encoding="utf-8")
    recipes = re.findall(r"^.*token (?:create )?--name release-bot.*$", text, re.M)
    assert len(recipes) >= 2  # the quick start's and the Promote section's
    for line in recipes:
        assert "--scope artifacts:read" in line, line
