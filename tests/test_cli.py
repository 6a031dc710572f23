"""The `ritmo` command: tokens, keys, artifact push/show/list, reindex, embedded serve."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from bot.app import create_app
from bot.auth import Scope
from bot.cli import main
from bot.config import Settings
from bot.manifests.records import artifact_id
from bot.policy.load import DEFAULT_POLICY_PATH
from bot.runtime import Runtime, build_runtime, open_index
from bot.store.schema import make_engine
from bot.store.tokens import TokenStore
from tests.helpers import (
    artifact_body,
    bearer,
    checksum,
    commits_since,
    git,
    kill_gpg_agent,
    trailers,
    verify_commit,
)

RITMO = Path(sys.executable).parent / "ritmo"  # bot/cli/ has no `__main__` guard


pytestmark = pytest.mark.usefixtures("clean_ritmo_env")


def settings_env(settings: Settings) -> dict[str, str]:
    """The conftest `settings`, expressed as the variables the CLI reads."""
    assert settings.signing.gnupghome is not None and settings.signing.key is not None
    return {
        "RITMO_DATA_DIR": str(settings.data_dir),
        "RITMO_MANIFESTS__URL": settings.remote_url,
        "RITMO_SIGNING__GNUPGHOME": str(settings.signing.gnupghome),
        "RITMO_SIGNING__KEY": settings.signing.key,
    }


def invoke(args: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> Result:
    return CliRunner(env=env).invoke(main, args, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def data_tokens(data: Path) -> TokenStore:
    """The tokens in the database of data dir `data` (the default SQLite index)."""
    data.mkdir(parents=True, exist_ok=True)
    return TokenStore(make_engine(f"sqlite:///{data / 'index.sqlite3'}"))


class TestTokenCreate:
    """`ritmo token create` prints the token once and stores only its hash."""

    def test_create_with_groups(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()  # where `ritmo serve` would have run
        env = {"RITMO_DATA_DIR": str(tmp_path / "data")}
        result = invoke(
            ["token", "create", "--name", "alice", "--scope", "promotions:approve",
             "--group", "ops-team", "--group", "security-team"],
            env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        value = result.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"ritmo_[A-Za-z0-9_-]{40,}", value), value
        database = (tmp_path / "data" / "index.sqlite3").read_bytes()
        assert value.encode() not in database
        assert value.removeprefix("ritmo_").encode() not in database
        assert not (tmp_path / "data" / "tokens.json").exists()
        store = data_tokens(tmp_path / "data")
        principal = store.authenticate(value)
        assert principal is not None
        assert principal.name == "alice"
        assert principal.scopes == frozenset({Scope.PROMOTIONS_APPROVE})
        assert principal.groups == frozenset({"ops-team", "security-team"})
        assert store.authenticate(value + "x") is None

    def test_tokens_file_setting_names_the_file_to_import(self, tmp_path: Path) -> None:
        # Tokens live in the database now; the setting names an old file to import once.
        target = tmp_path / "elsewhere" / "t.json"
        target.parent.mkdir()
        old = data_tokens(tmp_path / "old")
        value = old.create("ci", [Scope.ARTIFACTS_WRITE])
        (entry,) = old.all()
        row = {
            "name": "ci",
            "sha256": hashlib.sha256(value.encode()).hexdigest(),
            "scopes": ["artifacts:write"],
            "groups": [],
            "created_at": entry.created_at,
        }
        target.write_text(json.dumps({"tokens": [row]}))
        (tmp_path / "data").mkdir()
        env = {"RITMO_DATA_DIR": str(tmp_path / "data"), "RITMO_AUTH__TOKENS_FILE": str(target)}
        result = invoke(["token", "create", "--name", "cd", "--scope", "deployments:write"], env)
        assert result.exit_code == 0, result.output
        store = data_tokens(tmp_path / "data")
        principal = store.authenticate(value)
        assert principal is not None and principal.allows(Scope.ARTIFACTS_WRITE)
        assert store.names() == ["cd", "ci"]
        assert not target.exists()
        assert (tmp_path / "elsewhere" / "t.json.imported").exists()

    def test_unknown_scope_exits_2(self, tmp_path: Path) -> None:
        env = {"RITMO_DATA_DIR": str(tmp_path / "data")}
        result = invoke(["token", "create", "--name", "alice", "--scope", "promotions:all"], env)
        assert result.exit_code == 2
        assert "promotions:all" in result.stderr
        assert not (tmp_path / "data" / "index.sqlite3").exists()

    def test_bad_name_exits_2(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        env = {"RITMO_DATA_DIR": str(tmp_path / "data")}
        result = invoke(["token", "create", "--name", "a b", "--scope", "admin"], env)
        assert result.exit_code == 2
        assert result.stderr.startswith("ritmo: name 'a b'")
        assert data_tokens(tmp_path / "data").names() == []

    @pytest.mark.parametrize("command", [["create", "--name", "ci", "--scope", "admin"], ["list"]])
    def test_outside_a_data_directory_refuses_and_says_where(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
    ) -> None:
        monkeypatch.chdir(tmp_path)  # no .ritmo here: `ritmo serve` never ran in it
        result = invoke(["token", *command])
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"ritmo: no data directory at {tmp_path / '.ritmo'} (setting data_dir, "
            "RITMO_DATA_DIR); run this where `ritmo serve` runs, or point data_dir or "
            "database_url at the server's\n"
        )
        assert list(tmp_path.iterdir()) == []  # nothing created


class TestKeysExport:
    """`ritmo keys export` prints the public key that verifies Ritmo's commits."""

    def test_exported_key_verifies_commits(
        self,
        tmp_path: Path,
        settings: Settings,
        client: FlaskClient,
        tokens: dict[str, str],
        remote: Path,
    ) -> None:
        resp = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
        assert resp.status_code == 201, resp.json
        sha = resp.json["commit"]

        result = invoke(["keys", "export"], settings_env(settings))
        assert result.exit_code == 0, result.output
        armored = result.stdout
        assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert armored.rstrip().endswith("-----END PGP PUBLIC KEY BLOCK-----")
        assert "PRIVATE KEY" not in armored

        fresh = tmp_path / "fresh-gnupg"
        empty = tmp_path / "empty-gnupg"
        for home in (fresh, empty):
            home.mkdir(mode=0o700)
        try:
            imported = subprocess.run(
                ["gpg", "--homedir", str(fresh), "--batch", "--import"],
                input=armored, capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert imported.returncode == 0, imported.stderr
            verify_commit(remote, sha, fresh)
            # The control: without the exported key the same commit does not verify.
            unverified = subprocess.run(
                ["git", "verify-commit", sha], cwd=remote, capture_output=True, text=True,
                env={**os.environ, "GNUPGHOME": str(empty)}, check=False,
            )  # fmt: skip
            assert unverified.returncode != 0
        finally:
            kill_gpg_agent(fresh)
            kill_gpg_agent(empty)

    def test_absent_key_exits_2(self, tmp_path: Path, settings: Settings) -> None:
        env = {**settings_env(settings), "RITMO_SIGNING__KEY": "C" * 40}
        result = invoke(["keys", "export"], env)
        assert result.exit_code == 2
        assert result.stderr.startswith("ritmo: setting signing.key")
        assert "BEGIN PGP" not in result.stdout


class TestArtifactPush:
    """`ritmo artifact push` against a live server: exit 0 recorded, 1 refused, 3 unavailable."""

    def push_args(self, body: dict[str, Any]) -> list[str]:
        args = ["artifact", "push"]
        for key in ("name", "version", "build_id", "storage_url", "image", "checksum"):
            if key in body:
                args += [f"--{key.replace('_', '-')}", str(body[key])]
        for key, value in body.get("metadata", {}).items():
            args += ["--metadata", f"{key}={value}"]
        return args

    @pytest.fixture
    def env(self, live_server: str, tokens: dict[str, str]) -> dict[str, str]:
        return {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["ci"]}

    def test_push_with_flags(self, env: dict[str, str], remote: Path) -> None:
        base = git(remote, "rev-parse", "main").strip()
        result = invoke(self.push_args(artifact_body()), env)
        assert result.exit_code == 0, result.output
        ident = artifact_id("web", "1.2.3")
        lines = result.stdout.splitlines()
        assert lines[0] == f"recorded: {ident} web 1.2.3"
        (sha,) = commits_since(remote, base)
        assert lines[1] == f"commit: {sha}"
        assert trailers(remote, sha)["Ritmo-Artifact"] == ident
        assert trailers(remote, sha)["Ritmo-Registered-By"] == "ci"

    def test_push_with_file_and_flags_override(
        self, tmp_path: Path, env: dict[str, str], live_server: str, tokens: dict[str, str]
    ) -> None:
        path = tmp_path / "artifact.json"
        path.write_text(json.dumps(artifact_body(version="2.0.0")))
        result = invoke(
            ["artifact", "push", "--file", str(path), "--build-id", "override-7",
             "--correlation-id", "cli-corr-1"],
            env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        ident = artifact_id("web", "2.0.0")
        assert result.stdout.startswith(f"recorded: {ident} web 2.0.0")
        got = requests.get(
            f"{live_server}/api/v1/artifacts/{ident}", headers=bearer(tokens["ci"]), timeout=30
        ).json()
        assert got["build_id"] == "override-7"
        assert got["metadata"] == artifact_body()["metadata"]

    def test_push_from_stdin_with_flags_for_server(
        self, live_server: str, tokens: dict[str, str]
    ) -> None:
        result = invoke(
            ["artifact", "push", "--server", live_server, "--token", tokens["ci"], "--file", "-"],
            input=json.dumps(artifact_body(name="api", version="0.9.1")),
        )
        assert result.exit_code == 0, result.output
        assert f"recorded: {artifact_id('api', '0.9.1')} api 0.9.1" in result.stdout

    def test_identical_repush(self, env: dict[str, str], remote: Path) -> None:
        first = invoke(self.push_args(artifact_body()), env)
        assert first.exit_code == 0, first.output
        tip = git(remote, "rev-parse", "main").strip()
        again = invoke(self.push_args(artifact_body()), env)
        assert again.exit_code == 0, again.output
        assert again.stdout.startswith("already recorded: ")
        assert again.stdout.splitlines()[1] == first.stdout.splitlines()[1] == f"commit: {tip}"
        assert git(remote, "rev-parse", "main").strip() == tip

    def test_conflicting_content(self, env: dict[str, str], remote: Path) -> None:
        assert invoke(self.push_args(artifact_body()), env).exit_code == 0
        tip = git(remote, "rev-parse", "main").strip()
        changed = artifact_body(checksum=checksum("something else"))
        result = invoke(self.push_args(changed), env)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("ritmo: refused (409): ")
        assert "already recorded with other content" in result.stderr
        assert result.stdout == ""
        assert git(remote, "rev-parse", "main").strip() == tip

    def test_invalid_fields_are_each_named(self, env: dict[str, str], remote: Path) -> None:
        tip = git(remote, "rev-parse", "main").strip()
        bad = artifact_body(name="Web_App", checksum="md5:abc", image="not an image")
        result = invoke(self.push_args(bad), env)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("ritmo: refused (422): invalid request")
        for field in ("name", "checksum", "image"):
            assert re.search(rf"^  {field}: ", result.stderr, re.M), result.stderr
        assert git(remote, "rev-parse", "main").strip() == tip

    def test_missing_required_field(self, env: dict[str, str]) -> None:
        body = artifact_body()
        del body["checksum"]
        result = invoke(self.push_args(body), env)
        assert result.exit_code == 1
        assert re.search(r"^  checksum: ", result.stderr, re.M), result.stderr

    def test_unknown_token(self, live_server: str) -> None:
        env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": "ritmo_not-a-token"}
        result = invoke(self.push_args(artifact_body()), env)
        assert result.exit_code == 1
        assert "refused (401)" in result.stderr

    def test_token_without_write_scope(self, live_server: str, tokens: dict[str, str]) -> None:
        env = {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["reader"]}
        result = invoke(self.push_args(artifact_body()), env)
        assert result.exit_code == 1
        assert "refused (403)" in result.stderr and "artifacts:write" in result.stderr

    def test_server_down_exits_3(self) -> None:
        server = f"http://127.0.0.1:{free_port()}"
        result = invoke(
            self.push_args(artifact_body()), {"RITMO_SERVER": server, "RITMO_TOKEN": "ritmo_x"}
        )
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith(f"ritmo: cannot reach {server}")

    def test_bad_metadata_flag(self, env: dict[str, str]) -> None:
        result = invoke([*self.push_args(artifact_body()), "--metadata", "novalue"], env)
        assert result.exit_code == 2
        assert "KEY=VALUE" in result.stderr

    def test_file_not_an_object(self, tmp_path: Path, env: dict[str, str]) -> None:
        path = tmp_path / "list.json"
        path.write_text("[1, 2]")
        result = invoke(["artifact", "push", "--file", str(path)], env)
        assert result.exit_code == 2
        assert "JSON object" in result.stderr


class TestArtifactRead:
    """`ritmo artifact show` and `ritmo artifact list` print what the API holds."""

    @pytest.fixture
    def env(self, live_server: str, tokens: dict[str, str]) -> dict[str, str]:
        return {"RITMO_SERVER": live_server, "RITMO_TOKEN": tokens["reader"]}

    @pytest.fixture
    def recorded(self, client: FlaskClient, tokens: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for version in ("1.0.0", "1.1.0"):
            resp = client.post(
                "/api/v1/artifacts",
                json=artifact_body(version=version),
                headers=bearer(tokens["ci"]),
            )
            assert resp.status_code == 201, resp.json
            # What the registration did besides recording is not part of the artifact.
            out.append({k: v for k, v in resp.json.items() if k != "promotions"})
        return out

    def test_show(self, env: dict[str, str], recorded: list[dict[str, Any]]) -> None:
        result = invoke(["artifact", "show", recorded[0]["id"]], env)
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert shown.pop("held_in") == []  # no rollback keeps it out of anywhere
        assert shown == recorded[0]
        assert shown["version"] == "1.0.0" and shown["commit"] == recorded[0]["commit"]

    def test_show_unknown(self, env: dict[str, str]) -> None:
        result = invoke(["artifact", "show", "art-missing"], env)
        assert result.exit_code == 1
        assert result.stderr.startswith("ritmo: (404) no artifact 'art-missing'")

    def test_list_table(self, env: dict[str, str], recorded: list[dict[str, Any]]) -> None:
        result = invoke(["artifact", "list"], env)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["ID", "NAME", "VERSION", "STATUS", "CREATED"]
        rows = [line.split() for line in lines[1:-1]]
        assert [r[:3] for r in rows] == [
            [recorded[1]["id"], "web", "1.1.0"],  # newest first
            [recorded[0]["id"], "web", "1.0.0"],
        ]
        assert all(r[3] == recorded[0]["promotion_status"] for r in rows)
        assert rows[1][4] == recorded[0]["created_at"]
        assert lines[-1] == "(2 of 2)"

    def test_list_filter_json(self, env: dict[str, str], recorded: list[dict[str, Any]]) -> None:
        result = invoke(["artifact", "list", "--version", "1.1.0", "--json"], env)
        assert result.exit_code == 0, result.output
        body = json.loads(result.stdout)
        assert body["total"] == 1
        assert body["items"] == [recorded[1]]

    def test_list_bad_filter(self, env: dict[str, str]) -> None:
        result = invoke(["artifact", "list", "--name", "Not_A_Name"], env)
        assert result.exit_code == 1
        assert "(400)" in result.stderr and "name" in result.stderr

    def test_list_empty(self, env: dict[str, str]) -> None:
        result = invoke(["artifact", "list"], env)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == "(0 of 0)"


class TestReindex:
    """`ritmo reindex` rebuilds the index from git alone, answering exactly as before."""

    def api_view(self, client: FlaskClient, token: str, ids: list[str]) -> dict[str, Any]:
        listing = client.get("/api/v1/artifacts", headers=bearer(token))
        assert listing.status_code == 200
        shown = {}
        for ident in ids:
            resp = client.get(f"/api/v1/artifacts/{ident}", headers=bearer(token))
            assert resp.status_code == 200
            shown[ident] = resp.json
        return {"list": listing.json, "show": shown}

    def test_reindex_after_losing_the_index(
        self, settings: Settings, client: FlaskClient, tokens: dict[str, str]
    ) -> None:
        ids = []
        for name, version in (("web", "1.0.0"), ("api", "3.1.4"), ("web", "1.0.1")):
            resp = client.post(
                "/api/v1/artifacts",
                json=artifact_body(name=name, version=version),
                headers=bearer(tokens["ci"]),
            )
            assert resp.status_code == 201, resp.json
            ids.append(resp.json["id"])
        before = self.api_view(client, tokens["reader"], ids)
        assert before["list"]["total"] == 3

        files = list(settings.data_dir.glob("index.sqlite3*"))
        assert settings.data_dir / "index.sqlite3" in files
        for path in files:
            path.unlink()
        assert open_index(settings).get(ids[0]) is None  # gone, and not rebuilt by itself

        result = invoke(["reindex"], settings_env(settings))
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            f"Indexed 3 artifact records from {settings.remote_url}",
            "Indexed 0 deployments from its ritmo/deployments branch",
        ]
        # The rebuilt index answers before any app start-up (which would sync it) runs.
        rebuilt = open_index(settings).get(ids[1])
        shown = {k: v for k, v in before["show"][ids[1]].items() if k != "held_in"}
        assert rebuilt is not None and rebuilt.as_json() == shown

        # Tokens are not in git: they went with the database, and come back by hand.
        fresh = create_app(settings).test_client()
        gone = fresh.get("/api/v1/artifacts", headers=bearer(tokens["reader"]))
        assert gone.status_code == 401
        result = invoke(
            ["token", "create", "--name", "dashboard", "--scope", "artifacts:read"],
            settings_env(settings),
        )
        assert result.exit_code == 0, result.output
        after = self.api_view(fresh, result.stdout.splitlines()[-1], ids)
        assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)

    def test_reindex_unreachable_remote(self, tmp_path: Path, settings: Settings) -> None:
        env = {**settings_env(settings), "RITMO_MANIFESTS__URL": str(tmp_path / "gone.git")}
        result = invoke(["reindex"], env)
        assert result.exit_code == 2
        assert result.stderr.startswith("ritmo: setting manifests.url")


class _Server:
    """`ritmo serve` as a child process, with its output read line by line."""

    def __init__(
        self, cwd: Path, port: int, ritmo: Path = RITMO, environ: dict[str, str] | None = None
    ) -> None:
        base = os.environ if environ is None else environ
        env = {k: v for k, v in base.items() if not k.upper().startswith("RITMO_")}
        env["RITMO_LISTEN"] = f"127.0.0.1:{port}"
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(ritmo), "serve"], cwd=cwd, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() reaches the workers too
        )  # fmt: skip
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: IO[str], into: queue.Queue[str]) -> None:
        for line in stream:
            # log_format json (the default): the start-up notes are JSON lines too
            into.put(str(json.loads(line)["message"]))

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr_lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 90) -> list[str]:
        """Lines printed up to 'Ritmo listening'; then wait until HTTP answers."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith("Ritmo listening") for line in self.stdout_lines):
            if self.proc.poll() is not None and self.stdout.empty():
                pytest.fail(f"ritmo serve exited {self.proc.returncode}: {self.stderr_lines}")
            try:
                self.stdout_lines.append(
                    self.stdout.get(timeout=max(0.1, deadline - time.monotonic()))
                )
            except queue.Empty:
                pytest.fail(
                    f"no 'Ritmo listening' in time: {self.stdout_lines} {self.stderr_lines}"
                )
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/healthz", timeout=5).status_code == 200:
                    return list(self.stdout_lines)
            except requests.ConnectionError:
                time.sleep(0.1)
        pytest.fail(f"server did not answer: {self.stderr_lines}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # A worker the master left behind still holds the pipes: the reader threads (and
        # closing the pipes under them) would then wait for ever. End the whole group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for thread in self._threads:
            thread.join(timeout=10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def serve_cwd(short_tmp_path: Path) -> Iterator[Path]:
    cwd = short_tmp_path / "cwd"
    cwd.mkdir()
    yield cwd
    kill_gpg_agent(cwd / ".ritmo" / "gnupg")
    kill_gpg_agent(cwd / ".ritmo" / "trusted-gnupg")


def printed_token(lines: list[str], name: str) -> str:
    found = [line.split()[-1] for line in lines if line.strip().startswith(f"{name} ")]
    assert len(found) == 1, lines
    assert found[0].startswith("ritmo_")
    return found[0]


class TestEmbeddedServe:
    """With nothing configured, `ritmo serve` sets itself up in ./.ritmo and works end to end."""

    def test_first_and_second_start(self, serve_cwd: Path, kubectl: str, tmp_path: Path) -> None:
        port = free_port()
        server = _Server(serve_cwd, port)
        try:
            lines = server.wait_ready()
            key_lines = [line for line in lines if line.startswith("LOCAL SIGNING KEY ")]
            assert len(key_lines) == 1, lines
            fingerprint = key_lines[0].split()[-1]
            assert re.fullmatch(r"[0-9A-F]{40}", fingerprint)
            at = lines.index(key_lines[0])
            assert lines[at - 1] == lines[at + 4] == "!" * 72  # the loud banner
            assert any("local use only" in line for line in lines)
            assert any(line.startswith("Tokens (shown once") for line in lines)
            admin, ci = printed_token(lines, "admin"), printed_token(lines, "ci")
            assert admin != ci
            assert lines[-1] == f"Ritmo listening on {server.base}"

            resp = requests.post(
                server.base + "/api/v1/artifacts", json=artifact_body(), headers=bearer(ci),
                timeout=60,
            )  # fmt: skip
            assert resp.status_code == 201, resp.text
            artifact_commit = resp.json()["commit"]
            denied = requests.post(
                server.base + "/api/v1/artifacts", json=artifact_body(version="9.9.9"),
                headers=bearer("ritmo_wrong"), timeout=60,
            )  # fmt: skip
            assert denied.status_code == 401
        finally:
            server.stop()

        data = serve_cwd / ".ritmo"
        bare = data / "manifests.git"
        assert (bare / "HEAD").exists()
        history = git(bare, "rev-list", "--reverse", "main").split()
        # The scaffold, the adoption of the shipped policy (written into .ritmo/policy.yaml),
        # the record, then the shipped policy's pins in dev and staging.
        assert len(history) == 5
        assert "Ritmo-Policy-Adopted: yes" in git(bare, "log", "-1", "--format=%B", history[1])
        assert git(bare, "show", "main:.ritmo/policy.yaml") == DEFAULT_POLICY_PATH.read_text()
        assert history[2] == artifact_commit
        assert "Ritmo-Promotion: dev -> staging" in git(bare, "log", "-1", "--format=%B")
        assert "Ritmo-Init: web" in git(bare, "log", "-1", "--format=%B", history[0])
        for sha in history:
            verify_commit(bare, sha, data / "gnupg")
        assert fingerprint in verify_commit(bare, history[2], data / "gnupg")

        checkout = tmp_path / "checkout"
        git(tmp_path, "clone", "--quiet", str(bare), str(checkout))
        assert (checkout / "artifacts" / "web" / "1.2.3.yaml").exists()
        rendered = subprocess.run(
            [kubectl, "kustomize", str(checkout / "apps/web/overlays/dev")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert rendered.returncode == 0, rendered.stderr
        assert "kind: Deployment" in rendered.stdout
        assert "namespace: web-dev" in rendered.stdout
        assert "image: registry.example.com/acme/web:1.2.3" in rendered.stdout

        token_entries = data_tokens(data).all()
        assert sorted(e.name for e in token_entries) == ["admin", "ci"]
        assert admin.encode() not in (data / "index.sqlite3").read_bytes()

        kill_gpg_agent(data / "gnupg")
        kill_gpg_agent(data / "trusted-gnupg")

        # Second start: same key, no new tokens, no new seed commit.
        server = _Server(serve_cwd, free_port())
        try:
            again = server.wait_ready()
            reader = requests.get(
                server.base + f"/api/v1/artifacts/{artifact_id('web', '1.2.3')}",
                headers=bearer(ci), timeout=60,
            )  # fmt: skip
            assert reader.status_code == 200
            assert reader.json()["commit"] == artifact_commit
        finally:
            server.stop()
        assert f"LOCAL SIGNING KEY {fingerprint}" in again
        assert not any(line.startswith("Tokens") for line in again), again
        assert not any("ritmo_" in line for line in again), again
        assert [(e.name, e.scopes, e.created_at) for e in data_tokens(data).all()] == [
            (e.name, e.scopes, e.created_at) for e in token_entries
        ]
        assert git(bare, "rev-list", "--reverse", "main").split() == history
        secret = subprocess.run(
            ["gpg", "--homedir", str(data / "gnupg"), "--list-secret-keys", "--with-colons"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert secret.stdout.count("\nsec:") + secret.stdout.startswith("sec:") == 1


def test_an_index_of_an_older_shape_is_rebuilt_from_git(
    settings: Settings, runtime: Runtime, client: FlaskClient, tokens: dict[str, str]
) -> None:
    """An index written by an earlier Ritmo (no schema mark, a column missing) is dropped
    and rebuilt from git at start-up; the API answers as before."""
    import sqlite3

    body = artifact_body(version="9.0.0")
    created = client.post("/api/v1/artifacts", json=body, headers=bearer(tokens["ci"]))
    assert created.status_code == 201
    runtime.close()
    database = settings.data_dir / "index.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE promotions DROP COLUMN automatic")
        conn.execute("DELETE FROM index_state WHERE key = 'schema'")
    fresh = build_runtime(settings)
    try:
        found = fresh.index.get(created.json["id"])
        assert found is not None and found.record.version == "9.0.0"
        with sqlite3.connect(database) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(promotions)")]
        assert "automatic" in columns
    finally:
        fresh.close()
