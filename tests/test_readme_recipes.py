"""The README as a user reads it: its token recipes give each command the scopes it needs,
and it, the shipped policy and the OpenAPI description speak no internal jargon."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bot.api.openapi import build_document
from bot.auth import Scope
from bot.cli import main
from bot.runtime import Runtime
from tests.helpers import TWO_APPROVERS_POLICY, artifact_body, bearer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECIPE = re.compile(r"ritmo token create --name ([a-z][a-z0-9-]*)((?: --(?:scope|group) \S+)+)")
RUN = re.compile(r"^RITMO_TOKEN=\$(\w+)_TOKEN \.venv/bin/ritmo (.+)$", re.M)
JARGON = re.compile(r"\bbrief\b|\bbrief's\b|\bthe issue\b|\bissue \d+\b", re.I)


@pytest.fixture
def remote_policy() -> str:
    return TWO_APPROVERS_POLICY  # the shipped policy's rules, without its weekend freeze


pytestmark = pytest.mark.usefixtures("clean_ritmo_env")


def _recipes() -> dict[str, tuple[list[str], list[str]]]:
    found = {}
    for name, flags in RECIPE.findall(README):
        words = flags.split()
        pairs = list(zip(words[::2], words[1::2], strict=True))
        found[name] = (
            [v for f, v in pairs if f == "--scope"],
            [v for f, v in pairs if f == "--group"],
        )
    return found


def test_the_promote_recipe_runs_as_written(
    runtime: Runtime, client: FlaskClient, live_server: str
) -> None:
    recipes = _recipes()
    assert {"release-bot", "alice", "bob"} <= set(recipes), recipes
    secrets = {
        name: runtime.tokens.create(name, [Scope(s) for s in scopes], groups)
        for name, (scopes, groups) in recipes.items()
    }
    ci = runtime.tokens.create("ci-test", [Scope.ARTIFACTS_WRITE])
    made = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(ci))
    assert made.status_code == 201, made.json

    commands = RUN.findall(README)
    assert [c.split()[0] for _, c in commands][:2] == ["promote", "status"], commands
    outputs = []
    for holder, command in commands:
        token = secrets[holder.lower().replace("_", "-")]
        env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": token}
        result = CliRunner(env=env).invoke(main, shlex.split(command))
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    request_id = re.search(r"req-[0-9a-f]+", outputs[0])
    assert request_id, outputs[0]
    assert "Open promotion requests (1)" in outputs[1]
    for person in ("alice", "bob"):
        env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": secrets[person]}
        result = CliRunner(env=env).invoke(main, ["approve", request_id.group()])
        assert result.exit_code == 0, result.output
    assert result.output.startswith("merged: request")


def test_no_internal_jargon_where_users_read() -> None:
    texts = {"README.md": README, "OpenAPI": json.dumps(build_document())}
    for policy in sorted((ROOT / "policies").glob("*")):
        texts[str(policy.relative_to(ROOT))] = policy.read_text(encoding="utf-8")
    found = {where: JARGON.findall(text) for where, text in texts.items()}
    assert not any(found.values()), found
