"""`ritmo doctor` on the real local parts: a bare remote, a gpg key, the database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.runtime import Runtime
from bot.store.schema import SCHEMA_VERSION
from tests.doctor.helpers import doctor, write_config

ORDER = [
    "settings", "remote reachable", "remote writable", "signing key", "policy", "database",
    "cd endpoints",
]  # fmt: skip


def test_all_ok_on_a_working_setup(tmp_path: Path, settings: Settings, runtime: Runtime) -> None:
    config = write_config(tmp_path / "ritmo.yaml", settings)
    result, lines = doctor(config)
    assert result.exit_code == 0, result.stdout
    assert list(lines) == ORDER
    assert all(line.startswith("ok    ") for line in lines.values()), result.stdout
    assert "git push --dry-run to main accepted" in lines["remote writable"]
    assert settings.signing.key is not None and settings.signing.key in lines["signing key"]
    assert "valid, in force" in lines["policy"]
    assert f"schema {SCHEMA_VERSION}" in lines["database"]
    assert "ArgoCD secret set; Flux off" in lines["cd endpoints"]


def _fake_ssh(tmp_path: Path, text: str) -> dict[str, str]:
    """PATH with an `ssh` first: git runs it as `ssh [-o ...] HOST COMMAND`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ssh"
    script.write_text(text)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def _refusing_ssh(tmp_path: Path) -> dict[str, str]:
    """An ssh that serves fetches and refuses pushes, as GitHub does for a read-only deploy
    key; it runs the command it is given locally."""
    return _fake_ssh(
        tmp_path,
        "#!/bin/sh\n"
        "for command; do :; done\n"
        'case "$command" in\n'
        "  git-receive-pack*) echo 'ERROR: The key you are authenticating with has been marked"
        " as read only.' >&2; exit 128;;\n"
        "esac\n"
        'exec sh -c "$command"\n',
    )


def test_a_read_only_remote_is_reachable_but_not_writable(
    tmp_path: Path, settings: Settings, runtime: Runtime, remote: Path
) -> None:
    env = _refusing_ssh(tmp_path)
    config = write_config(tmp_path / "ritmo.yaml", settings,
                          manifests={"url": f"ssh://git@localhost{remote}"})  # fmt: skip
    result, lines = doctor(config, env)
    assert result.exit_code == 1
    assert lines["remote reachable"].startswith("ok    ")
    line = lines["remote writable"]
    assert line.startswith("FAIL  remote writable: git push --dry-run")
    assert "marked as read only" in line and "write access" in line
    # The rest is still checked.
    assert lines["policy"].startswith("ok    ") and lines["database"].startswith("ok    ")


def test_the_same_ssh_remote_with_write_access_is_writable(
    tmp_path: Path, settings: Settings, runtime: Runtime, remote: Path
) -> None:
    """The control for the test above: its fake ssh is not what fails."""
    env = _fake_ssh(tmp_path, '#!/bin/sh\nfor command; do :; done\nexec sh -c "$command"\n')
    config = write_config(tmp_path / "ritmo.yaml", settings,
                          manifests={"url": f"ssh://git@localhost{remote}"})  # fmt: skip
    result, lines = doctor(config, env)
    assert lines["remote writable"].startswith("ok    "), result.stdout
    assert result.exit_code == 0


def test_an_unreachable_remote(tmp_path: Path, settings: Settings) -> None:
    config = write_config(tmp_path / "ritmo.yaml", settings,
                          manifests={"url": str(tmp_path / "nowhere.git")})  # fmt: skip
    result, lines = doctor(config)
    assert result.exit_code == 1
    assert "cannot reach" in lines["remote reachable"] and "RITMO_MANIFESTS__TOKEN" in lines[
        "remote reachable"]  # fmt: skip
    assert lines["remote writable"] == "skip  remote writable: needs the remote"
    assert lines["policy"].startswith("skip  ")


