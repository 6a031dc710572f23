"""Tokens on PostgreSQL, shared by replicas: a revoke on one is refused at once by the
other, and copies of an old tokens file in each replica's data dir are imported once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bot.runtime import Runtime, build_runtime
from tests.api.test_tokens import revoke_is_seen_by_both
from tests.scale.conftest import close_replica, replica_settings


def test_a_revoke_on_one_replica_is_refused_at_once_on_another(
    tmp_path: Path, remote: Path, signing_key: tuple[Path, str], database_url: str,
    runtime: Runtime,
) -> None:  # fmt: skip
    second = build_runtime(replica_settings(tmp_path / "data2", remote, signing_key, database_url))
    try:
        revoke_is_seen_by_both(runtime, second)
    finally:
        close_replica(second)


def test_each_replicas_copy_of_the_old_file_is_imported_once(
    tmp_path: Path, remote: Path, signing_key: tuple[Path, str], database_url: str
) -> None:
    entry = {
        "name": "ci",
        "sha256": hashlib.sha256(b"ritmo_old").hexdigest(),
        "scopes": ["artifacts:write"],
        "groups": [],
        "created_at": "2026-11-01T08:00:00Z",
    }
    replicas = []
    try:
        for name in ("a", "b"):
            data = tmp_path / name
            data.mkdir()
            (data / "tokens.json").write_text(json.dumps({"tokens": [entry]}))
            replicas.append(
                build_runtime(replica_settings(data, remote, signing_key, database_url))
            )
            assert (data / "tokens.json.imported").exists()
        for rt in replicas:
            assert [(t.name, t.scopes) for t in rt.tokens.all()] == [("ci", ("artifacts:write",))]
            principal = rt.tokens.authenticate("ritmo_old")
            assert principal is not None and principal.name == "ci"
    finally:
        for rt in replicas:
            close_replica(rt)
