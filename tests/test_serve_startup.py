"""`ritmo serve` as a user starts it: what it refuses before creating anything, and the
lines it logs (every one JSON with log_format: json)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.test_cli import RITMO


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RITMO_")}
    return {**env, **extra}


def test_a_port_in_use_fails_before_anything_is_created(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [str(RITMO), "serve"],
            cwd=tmp_path,
            env=_env(RITMO_LISTEN=f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        f"ritmo: setting listen (RITMO_LISTEN): 127.0.0.1:{port} is already in use; "
        "stop what holds it or choose another host:port\n"
    )
    assert list(tmp_path.iterdir()) == []  # no data dir, key, remote or database
