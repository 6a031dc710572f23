"""The built wheel runs on its own: `pip wheel .`, installed into a fresh venv, `ritmo serve`
in an empty directory, then the quick start through that venv's `ritmo`: register, the
shipped policy's automatic promotions, a production request, two approvals, merged.

Never skipped: hatchling (the build backend) is in the test extras, so the wheel builds with
`--no-build-isolation` and no download. The fresh venv gets the wheel with `--no-deps`; its
dependencies come from the test venv's site-packages, appended to its sys.path by a .pth
line (a plain path: the .pth files there, such as an editable install of this checkout, are
not run). So what runs is the wheel's `bot`, with no source tree on the path; a dependency
missing from pyproject.toml would not be caught here (the Docker build resolves them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import checksum, git, kill_gpg_agent, verify_commit
from tests.test_cli import _Server, free_port, printed_token

REPO = Path(__file__).resolve().parent.parent


def _clean_environ() -> dict[str, str]:
    """The outer environment without what would put this checkout's code on the path."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {
        k: v for k, v in os.environ.items() if k not in drop and not k.upper().startswith("RITMO_")
    }


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the built wheel installed in it; returns its bin/."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    env = _clean_environ()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "-w", str(dist),
         "--no-deps", "--no-build-isolation", "--quiet"],
        check=True, env=env, cwd=root,
    )  # fmt: skip
    wheels = sorted(dist.glob("ritmo-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "ritmo-test-deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheels[0])],
        check=True, env=env,
    )  # fmt: skip
    return venv / "bin"


def test_the_wheel_carries_templates_and_policies(wheel_venv: Path) -> None:
    """`bot` and its shipped folders come from the venv, not from this checkout."""
    probe = subprocess.run(
        [str(wheel_venv / "python"), "-c",
         "import bot, json; from bot.templates import TEMPLATES_DIR;"
         "from bot.policy.load import DEFAULT_POLICY_PATH;"
         "print(json.dumps([bot.__file__, str(TEMPLATES_DIR), str(DEFAULT_POLICY_PATH)]))"],
        check=True, capture_output=True, text=True, env=_clean_environ(), cwd=wheel_venv,
    )  # fmt: skip
    module, templates, policy = (Path(p) for p in json.loads(probe.stdout))
    venv = wheel_venv.parent
    for path in (module, templates, policy):
        assert path.is_relative_to(venv), path
    assert templates == module.parent / "_shipped" / "templates"
    assert (templates / "commit" / "merge.txt").read_bytes() == (
        REPO / "templates" / "commit" / "merge.txt"
    ).read_bytes()
    assert (templates / "kubernetes").is_dir() == (REPO / "templates" / "kubernetes").is_dir()
    assert policy.read_bytes() == (REPO / "policies" / "default.yaml").read_bytes()


@pytest.fixture
def empty_dir(short_tmp_path: Path) -> Iterator[Path]:
    cwd = short_tmp_path / "empty"
    cwd.mkdir()
    yield cwd
    kill_gpg_agent(cwd / ".ritmo" / "gnupg")
    kill_gpg_agent(cwd / ".ritmo" / "trusted-gnupg")


def test_quick_start_through_the_installed_wheel(wheel_venv: Path, empty_dir: Path) -> None:
    ritmo = wheel_venv / "ritmo"
    environ = _clean_environ()
    server = _Server(empty_dir, free_port(), ritmo=ritmo, environ=environ)

    def run(*args: str, token: str | None = None) -> str:
        env = {**environ, "RITMO_SERVER": server.base, **({"RITMO_TOKEN": token} if token else {})}
        proc = subprocess.run(
            [str(ritmo), *args], cwd=empty_dir, env=env, capture_output=True, text=True,
            check=False, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, f"ritmo {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    try:
        lines = server.wait_ready()
        ci = printed_token(lines, "ci")

        pushed = run(
            "artifact", "push", "--name", "web", "--version", "1.2.3", "--build-id", "b-1",
            "--checksum", checksum("web-1.2.3"),
            "--image", "registry.example.com/acme/web:1.2.3",
            "--storage-url", "s3://artifacts/web-1.2.3.tar.gz", token=ci,
        )  # fmt: skip
        artifact_id = re.search(r"^recorded: (art-\S+) web 1\.2\.3$", pushed, re.M)
        assert artifact_id, pushed

        # The shipped policy pins a new artifact in dev, then staging, by itself.
        pins = json.loads(run("status", "--json", token=ci))
        assert json.dumps(pins).count('"1.2.3"') >= 2, pins

        def token(name: str, scope: str, *groups: str) -> str:
            args = ["token", "create", "--name", name, "--scope", scope]
            for group in groups:
                args += ["--group", group]
            return run(*args).splitlines()[-1]

        release = token("release-bot", "promotions:write")
        alice = token("alice", "promotions:approve", "ops-team")
        bob = token("bob", "promotions:approve", "security-team")

        opened = run(
            "promote", artifact_id[1], "--from", "staging", "--to", "production", token=release
        )
        request = re.match(r"pending: request (req-\S+) needs ", opened)
        assert request, opened
        assert run("approve", request[1], token=alice).startswith(f"pending: request {request[1]}")
        merged = run("approve", request[1], token=bob)
        found = re.match(rf"merged: request {request[1]} \(web 1\.2\.3 to production\) "
                         r"merged as ([0-9a-f]{40})$", merged.strip())  # fmt: skip
        assert found, merged
    finally:
        server.stop()

    bare = empty_dir / ".ritmo" / "manifests.git"
    assert git(bare, "rev-parse", "main").strip() == found[1]
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert "Ritmo-Approved-By: alice, bob" in message, message
    verify_commit(bare, found[1], empty_dir / ".ritmo" / "gnupg")
    production = git(bare, "show", "main:apps/web/overlays/production/kustomization.yaml")
    assert "1.2.3" in production, production


def test_the_image_holds_the_installed_wheel_only() -> None:
    """The Dockerfile's last stage copies the venv the wheel was installed into, nothing of
    the source tree, and nothing is installed editable. (No Docker daemon here to build it.)"""
    stages: list[list[str]] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line.strip() and not line.startswith("#"):
            stages[-1].append(line)
    text = "\n".join(sum(stages, []))
    assert " -e " not in text and "--editable" not in text
    assert any("pip wheel" in line for line in stages[0])
    assert any(re.search(r"pip install /dist/ritmo-\*\.whl", line) for line in stages[1])
    final = stages[-1]
    copies = [line.split() for line in final if line.startswith("COPY")]
    assert copies == [["COPY", "--from=venv", "/opt/ritmo", "/opt/ritmo"]], copies
    assert re.search(r"^USER \d+:\d+$", "\n".join(final), re.M)  # numeric: runAsNonRoot checks
    assert final[-1] == 'CMD ["ritmo", "serve"]'  # the wheel's entry point, as tested above