def test_a_missing_signing_key(tmp_path: Path, settings: Settings, runtime: Runtime) -> None:
    absent = "0123456789ABCDEF0123456789ABCDEF01234567"
    config = write_config(tmp_path / "ritmo.yaml", settings, signing={"key": absent})
    result, lines = doctor(config)
    assert result.exit_code == 1
    line = lines["signing key"]
    assert line.startswith("FAIL  signing key:") and f"no secret key {absent}" in line
    assert "import it there" in line
    assert lines["policy"] == "skip  policy: needs the remote and the signing key"


BAD_POLICY = """\
environments:
  - {name: dev}
  - {name: staging}
promotion_rules:
  - {from: dev, to: production}
"""


@pytest.mark.parametrize("remote_policy", [BAD_POLICY])
def test_a_bad_policy_names_its_line(tmp_path: Path, settings: Settings) -> None:
    """Ritmo would refuse to start on this branch; the doctor says where and how to fix."""
    config = write_config(tmp_path / "ritmo.yaml", settings)
    result, lines = doctor(config)
    assert result.exit_code == 1
    line = lines["policy"]
    assert line.startswith("FAIL  policy: ")
    assert "policy.yaml:5:" in line and "production" in line
    assert "ritmo policy check" in line
    assert lines["signing key"].startswith("ok    ")


def test_an_index_of_another_schema(tmp_path: Path, settings: Settings, runtime: Runtime) -> None:
    with runtime.index.engine.begin() as conn:
        conn.execute(sa.text("UPDATE index_state SET value = '2' WHERE key = 'schema'"))
    result, lines = doctor(write_config(tmp_path / "ritmo.yaml", settings))
    assert result.exit_code == 1
    assert lines["database"].startswith(
        f"FAIL  database: schema 2, this Ritmo needs schema {SCHEMA_VERSION}"
    )


def test_no_index_yet(tmp_path: Path, settings: Settings) -> None:
    result, lines = doctor(write_config(tmp_path / "ritmo.yaml", settings))
    assert result.exit_code == 1
    assert "no index at" in lines["database"] and "ritmo serve" in lines["database"]
    assert not (settings.data_dir / "index.sqlite3").exists()  # the doctor made none


def test_no_cd_secret(tmp_path: Path, settings: Settings, runtime: Runtime) -> None:
    config = write_config(tmp_path / "ritmo.yaml", settings, cd={"argocd_token": None})
    result, lines = doctor(config)
    assert result.exit_code == 1
    line = lines["cd endpoints"]
    assert "RITMO_CD__ARGOCD_TOKEN" in line and "RITMO_CD__FLUX_SECRET" in line
    assert [n for n, ln in lines.items() if ln.startswith("FAIL")] == ["cd endpoints"]


def test_bad_settings_stop_at_the_first_line(tmp_path: Path) -> None:
    config = tmp_path / "ritmo.yaml"
    config.write_text("manifests: {branchh: main}\n")
    result, lines = doctor(config)
    assert result.exit_code == 1
    assert lines["settings"].startswith("FAIL  settings: setting manifests.branchh")
    assert all(line.startswith("skip") for n, line in lines.items() if n != "settings")


def test_the_doctor_writes_nothing_into_the_data_dir(
    tmp_path: Path, settings: Settings, runtime: Runtime
) -> None:
    before = sorted(str(p) for p in settings.data_dir.rglob("*") if "gnupg" not in p.parts[-2:])
    doctor(write_config(tmp_path / "ritmo.yaml", settings))
    after = sorted(str(p) for p in settings.data_dir.rglob("*") if "gnupg" not in p.parts[-2:])
    assert [
        p for p in after if p not in before and not os.path.basename(p).startswith("index.sqlite3")
    ] == []


def test_a_gnupg_home_that_does_not_exist(tmp_path: Path, settings: Settings) -> None:
    home = tmp_path / "no-such-home"
    config = write_config(tmp_path / "ritmo.yaml", settings, signing={"gnupghome": str(home)})
    result, lines = doctor(config)
    assert result.exit_code == 1
    assert lines["signing key"].startswith(f"FAIL  signing key: no GnuPG home at {home}")
    assert "RITMO_SIGNING__GNUPGHOME" in lines["signing key"]
    assert not home.exists()
