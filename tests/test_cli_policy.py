"""`ritmo policy apply FILE`: the CLI changes the policy through a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.auth import Scope
from bot.cli import main
from bot.policy.advice import warnings
from bot.policy.load import load_policy_bytes
from bot.runtime import Runtime
from tests.api.test_policy import GUARDED, OPEN_CHANGES, WEAKENED
from tests.helpers import remote_refs, show, trailers


def invoke(live_server: str, token: str, args: list[str]) -> Result:
    env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": token}
    return CliRunner(env=env).invoke(main, args)


@pytest.fixture
def remote_policy() -> str:
    return GUARDED


def test_apply_opens_a_request_then_approvals_merge_it(
    live_server: str, tokens: dict[str, str], remote: Path, runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(WEAKENED)
    result = invoke(
        live_server, tokens["admin"], ["policy", "apply", str(path), "--reason", "drill"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pending: request req-")
    assert "needs 1 from ops-team, 1 from security-team (0/2 approvals)" in result.output
    request_id = result.output.split()[2]
    ops = runtime.tokens.create("olga", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    sec = runtime.tokens.create("sam", [Scope.PROMOTIONS_APPROVE], ["security-team"])
    assert invoke(live_server, ops, ["approve", request_id]).exit_code == 0
    status = invoke(live_server, tokens["reader"], ["status", "--json"])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert [r["id"] for r in data["open_requests"]] == [request_id]
    # A policy change pins nothing: no app, only the policy's environments as columns.
    assert data["environments"] == ["dev", "staging", "production"] and data["apps"] == []
    done = invoke(live_server, sec, ["approve", request_id])
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"merged: request {request_id} (policy change ")
    assert show(remote, "main:.ritmo/policy.yaml") == WEAKENED
    status = invoke(live_server, tokens["reader"], ["status", "--json"])
    after = json.loads(status.output)
    assert after["tip"] == remote_refs(remote)["refs/heads/main"]  # the tip it was read at
    assert {k: v for k, v in after.items() if k != "tip"} == {
        "environments": ["dev", "staging", "production"],
        "apps": [],
        "open_requests": [],
    }
    assert trailers(remote, "main")["Ritmo-Reason"] == "drill"
    # The same text again: nothing to do.
    again = invoke(live_server, tokens["admin"], ["policy", "apply", str(path)])
    assert again.exit_code == 0 and again.output.startswith("unchanged:")


def test_apply_refuses_an_invalid_file_with_line_and_column(
    live_server: str, tokens: dict[str, str], remote: Path, tmp_path: Path
) -> None:
    before = remote_refs(remote)
    path = tmp_path / "policy.yaml"
    path.write_text(OPEN_CHANGES.replace("{from: dev, to: staging}", "{from: dev, to: qa}"))
    result = invoke(live_server, tokens["admin"], ["policy", "apply", str(path)])
    assert result.exit_code == 1
    assert "policy: 6:" in result.output and "unknown environment 'qa'" in result.output
    # Not an admin: refused too.
    path.write_text(WEAKENED)
    result = invoke(live_server, tokens["promoter"], ["policy", "apply", str(path)])
    assert result.exit_code == 1 and "lacks the scope admin" in result.output
    assert remote_refs(remote) == before


NO_APPS = "environments: [{name: dev}, {name: production}]\n"


def test_check_warns_when_no_app_is_declared(tmp_path: Path) -> None:
    """Valid, so exit 0 and the ok line; but every registration would be refused."""
    path = tmp_path / "policy.yaml"
    path.write_text(NO_APPS)
    result = CliRunner().invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok (2 environments, 0 promotion rules)\n"
    assert result.stderr.splitlines() == [
        f"warning: {path}: no apps declared: every artifact registration is refused (422); "
        'declare the apps under apps:, by name or pattern ("*" for any)'
    ]
    assert warnings(load_policy_bytes(NO_APPS.encode(), "p.yaml")) != []


@pytest.mark.parametrize("apps", ["  web: {}\n", '  "*": {}\n'])
def test_check_is_quiet_when_apps_are_declared(tmp_path: Path, apps: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(NO_APPS + "apps:\n" + apps)
    result = CliRunner().invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert warnings(load_policy_bytes(path.read_bytes(), "p.yaml")) == []
