"""A real `ritmo serve` (gunicorn) that a test can SIGKILL and start again on the same data
dir; the helpers come from benchmarks/ingest.py."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_ingest() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ritmo_bench_ingest", REPO_ROOT / "benchmarks" / "ingest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ingest = _load_ingest()


class RitmoServer:
    """`ritmo serve` in its own process group, on a fixed port and data dir."""

    def __init__(self, work: Path, remote: Path, gnupghome: Path, fingerprint: str) -> None:
        self.work = work
        self.data_dir = work / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)  # tokens are created before serving
        self.port = ingest.free_port()
        self.url = f"http://{ingest.HOST}:{self.port}"
        self.env = {
            **ingest.base_env(),
            "RITMO_DATA_DIR": str(self.data_dir),
            "RITMO_LISTEN": f"{ingest.HOST}:{self.port}",
            "RITMO_THREADS": "256",
            "RITMO_MANIFESTS__URL": str(remote),
            "RITMO_MANIFESTS__BRANCH": ingest.BRANCH,
            "RITMO_SIGNING__KEY": fingerprint,
            "RITMO_SIGNING__GNUPGHOME": str(gnupghome),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def cli(self, *args: str, timeout: float = 120) -> str:
        out: str = ingest.run([*ingest.ritmo_command(), *args], cwd=self.work, env=self.env,
                              timeout=timeout).stdout  # fmt: skip
        return out

    def token(self, name: str, *scopes: str) -> str:
        flags = [arg for scope in scopes for arg in ("--scope", scope)]
        return self.cli("token", "create", "--name", name, *flags).strip().splitlines()[-1]

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        log_path = self.work / f"server-{self.starts}.log"
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [*ingest.ritmo_command(), "serve"],
                cwd=self.work,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # master, workers, their git and gpg: one group
            )
        ingest.wait_ready(self.proc, self.url, log_path)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handler runs."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            ingest.stop(self.proc)
        ingest.kill_gpg_agent(self.data_dir / "trusted-gnupg")

    def all_artifacts(self, token: str) -> list[dict[str, Any]]:
        """GET /api/v1/artifacts, every page, following Link: rel="next"."""
        items: list[dict[str, Any]] = []
        url: str | None = f"{self.url}/api/v1/artifacts?per_page=37"
        while url:
            resp = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert resp.status_code == 200, resp.text
            items += resp.json()["items"]
            nxt = resp.links.get("next", {}).get("url")
            url = requests.compat.urljoin(self.url, nxt) if nxt else None
        return items
