"""The audit log's kept events (bot/audit/trail.py) are what a full read gives, and a
call after the branch moved reads only what is new."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from bot.audit import trail as trail_module
from bot.audit.history import Window
from bot.audit.log import Range, read_audit
from bot.audit.trail import AuditTrail
from bot.config import Settings
from bot.runtime import Runtime
from tests.helpers import artifact_body, bearer, git


def _full(runtime: Runtime, tip: str) -> list[dict[str, Any]]:
    events, _ = read_audit(runtime.mirror, tip, Window(), per_page=10_000)
    return [e.as_json() for e in events]


def _untrusted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events without `trusted`, which the API adds to each page and a read does not."""
    return [{k: v for k, v in item.items() if k != "trusted"} for item in items]


def _api(client: FlaskClient, token: str) -> list[dict[str, Any]]:
    got = client.get("/api/v1/audit?per_page=100", headers=bearer(token))
    assert got.status_code == 200, got.json
    return list(got.json["items"])


def test_the_kept_events_follow_the_branch_and_match_a_full_read(
    client: FlaskClient,
    runtime: Runtime,
    tokens: dict[str, str],
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[Range] = []
    real = trail_module.branch_commits
    whole = Range()
    monkeypatch.setattr(
        trail_module, "branch_commits",
        lambda mirror, tip, span=whole: reads.append(span) or real(mirror, tip, span),
    )  # fmt: skip
    reader, ci = tokens["reader"], tokens["ci"]
    for version in ("1.0.0", "1.0.1"):
        assert client.post("/api/v1/artifacts", json=artifact_body(version=version),
                           headers=bearer(ci)).status_code == 201  # fmt: skip
    first = _api(client, reader)
    assert [e["version"] for e in first if e["kind"] == "registered"] == ["1.0.1", "1.0.0"]
    assert reads == [Range()]  # the first call reads the whole line
    assert _api(client, reader) == first and len(reads) == 1  # same tip: nothing read
    old_tip = runtime.mirror.tip()

    assert client.post("/api/v1/artifacts", json=artifact_body(version="1.0.2"),
                       headers=bearer(ci)).status_code == 201  # fmt: skip
    later = _api(client, reader)
    assert reads[1:] == [Range(since=old_tip)]  # only the commits since the kept tip
    assert later[0]["version"] == "1.0.2" and later[1:] == first
    with runtime.mirror.locked():
        tip = runtime.mirror.tip()
        assert tip is not None
        assert _untrusted(later) == _untrusted(_full(runtime, tip))


def test_a_tip_that_does_not_descend_from_the_kept_one_is_read_whole(
    client: FlaskClient, runtime: Runtime, tokens: dict[str, str]
) -> None:
    for version in ("1.0.0", "1.0.1"):
        assert client.post("/api/v1/artifacts", json=artifact_body(version=version),
                           headers=bearer(tokens["ci"])).status_code == 201  # fmt: skip
    mirror = runtime.mirror
    with mirror.locked():
        newer = mirror.tip()
        assert newer is not None
        older = git(mirror.path, "rev-parse", f"{newer}~1").strip()
        trail = AuditTrail(mirror)
        assert [e.as_json() for e in trail.events(newer)] == _full(runtime, newer)
        # The branch went back (an administrator reset it): the kept events do not apply.
        assert [e.as_json() for e in trail.events(older)] == _full(runtime, older)
        assert len(trail.events(older)) < len(trail.events(newer))


def test_ritmo_verify_keeps_its_verdicts_in_the_user_cache_not_the_data_dir(
    runtime: Runtime, settings: Settings, user_cache: Path
) -> None:
    """A repository must not be able to plant verdicts: nothing is kept in data_dir (which
    may sit in the checkout being verified), and --no-cache keeps nothing at all."""
    import sqlite3

    from click.testing import CliRunner

    from bot.cli import main

    env = {"RITMO_DATA_DIR": str(settings.data_dir),
           "RITMO_MANIFESTS__URL": str(settings.remote_url),
           "RITMO_SIGNING__KEY": runtime.signer.fingerprint,
           "RITMO_SIGNING__GNUPGHOME": str(settings.gnupghome)}  # fmt: skip
    kept = user_cache / "ritmo" / "verify-cache.sqlite"
    kept.unlink(missing_ok=True)
    done = CliRunner(env=env).invoke(main, ["verify", "--no-cache"])
    assert done.exit_code == 0, done.output
    assert not kept.exists()
    done = CliRunner(env=env).invoke(main, ["verify"])
    assert done.exit_code == 0, done.output
    with sqlite3.connect(kept) as db:
        assert db.execute("SELECT count(*) FROM verdicts").fetchone()[0] > 0
    assert not list(settings.data_dir.rglob("verify-cache*"))
