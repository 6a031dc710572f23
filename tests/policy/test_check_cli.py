"""`ritmo policy check [FILE]`: problems as file:line:column lines, exit 1; else ok, exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.policy.load import DEFAULT_POLICY_PATH

VALID = """\
environments: [{name: dev}, {name: staging}, {name: production}, {name: dr}]
promotion_rules:
  - {from: dev, to: staging}
"""

INVALID = """\
environments:
  - {name: dev}
  - {name: production}
promotion_rules:
  - {from: dev, to: prod}
groups:
  ops: {kind: ldap}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


class TestPolicyCheckFile:
    """With FILE, that file is checked."""

    def test_valid_file_is_ok(self, runner: CliRunner, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(VALID)
        result = runner.invoke(main, ["policy", "check", str(path)])
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{path}: ok (4 environments, 1 promotion rule)\n"

    def test_invalid_file_prints_every_problem_and_exits_1(
        self, runner: CliRunner, tmp_path: Path
    ) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(INVALID)
        result = runner.invoke(main, ["policy", "check", str(path)])
        assert result.exit_code == 1
        assert result.stdout.splitlines() == [
            f"{path}:5:21: promotion_rules[0].to: unknown environment 'prod'; "
            "the environments are dev, production",
            f"{path}:7:15: groups.ops.kind: Input should be 'local' or 'github-team', not 'ldap'",
        ]

    def test_yaml_syntax_error_exits_1(self, runner: CliRunner, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text("environments: [{name: dev}\n")
        result = runner.invoke(main, ["policy", "check", str(path)])
        assert result.exit_code == 1
        assert result.stdout.startswith(f"{path}:2:1: not valid YAML: ")

    def test_missing_file_is_a_usage_error(self, runner: CliRunner, tmp_path: Path) -> None:
        result = runner.invoke(main, ["policy", "check", str(tmp_path / "nope.yaml")])
        assert result.exit_code == 2
        assert "does not exist" in result.output


class TestPolicyCheckDefault:
    """Without FILE: ./.ritmo/policy.yaml when present, else the shipped default."""

    @pytest.fixture(autouse=True)
    def _in_tmp(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)

    def test_local_policy_is_checked(self, runner: CliRunner) -> None:
        Path(".ritmo").mkdir()
        Path(".ritmo/policy.yaml").write_text("environments: [{name: dev}]\nextra: 1\n")
        result = runner.invoke(main, ["policy", "check"])
        assert result.exit_code == 1
        assert result.stdout.splitlines() == [
            ".ritmo/policy.yaml:2:1: unknown key 'extra'; remove it or check the spelling"
        ]

    def test_valid_local_policy_is_ok(self, runner: CliRunner) -> None:
        Path(".ritmo").mkdir()
        Path(".ritmo/policy.yaml").write_text(VALID)
        result = runner.invoke(main, ["policy", "check"])
        assert result.exit_code == 0
        assert result.stdout == ".ritmo/policy.yaml: ok (4 environments, 1 promotion rule)\n"

    def test_shipped_default_without_local_policy(self, runner: CliRunner) -> None:
        result = runner.invoke(main, ["policy", "check"])
        assert result.exit_code == 0
        assert result.stdout == f"{DEFAULT_POLICY_PATH}: ok (3 environments, 2 promotion rules)\n"
