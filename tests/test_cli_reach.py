"""Client commands facing a server that is not there, and `--config` after the command."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import main
from tests.test_cli import data_tokens, free_port


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RITMO_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # the default data_dir, ./.ritmo, lands here


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, args)


CLIENT_COMMANDS = [
    ["artifact", "push", "--name", "web", "--version", "1.2.3", "--build-id", "b",
     "--storage-url", "s3://a/b", "--checksum", "sha256:" + "0" * 64],
    ["artifact", "show", "art-0123"],
    ["artifact", "list"],
    ["promote", "art-0123", "--from", "staging", "--to", "production"],
    ["approve", "req-0123"],
    ["status"],
    ["deployments", "list"],
    ["rollback", "dep-0123"],
    ["policy", "apply", "policy.yaml"],
    ["outbox", "list"],
    ["outbox", "retry", "1"],
    ["audit"],
]  # fmt: skip


@pytest.mark.parametrize("args", CLIENT_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_unreachable_server_is_one_line_and_exit_3(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("environments: []\n")
    server = f"http://127.0.0.1:{free_port()}"
    result = invoke(args, {"RITMO_SERVER": server, "RITMO_TOKEN": "ritmo_x"})
    assert result.exit_code == 3, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an exception escaping
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ritmo: cannot reach {server}: ")
    assert "Connection refused" in line and "HTTPConnectionPool" not in line, line


def test_not_a_url_is_one_line_and_exit_3() -> None:
    result = invoke(["status"], {"RITMO_SERVER": "127.0.0.1:8080", "RITMO_TOKEN": "ritmo_x"})
    assert result.exit_code == 3
    assert result.stderr.startswith("ritmo: cannot reach 127.0.0.1:8080: ")
    assert len(result.stderr.splitlines()) == 1


def test_config_after_the_command(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    config = tmp_path / "ritmo.yaml"
    config.write_text(f"data_dir: {data}\n")
    data.mkdir()  # where `ritmo serve` ran: token commands refuse a data_dir that is not there
    result = invoke(["token", "create", "--name", "alice", "--scope", "artifacts:read",
                     "--config", str(config)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [t.name for t in data_tokens(data).all()] == ["alice"]
    assert not (tmp_path / ".ritmo").exists()


def test_config_after_the_command_wins_over_before(tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(f"data_dir: {tmp_path / 'one'}\n")
    second.write_text(f"data_dir: {tmp_path / 'two'}\n")
    (tmp_path / "two").mkdir()
    result = invoke(["--config", str(first), "token", "create", "--name", "bob",
                     "--scope", "artifacts:read", "--config", str(second)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [t.name for t in data_tokens(tmp_path / "two").all()] == ["bob"]
    assert not (tmp_path / "one").exists()


def test_serve_reads_config_given_after_it(tmp_path: Path) -> None:
    """Read before anything starts: a bad setting in that file stops `serve` naming it."""
    config = tmp_path / "bad.yaml"
    config.write_text("listen: nowhere\n")
    result = invoke(["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.startswith("ritmo: setting listen (RITMO_LISTEN): ")
    assert str(config) in result.stderr
    assert not (tmp_path / ".ritmo").exists()


def test_serve_on_a_port_in_use_stops_before_creating_anything(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = invoke(["serve"], {"RITMO_LISTEN": f"127.0.0.1:{port}"})
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"ritmo: setting listen (RITMO_LISTEN): 127.0.0.1:{port} is already in use; "
    )
    assert "in use" in line
    assert list(tmp_path.iterdir()) == []  # no .ritmo: no key, no remote, no tokens


def test_token_create_outside_a_data_directory_refuses(tmp_path: Path) -> None:
    """Nothing configured and no ./.ritmo here: the token would go to a new, empty index
    the server never reads."""
    result = invoke(["token", "create", "--name", "alice", "--scope", "artifacts:read"])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ritmo: no data directory at {tmp_path.resolve() / '.ritmo'} (")
    assert "RITMO_DATA_DIR" in line
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []
    for command in (["token", "list"], ["token", "revoke", "alice"]):
        assert invoke(command).exit_code == 2


def test_token_create_in_the_servers_directory(tmp_path: Path) -> None:
    (tmp_path / ".ritmo").mkdir()
    result = invoke(["token", "create", "--name", "alice", "--scope", "artifacts:read"])
    assert result.exit_code == 0, result.output
    assert [t.name for t in data_tokens(tmp_path / ".ritmo").all()] == ["alice"]
