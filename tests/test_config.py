"""Settings: YAML file, RITMO_* overrides, defaults, refusals, and fail-closed start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.manifests.signing import open_gnupg
from bot.runtime import build_runtime
from tests.helpers import kill_gpg_agent

RITMO = Path(sys.executable).parent / "ritmo"  # bot/cli/ has no `__main__` guard
ABSENT_KEY = "A" * 40
OTHER_KEY = "B" * 40


pytestmark = pytest.mark.usefixtures("clean_ritmo_env")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose gpg agents (the trusted keyring's) are killed afterwards."""
    path = tmp_path / "data"
    yield path
    kill_gpg_agent(path / "trusted-gnupg")


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def refusal(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(None, **overrides)
    return str(info.value)


def configured(
    data_dir: Path, remote: Path | str, signing_key: tuple[Path, str], **signing: Any
) -> Settings:
    home, fingerprint = signing_key
    return load_settings(
        None,
        data_dir=data_dir,
        manifests={"url": str(remote)},
        signing={"gnupghome": str(home), "key": fingerprint, **signing},
    )


def public_keyring(tmp_path: Path, signing_key: tuple[Path, str]) -> Path:
    home, fingerprint = signing_key
    armored = open_gnupg(home).export_keys(fingerprint)
    assert "BEGIN PGP PUBLIC KEY BLOCK" in armored
    return write_yaml(tmp_path / "ci-signers.asc", armored)


class TestFileAndEnvironment:
    """Values come from the YAML file; RITMO_* variables override them."""

    def test_values_from_yaml_file(self, tmp_path: Path) -> None:
        path = write_yaml(
            tmp_path / "ritmo.yaml",
            "data_dir: /var/lib/ritmo\n"
            "listen: 0.0.0.0:9000\n"
            "manifests:\n"
            "  url: https://git.example.com/acme/manifests.git\n"
            "  branch: release\n"
            "  push_attempts: 3\n"
            "signing:\n"
            "  key: 0123 4567 89ab cdef 0123 4567 89AB CDEF 0123 4567\n"
            "forge:\n"
            "  kind: github\n",
        )
        s = load_settings(path)
        assert s.data_dir == Path("/var/lib/ritmo")
        assert s.listen == "0.0.0.0:9000"
        assert s.manifests.url == "https://git.example.com/acme/manifests.git"
        assert s.manifests.branch == "release"
        assert s.manifests.push_attempts == 3
        assert s.signing.key == "0123456789ABCDEF0123456789ABCDEF01234567"
        assert s.forge.kind == "github"
        assert not s.embedded_remote

    def test_env_overrides_file_and_keeps_the_rest_of_the_section(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = write_yaml(
            tmp_path / "ritmo.yaml",
            "listen: 0.0.0.0:9000\n"
            "manifests:\n  url: /srv/from-file.git\n  branch: release\n"
            f"signing:\n  key: {OTHER_KEY}\n",
        )
        monkeypatch.setenv("RITMO_MANIFESTS__URL", "/srv/from-env.git")
        monkeypatch.setenv("RITMO_LISTEN", "127.0.0.1:7000")
        monkeypatch.setenv("RITMO_SIGNING__KEY", ABSENT_KEY.lower())
        s = load_settings(path)
        assert s.manifests.url == "/srv/from-env.git"
        assert s.listen == "127.0.0.1:7000"
        assert s.signing.key == ABSENT_KEY
        assert s.manifests.branch == "release"  # not overridden: still from the file

    def test_env_fixes_a_bad_file_value(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "manifests:\n  url: http://insecure/m.git\n")
        monkeypatch.setenv("RITMO_MANIFESTS__URL", "ssh://git@example.com/m.git")
        assert load_settings(path).manifests.url == "ssh://git@example.com/m.git"

    def test_env_values_of_other_types(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RITMO_DATA_DIR", "/tmp/elsewhere")
        monkeypatch.setenv("RITMO_WORKERS", "4")
        monkeypatch.setenv("RITMO_SIGNING__REQUIRE_ARTIFACT_SIGNATURES", "true")
        monkeypatch.setenv("RITMO_SIGNING__TRUSTED_KEYS", f'["{OTHER_KEY.lower()}"]')
        monkeypatch.setenv("RITMO_FORGE__KIND", "github")
        s = load_settings(None)
        assert s.data_dir == Path("/tmp/elsewhere")
        assert s.workers == 4
        assert s.signing.require_artifact_signatures is True
        assert s.signing.trusted_keys == [OTHER_KEY]
        assert s.forge.kind == "github"

    def test_empty_file_gives_defaults(self, tmp_path: Path) -> None:
        s = load_settings(write_yaml(tmp_path / "empty.yaml", ""))
        assert s.listen == "127.0.0.1:8080"
        assert s.manifests.url is None


class TestDefaults:
    """With nothing configured: embedded data dir, branch main, local forge."""

    def test_defaults(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        s = load_settings(None)
        assert s.data_dir == Path(".ritmo")
        assert s.manifests.branch == "main"
        assert s.forge.kind == "local"
        assert s.listen == "127.0.0.1:8080"
        assert s.manifests.url is None and s.embedded_remote
        assert s.signing.key is None
        assert s.signing.require_artifact_signatures is False

    def test_derived_paths_live_in_data_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        s = load_settings(None)
        root = (tmp_path / ".ritmo").resolve()
        assert s.gnupghome == root / "gnupg"
        assert s.tokens_file == root / "tokens.json"
        assert s.remote_url == str(root / "manifests.git")
        assert s.index_url == f"sqlite:///{root / 'index.sqlite3'}"


class TestRefusals:
    """Bad settings are refused with one line that names the setting and its variable."""

    def test_unknown_top_level_key_in_file(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "listen: 127.0.0.1:8080\ncolour: red\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        message = str(info.value)
        assert "colour" in message and "not a known setting" in message
        assert str(path) in message
        assert "\n" not in message

    def test_unknown_nested_key_in_file(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "manifests:\n  branhc: main\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert "manifests.branhc" in str(info.value)
        assert "RITMO_MANIFESTS__BRANHC" in str(info.value)

    @pytest.mark.parametrize("name", ["RITMO_LISTN", "RITMO_MANIFEST__URL", "ritmo_colour"])
    def test_unknown_variable_like_an_unknown_key(
        self, monkeypatch: pytest.MonkeyPatch, name: str
    ) -> None:
        monkeypatch.setenv(name, "/srv/m.git")
        with pytest.raises(ConfigError) as info:
            load_settings(None)
        assert str(info.value).startswith(
            f"variable {name}: is not a known setting; remove it or check the spelling"
        )

    def test_variables_that_are_not_settings_are_allowed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The client's, the settings file's, the test suite's (documented in the README)."""
        for name in ("RITMO_CONFIG", "RITMO_SERVER", "RITMO_TOKEN", "RITMO_TEST_DATABASE_URL"):
            monkeypatch.setenv(name, "x")
        monkeypatch.setenv("RITMO_TEST_DATABASE_URL", "postgresql://nowhere/x")
        assert load_settings(None).listen == "127.0.0.1:8080"

    def test_unknown_nested_key_in_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RITMO_SIGNING__KEYS", OTHER_KEY)
        with pytest.raises(ConfigError) as info:
            load_settings(None)
        assert "signing.keys" in str(info.value)
        assert "not a known setting" in str(info.value)

    @pytest.mark.parametrize("listen", ["nope", "127.0.0.1", "127.0.0.1:0", ":8080", "h:99999"])
    def test_bad_listen(self, listen: str) -> None:
        message = refusal(listen=listen)
        assert message.startswith("setting listen (RITMO_LISTEN):")
        assert "host:port" in message
        assert "\n" not in message

    def test_bad_listen_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RITMO_LISTEN", "localhost:http")
        with pytest.raises(ConfigError, match=r"RITMO_LISTEN"):
            load_settings(None)

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("http://git.example.com/m.git", "not supported"),
            ("ftp://git.example.com/m.git", "not supported"),
            ("manifests.git", "not an absolute path"),
            ("./repos/manifests.git", "not an absolute path"),
            ("https://user:s3cret@git.example.com/m.git", "credentials"),
            ("https://ghp_s3cret@git.example.com/m.git", "credentials"),
        ],
    )
    def test_bad_manifests_url(self, url: str, why: str) -> None:
        message = refusal(manifests={"url": url})
        assert "manifests.url" in message
        assert "RITMO_MANIFESTS__URL" in message
        assert why in message
        assert "\n" not in message

    def test_credentials_are_not_echoed(self) -> None:
        message = refusal(manifests={"url": "https://user:s3cret@git.example.com/m.git"})
        assert "s3cret" not in message

    @pytest.mark.parametrize(
        "url", ["http://user:s3cret@git.example.com/m.git", "ftp://user:s3cret@example.com/m"]
    )
    def test_credentials_in_refused_scheme_are_not_echoed(self, url: str) -> None:
        message = refusal(manifests={"url": url})
        assert "manifests.url" in message
        assert "s3cret" not in message, message

    def test_bad_url_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RITMO_MANIFESTS__URL", "http://git.example.com/m.git")
        with pytest.raises(ConfigError) as info:
            load_settings(None)
        assert "manifests.url (RITMO_MANIFESTS__URL)" in str(info.value)

    @pytest.mark.parametrize(
        "url",
        [
            "https://git.example.com/acme/m.git",
            "ssh://git@example.com/acme/m.git",
            "git@github.com:acme/m.git",
            "file:///srv/m.git",
            "/srv/m.git",
        ],
    )
    def test_good_manifests_url(self, url: str) -> None:
        assert load_settings(None, manifests={"url": url}).manifests.url == url

    def test_several_errors_stay_on_one_line(self) -> None:
        message = refusal(listen="nope", manifests={"url": "ftp://x/y", "branch": "a..b"})
        assert "\n" not in message
        for key in ("listen", "manifests.url", "manifests.branch"):
            assert key in message

    @pytest.mark.parametrize("key", ["1234", "not-hex" * 6, "A" * 39])
    def test_short_or_bad_fingerprint(self, key: str) -> None:
        message = refusal(signing={"key": key})
        assert "signing.key (RITMO_SIGNING__KEY)" in message
        assert "40-hex-digit" in message

    def test_missing_config_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(tmp_path / "absent.yaml")
        assert "absent.yaml" in str(info.value)
        assert "\n" not in str(info.value)

    def test_invalid_yaml_is_one_line(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "manifests: [\n  url: x\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        message = str(info.value)
        assert "not valid YAML" in message
        assert "\n" not in message, message

    def test_top_level_must_be_a_mapping(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "- listen\n- 127.0.0.1:80\n")
        with pytest.raises(ConfigError, match="must be a mapping"):
            load_settings(path)


class TestFailClosed:
    """build_runtime refuses to start on settings that would not work."""

    def test_good_settings_build(
        self, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        runtime = build_runtime(configured(data_dir, remote, signing_key))
        assert runtime.signer.fingerprint == signing_key[1]
        assert runtime.mirror.tip() is not None

    def test_signing_key_absent_from_gnupghome(
        self, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        settings = load_settings(
            None,
            data_dir=data_dir,
            manifests={"url": str(remote)},
            signing={"gnupghome": str(signing_key[0]), "key": ABSENT_KEY},
        )
        with pytest.raises(ConfigError) as info:
            build_runtime(settings)
        message = str(info.value)
        assert "signing.key" in message and "RITMO_SIGNING__KEY" in message
        assert ABSENT_KEY in message
        assert "\n" not in message

    def test_real_remote_never_falls_back_to_the_embedded_key(
        self, tmp_path: Path, data_dir: Path, remote: Path
    ) -> None:
        """An embedded key in the home does not sign for a configured remote."""
        from bot.manifests.signing import generate_embedded_key, open_gnupg

        home = tmp_path / "embedded-gnupg"
        generate_embedded_key(open_gnupg(home), "ritmo@localhost")
        settings = load_settings(
            None,
            data_dir=data_dir,
            manifests={"url": str(remote)},
            signing={"gnupghome": str(home)},
        )
        try:
            with pytest.raises(ConfigError) as info:
                build_runtime(settings)
            assert "signing.key (RITMO_SIGNING__KEY) is not set" in str(info.value)
            assert str(remote) in str(info.value)
        finally:
            kill_gpg_agent(home)

    def test_signing_key_with_empty_gnupghome(
        self, tmp_path: Path, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        empty = tmp_path / "empty-gnupg"
        settings = load_settings(
            None,
            data_dir=data_dir,
            manifests={"url": str(remote)},
            signing={"gnupghome": str(empty), "key": signing_key[1]},
        )
        try:
            with pytest.raises(ConfigError, match=r"signing\.key"):
                build_runtime(settings)
        finally:
            kill_gpg_agent(empty)

    @pytest.mark.parametrize("kind", ["missing-path", "file-url", "not-a-repo"])
    def test_unreachable_remote(
        self, tmp_path: Path, data_dir: Path, signing_key: tuple[Path, str], kind: str
    ) -> None:
        if kind == "missing-path":
            url = str(tmp_path / "nowhere" / "manifests.git")
        elif kind == "file-url":
            url = f"file://{tmp_path}/nothing.git"
        else:
            (tmp_path / "plain").mkdir()
            url = str(tmp_path / "plain")
        with pytest.raises(ConfigError) as info:
            build_runtime(configured(data_dir, url, signing_key))
        message = str(info.value)
        assert "manifests.url" in message and "RITMO_MANIFESTS__URL" in message
        assert url in message
        assert "\n" not in message

    def test_require_signatures_without_trusted_keys(
        self, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        settings = configured(data_dir, remote, signing_key, require_artifact_signatures=True)
        with pytest.raises(ConfigError) as info:
            build_runtime(settings)
        assert "require_artifact_signatures" in str(info.value)
        assert "trusted_keys" in str(info.value)

    def test_trusted_key_not_in_keyring(
        self, tmp_path: Path, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        keyring = public_keyring(tmp_path, signing_key)
        settings = configured(
            data_dir, remote, signing_key, trusted_keys=[OTHER_KEY], trusted_keyring=str(keyring)
        )
        with pytest.raises(ConfigError) as info:
            build_runtime(settings)
        assert "signing.trusted_keys" in str(info.value)
        assert OTHER_KEY in str(info.value)

    def test_trusted_key_without_keyring(
        self, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        settings = configured(data_dir, remote, signing_key, trusted_keys=[signing_key[1]])
        with pytest.raises(ConfigError, match=r"signing\.trusted_keys"):
            build_runtime(settings)

    def test_policy_key_not_in_policy_keyring(
        self, tmp_path: Path, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        keyring = public_keyring(tmp_path, signing_key)
        settings = configured(
            data_dir, remote, signing_key, policy_keys=[OTHER_KEY], policy_keyring=str(keyring)
        )
        with pytest.raises(ConfigError) as info:
            build_runtime(settings)
        assert "signing.policy_keys" in str(info.value) and OTHER_KEY in str(info.value)
        missing = configured(
            data_dir, remote, signing_key, policy_keys=[signing_key[1]],
            policy_keyring=str(tmp_path / "absent.asc"),
        )  # fmt: skip
        with pytest.raises(ConfigError, match=r"signing\.policy_keyring"):
            build_runtime(missing)

    def test_policy_keys_are_fingerprints(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"signing\.policy_keys"):
            load_settings(None, data_dir=tmp_path, signing={"policy_keys": ["not-a-key"]})
        given = load_settings(None, data_dir=tmp_path, signing={"policy_keys": [OTHER_KEY.lower()]})
        assert given.signing.policy_keys == [OTHER_KEY]

    def test_trusted_keyring_file_missing(
        self, tmp_path: Path, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        settings = configured(
            data_dir,
            remote,
            signing_key,
            trusted_keys=[signing_key[1]],
            trusted_keyring=str(tmp_path / "absent.asc"),
        )
        with pytest.raises(ConfigError, match=r"signing\.trusted_keyring"):
            build_runtime(settings)

    def test_trusted_key_in_keyring_builds(
        self, tmp_path: Path, data_dir: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        keyring = public_keyring(tmp_path, signing_key)
        settings = configured(
            data_dir,
            remote,
            signing_key,
            require_artifact_signatures=True,
            trusted_keys=[signing_key[1]],
            trusted_keyring=str(keyring),
        )
        runtime = build_runtime(settings)
        assert runtime.registry is not None
        assert runtime.settings.signing.trusted_keys == [signing_key[1]]


def run_serve(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("RITMO_")}
    return subprocess.run(
        [str(RITMO), *args, "serve"],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestServeRefuses:
    """`ritmo serve` with a bad setting exits 2 with exactly one `ritmo: ` line on stderr."""

    def assert_refused(self, proc: subprocess.CompletedProcess[str], *needles: str) -> None:
        assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("ritmo: "), lines[0]
        for needle in needles:
            assert needle in lines[0]
        assert "Ritmo listening" not in proc.stdout

    def test_script_exists(self) -> None:
        assert RITMO.exists()

    def test_bad_listen(self, tmp_path: Path) -> None:
        proc = run_serve({"RITMO_LISTEN": "nowhere"}, tmp_path)
        self.assert_refused(proc, "listen", "RITMO_LISTEN")
        assert not (tmp_path / ".ritmo").exists()  # refused before touching anything

    @pytest.mark.parametrize(
        "url",
        ["http://git.example.com/m.git", "ftp://example.com/m", "relative/m.git",
         "https://u:p@git.example.com/m.git"],
    )  # fmt: skip
    def test_bad_url(self, tmp_path: Path, url: str) -> None:
        proc = run_serve({"RITMO_MANIFESTS__URL": url}, tmp_path)
        self.assert_refused(proc, "manifests.url", "RITMO_MANIFESTS__URL")

    def test_unknown_variable(self, tmp_path: Path) -> None:
        proc = run_serve({"RITMO_LISTN": "127.0.0.1:9"}, tmp_path)
        self.assert_refused(
            proc, "variable RITMO_LISTN: is not a known setting; remove it or check the "
            "spelling (RITMO_LISTEN?)",
        )  # fmt: skip
        assert not (tmp_path / ".ritmo").exists()

    def test_unknown_key_in_config_file(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "manifest:\n  url: /srv/m.git\n")
        proc = run_serve({}, tmp_path, "--config", str(path))
        self.assert_refused(proc, "manifest", "not a known setting")

    def test_config_file_from_env(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "listen: 8080\n")
        proc = run_serve({"RITMO_CONFIG": str(path)}, tmp_path)
        self.assert_refused(proc, "listen")

    def test_invalid_yaml_config(self, tmp_path: Path) -> None:
        path = write_yaml(tmp_path / "ritmo.yaml", "manifests: [\n  url: x\n")
        proc = run_serve({}, tmp_path, "--config", str(path))
        self.assert_refused(proc, "not valid YAML")

    def test_absent_signing_key(
        self, tmp_path: Path, remote: Path, signing_key: tuple[Path, str]
    ) -> None:
        env = {
            "RITMO_DATA_DIR": str(tmp_path / "data"),
            "RITMO_MANIFESTS__URL": str(remote),
            "RITMO_SIGNING__GNUPGHOME": str(signing_key[0]),
            "RITMO_SIGNING__KEY": ABSENT_KEY,
        }
        proc = run_serve(env, tmp_path)
        self.assert_refused(proc, "signing.key", ABSENT_KEY)

    def test_unreachable_remote(self, tmp_path: Path, signing_key: tuple[Path, str]) -> None:
        env = {
            "RITMO_DATA_DIR": str(tmp_path / "data"),
            "RITMO_MANIFESTS__URL": f"file://{tmp_path}/nothing.git",
            "RITMO_SIGNING__GNUPGHOME": str(signing_key[0]),
            "RITMO_SIGNING__KEY": signing_key[1],
        }
        try:
            proc = run_serve(env, tmp_path)
        finally:
            kill_gpg_agent(tmp_path / "data" / "trusted-gnupg")
        self.assert_refused(proc, "manifests.url", "cannot reach")
