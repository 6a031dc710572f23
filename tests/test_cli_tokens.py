"""`ritmo token create|list|revoke`: on the database, never showing a secret again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.config import Settings
from tests.helpers import bearer
from tests.test_cli import data_tokens, invoke, settings_env

pytestmark = pytest.mark.usefixtures("clean_ritmo_env")  # no RITMO_* from outside


def _create(env: dict[str, str], name: str, *args: str) -> str:
    result = invoke(["token", "create", "--name", name, *args], env)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[-1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "data").mkdir()  # where `ritmo serve` would have run
    return {"RITMO_DATA_DIR": str(tmp_path / "data")}


def test_list_is_an_aligned_table_without_secrets(env: dict[str, str], tmp_path: Path) -> None:
    alice = _create(env, "alice", "--scope", "promotions:approve", "--group", "ops-team",
                    "--group", "security-team")  # fmt: skip
    ci = _create(env, "continuous-integration", "--scope", "artifacts:write", "--scope",
                 "artifacts:read")  # fmt: skip
    assert data_tokens(tmp_path / "data").authenticate(ci) is not None  # ci was used

    listed = invoke(["token", "list"], env)
    assert listed.exit_code == 0, listed.output
    out = listed.stdout
    for secret in (alice, ci):
        assert secret not in out and secret.removeprefix("ritmo_") not in out
        assert hashlib.sha256(secret.encode()).hexdigest() not in out
    header, first, second, total = out.splitlines()
    assert header.split() == ["NAME", "SCOPES", "GROUPS", "CREATED", "LAST", "USED"]
    assert first.split()[:3] == ["alice", "promotions:approve", "ops-team,security-team"]
    assert first.split()[-1] == "never"
    assert second.split()[:3] == ["continuous-integration", "artifacts:read,artifacts:write", "-"]
    assert second.split()[-1].endswith("Z")  # when it was used
    for column in ("SCOPES", "GROUPS", "CREATED", "LAST USED"):  # aligned under the header
        at = header.index(column)
        assert first[at - 2 : at] == "  " and first[at] != " "
        assert second[at - 2 : at] == "  " and second[at] != " "
    assert total == "(2 tokens)"


def test_duplicate_and_reserved_names_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    _create(env, "Release-Bot", "--scope", "promotions:write")
    for name, why in (("release-bot", "taken"), ("Ritmo", "reserved"), ("ritmo", "reserved")):
        result = invoke(["token", "create", "--name", name, "--scope", "admin"], env)
        assert result.exit_code == 2, result.output
        assert why in result.stderr and result.stderr.startswith(f"ritmo: name {name!r}")
    github = {**env, "RITMO_FORGE__KIND": "github", "RITMO_FORGE__GITHUB__BOT_LOGIN": "acme-ritmo"}
    refused = invoke(["token", "create", "--name", "Acme-Ritmo", "--scope", "admin"], github)
    assert refused.exit_code == 2 and "reserved" in refused.stderr
    assert data_tokens(tmp_path / "data").names() == ["Release-Bot"]


def test_revoke_from_the_cli_is_refused_by_the_running_app_at_once(
    settings: Settings, client: FlaskClient, tokens: dict[str, str]
) -> None:
    ci = bearer(tokens["ci"])
    assert client.get("/api/v1/artifacts", headers=ci).status_code == 200
    revoked = invoke(["token", "revoke", "CI"], settings_env(settings))
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == "Revoked token 'ci' (artifacts:read, artifacts:write)\n"
    assert client.get("/api/v1/artifacts", headers=ci).status_code == 401
    again = invoke(["token", "revoke", "ci"], settings_env(settings))
    assert again.exit_code == 1 and "no token named 'ci'" in again.stderr
    listed = invoke(["token", "list"], settings_env(settings)).stdout
    assert [line.split()[0] for line in listed.splitlines()[1:-1]] == [
        "admin", "dashboard", "release-bot",
    ]  # fmt: skip


def test_an_old_tokens_file_is_imported_once(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    entry = {
        "name": "ci",
        "sha256": hashlib.sha256(b"ritmo_old").hexdigest(),
        "scopes": ["artifacts:write"],
        "groups": [],
        "created_at": "2026-11-01T08:00:00Z",
    }
    (data / "tokens.json").write_text(json.dumps({"tokens": [entry]}))  # fmt: skip
    first = invoke(["token", "list"], env)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[1].split()[:2] == ["ci", "artifacts:write"]
    assert not (data / "tokens.json").exists() and (data / "tokens.json.imported").exists()
    assert invoke(["token", "revoke", "ci"], env).exit_code == 0
    assert invoke(["token", "list"], env).stdout.splitlines() == [
        "NAME  SCOPES  GROUPS  CREATED  LAST USED", "(0 tokens)",
    ]  # fmt: skip
    assert data_tokens(data).authenticate("ritmo_old") is None
