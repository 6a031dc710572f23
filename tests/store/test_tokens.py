"""The token store on a real SQLite file: unique names ignoring case, reserved names,
last use written at most once a minute, and the old tokens file imported exactly once."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.auth import Scope, TokenError
from bot.store.schema import make_engine
from bot.store.token_import import TokenFileError, import_tokens_file
from bot.store.tokens import TokenStore

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_names_are_unique_ignoring_case(engine: Engine) -> None:
    store = TokenStore(engine)
    store.create("alice", [Scope.PROMOTIONS_APPROVE], ["ops-team"])
    for name in ("alice", "Alice", "ALICE"):
        with pytest.raises(TokenError) as refused:
            store.create(name, [Scope.PROMOTIONS_APPROVE], ["security-team"])
        assert (refused.value.status, refused.value.field) == (409, "name")
    # Two replicas' stores on one database are one namespace.
    with pytest.raises(TokenError, match="taken"):
        TokenStore(engine).create("aLiCe", [Scope.ADMIN])
    assert store.memberships() == {"ops-team": frozenset({"alice"})}


def test_reserved_names(engine: Engine) -> None:
    store = TokenStore(engine, reserved=("acme-ritmo",))
    for name in ("ritmo", "Ritmo", "ACME-Ritmo", "ritmo[bot]", "other-app[BOT]"):
        with pytest.raises(TokenError, match="reserved") as refused:
            store.create(name, [Scope.PROMOTIONS_APPROVE])
        assert (refused.value.status, refused.value.field) == (422, "name")
    assert store.names() == []


def test_last_used_is_written_at_most_once_a_minute(engine: Engine) -> None:
    clock = Clock()
    store = TokenStore(engine, clock=clock)
    secret = store.create("ci", [Scope.ARTIFACTS_WRITE])
    assert store.all()[0].last_used_at is None
    assert store.authenticate(secret) is not None
    assert store.all()[0].last_used_at == "2026-12-03T09:00:00Z"
    clock.now = T0 + timedelta(seconds=59)
    store.authenticate(secret)
    assert store.all()[0].last_used_at == "2026-12-03T09:00:00Z"  # not written again
    clock.now = T0 + timedelta(seconds=61)
    store.authenticate(secret)
    assert store.all()[0].last_used_at == "2026-12-03T09:01:01Z"
    assert store.authenticate(secret + "x") is None


def test_revoke_on_one_store_is_refused_by_another_on_the_same_file(engine: Engine) -> None:
    mine, theirs = TokenStore(engine), TokenStore(make_engine(str(engine.url)))
    secret = mine.create("Carol", [Scope.ARTIFACTS_READ])
    assert theirs.authenticate(secret) is not None
    assert mine.revoke("carol").name == "Carol"
    assert theirs.authenticate(secret) is None
    with pytest.raises(TokenError) as missing:
        theirs.revoke("carol")
    assert (missing.value.status, missing.value.field) == (404, "name")


def test_requests_at_once_share_lookups_and_each_gets_its_own_token(engine: Engine) -> None:
    store = TokenStore(engine)
    secrets = {
        "ci": store.create("ci", [Scope.ARTIFACTS_WRITE]),
        "ops": store.create("ops", [Scope.ADMIN], ["ops-team"]),
        None: "ritmo_not-a-token",
    }
    lookups: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_tokens" in statement:
            lookups.append(statement)
            if len(lookups) == 1:
                time.sleep(0.3)  # the others arrive meanwhile, and queue for the next one

    sa.event.listen(engine, "before_cursor_execute", count)
    asked = [name for name in secrets for _ in range(20)]
    start = threading.Barrier(len(asked))

    def one(name: str | None) -> str | None:
        start.wait()
        found = store.authenticate(secrets[name])
        return None if found is None else found.name

    with ThreadPoolExecutor(len(asked)) as pool:
        assert list(pool.map(one, asked)) == asked
    assert len(lookups) <= 5  # not one a request
    assert store.revoke("ci") and store.authenticate(secrets["ci"]) is None


def _old_file(path: Path, *entries: tuple[str, str, list[str], list[str]]) -> None:
    """A tokens file as earlier versions wrote it; entries are (name, secret, scopes, groups)."""
    rows = [
        {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": scopes,
         "groups": groups, "created_at": "2026-11-01T08:00:00Z"}
        for name, secret, scopes, groups in entries
    ]  # fmt: skip
    path.write_text(json.dumps({"tokens": rows}, indent=2))


def test_an_old_tokens_file_is_imported_once(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.json"
    _old_file(
        path,
        ("ci", "ritmo_ci", ["artifacts:write"], []),
        ("alice", "ritmo_alice_ops", ["promotions:approve"], ["ops-team"]),
        ("Alice", "ritmo_alice_security", ["promotions:approve"], ["security-team"]),
        ("Ritmo", "ritmo_impostor", ["promotions:approve"], ["ops-team"]),
    )
    store = TokenStore(engine)
    with caplog.at_level(logging.WARNING, "bot.store.token_import"):
        done = import_tokens_file(store, path)
    assert done.names == ["ci", "alice"]
    assert [s.split(":")[0] for s in done.skipped] == ["Alice", "Ritmo"]
    assert "token not imported" in caplog.text and "Alice" in caplog.text
    assert not path.exists()
    assert done.renamed_to == tmp_path / "tokens.json.imported"
    assert json.loads(done.renamed_to.read_text())["tokens"][0]["name"] == "ci"

    ci = store.authenticate("ritmo_ci")
    assert ci is not None and ci.scopes == frozenset({Scope.ARTIFACTS_WRITE})
    assert store.authenticate("ritmo_alice_security") is None
    assert store.authenticate("ritmo_impostor") is None
    assert {t.name: t.created_at for t in store.all()} == {
        "alice": "2026-11-01T08:00:00Z", "ci": "2026-11-01T08:00:00Z",
    }  # fmt: skip

    # Once: a revoke is not undone by the next start.
    store.revoke("ci")
    assert import_tokens_file(store, path).names == []
    assert store.authenticate("ritmo_ci") is None
    # The same file brought back (another replica's copy): nothing doubles, and the
    # revoked token stays revoked.
    _old_file(
        path,
        ("alice", "ritmo_alice_ops", ["promotions:approve"], ["ops-team"]),
        ("ci", "ritmo_ci", ["artifacts:write"], []),
    )
    again = import_tokens_file(store, path)
    assert (again.names, again.skipped) == ([], [])
    assert store.names() == ["alice"]
    assert store.authenticate("ritmo_ci") is None


def test_an_unreadable_tokens_file_stops_the_start(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    with pytest.raises(TokenFileError, match="auth.tokens_file"):
        import_tokens_file(TokenStore(engine), path)
    assert path.exists()  # kept for the operator to fix
