"""Ritmo on PostgreSQL: the index, the queues' de-duplication and the leader lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask.testing import FlaskClient

from bot.app import create_app
from bot.runtime import Runtime, build_runtime
from bot.scheduler import run_if_leader
from bot.store.deployments import DeploymentIndex
from bot.store.leader import LeaderLock
from bot.store.locks import LockBusy, Locks
from bot.store.outbox import NewDelivery, OutboxStore
from bot.store.schema import make_engine
from tests.helpers import artifact_body, bearer, commits_since, git
from tests.scale.conftest import close_replica, replica_settings
from tests.store.test_locks import exercise


def _eventually(attempt: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not attempt():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_runtime_uses_postgresql(runtime: Runtime) -> None:
    assert runtime.index.engine.dialect.name == "postgresql"
    assert runtime.index.engine.dialect.driver == "psycopg"


def test_plain_postgresql_urls_get_psycopg_3(database_url: str) -> None:
    plain = sa.engine.make_url(database_url).set(drivername="postgresql")
    engine = make_engine(plain.render_as_string(hide_password=False))
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_register_read_and_promote(
    client: FlaskClient, tokens: dict[str, str], runtime: Runtime
) -> None:
    created = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert created.status_code == 201, created.json
    art = created.json["id"]
    again = client.post("/api/v1/artifacts", json=artifact_body(), headers=bearer(tokens["ci"]))
    assert again.status_code == 200 and again.json["id"] == art
    taken = client.post(
        "/api/v1/artifacts",
        json=artifact_body(storage_url="s3://elsewhere/web.tar.gz"),
        headers=bearer(tokens["ci"]),
    )
    assert taken.status_code == 409
    for version in ("1.2.4", "1.2.5"):
        ok = client.post(
            "/api/v1/artifacts", json=artifact_body(version=version), headers=bearer(tokens["ci"])
        )
        assert ok.status_code == 201, ok.json
    listed = client.get("/api/v1/artifacts?name=web", headers=bearer(tokens["reader"]))
    assert [a["version"] for a in listed.json["items"]] == ["1.2.5", "1.2.4", "1.2.3"]

    promoted = client.post(
        f"/api/v1/artifacts/{art}/promote",
        json={"from": "dev", "to": "staging"},
        headers=bearer(tokens["promoter"]),
    )
    assert promoted.status_code == 201, promoted.json
    got = client.get(f"/api/v1/artifacts/{art}", headers=bearer(tokens["reader"]))
    assert got.json["promotion_status"] == "staging"
    rows, total = runtime.index.search_promotions(app="web")
    assert total == 1 and rows[0]["to"] == "staging"


def test_webhook_deliveries_are_taken_once(runtime: Runtime) -> None:
    queue = runtime.deliveries
    assert queue.accept("d-1", "push", "{}") is True
    assert queue.accept("d-1", "push", "{}") is False  # the primary key refuses the copy
    assert queue.accept("d-2", "push", "{}") is True
    assert [d["delivery_id"] for d in queue.due(now=1e12)] == ["d-1", "d-2"]
    assert queue.claim("d-1", now=1e12) is True
    assert queue.claim("d-1", now=1e12) is False
    assert queue.claim("d-1", now=1e12 + queue.lease + 1) is True  # its holder died


def test_outbox_and_cd_reports_are_kept_once(runtime: Runtime) -> None:
    store = OutboxStore(runtime.index.engine)
    item = NewDelivery(
        key="k-1", event="promoted", app="web", environment="staging",
        integration=None, target="webhook", request={"kind": "webhook"},
    )  # fmt: skip
    [row_id] = store.enqueue([item], now=1000.0)
    assert store.enqueue([item], now=1001.0) == []
    # The race the IntegrityError branch covers: the key lands between check and insert.
    with runtime.index.engine.begin() as conn:
        assert store._insert(conn, [item], 1002.0) == []
    assert [r.id for r in store.due(now=2000.0)] == [row_id]

    reports = DeploymentIndex(runtime.index.engine)
    reports.remember_report("report-1", "dep-1")
    reports.remember_report("report-1", "dep-2")  # a concurrent copy: no error
    assert reports.reported("report-1") == "dep-1"


def test_only_one_replica_leads_and_the_lock_moves_when_it_dies(database_url: str) -> None:
    one, two = make_engine(database_url), make_engine(database_url)
    try:
        first, second = LeaderLock(one), LeaderLock(two)
        assert first.is_leader() is True
        assert second.is_leader() is False
        assert first.is_leader() is True  # it keeps leading
        assert second.is_leader() is False
        # The leader's process dies: its session ends, and PostgreSQL drops the lock with it
        # (once the server notices the closed socket: poll, as a replica's interval would).
        assert first._conn is not None
        first._conn.invalidate()
        assert _eventually(second.is_leader)
        assert first.is_leader() is False  # the old leader comes back as a follower
        second.release()
        assert first.is_leader() is True
        first.release()
    finally:
        one.dispose()
        two.dispose()


def test_a_killed_backend_loses_the_lock(database_url: str) -> None:
    """The leader's connection is cut server-side (a crash, a failover): another replica
    takes over at its next try and the old leader notices at its next run."""
    one, two, admin = (make_engine(database_url) for _ in range(3))
    try:
        first, second = LeaderLock(one), LeaderLock(two)
        assert first.is_leader() and not second.is_leader()
        assert first._conn is not None
        pid = first._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        assert _eventually(second.is_leader)
        assert first.is_leader() is False
        second.release()  # a held lock keeps its connection checked out of the pool
    finally:
        for engine in (one, two, admin):
            engine.dispose()


def test_the_scheduler_runs_only_on_the_leader(runtime: Runtime, database_url: str) -> None:
    other = make_engine(database_url)
    try:
        holder = LeaderLock(other)
        assert holder.is_leader()
        mine = LeaderLock(runtime.index.engine)
        assert run_if_leader(runtime, mine) is False
        holder.release()
        assert run_if_leader(runtime, mine) is True
        mine.release()
    finally:
        other.dispose()


def test_two_replicas_register_concurrently(
    tmp_path: Path,
    remote: Path,
    signing_key: tuple[Path, str],
    database_url: str,
    runtime: Runtime,
    tokens: dict[str, str],
) -> None:
    """Two replicas, one remote, one database: every record lands once, none is lost."""
    base = git(remote, "rev-parse", "main").strip()
    second = build_runtime(
        replica_settings(
            tmp_path / "data2", remote, signing_key, database_url, runtime.settings.tokens_file
        )
    )
    try:
        clients = [
            create_app(runtime.settings, runtime).test_client(),
            create_app(second.settings, second).test_client(),
        ]
        versions = [f"3.0.{i}" for i in range(12)]
        statuses: dict[str, int] = {}
        errors: list[BaseException] = []

        def push(i: int, version: str) -> None:
            try:
                resp = clients[i % 2].post(
                    "/api/v1/artifacts",
                    json=artifact_body(version=version),
                    headers=bearer(tokens["ci"]),
                )
                statuses[version] = resp.status_code
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=push, args=(i, v)) for i, v in enumerate(versions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        assert statuses == dict.fromkeys(versions, 201)
        subjects = [
            git(remote, "log", "-1", "--format=%s", sha).strip()
            for sha in commits_since(remote, base)
        ]
        assert sorted(subjects) == sorted(f"Record artifact web {v}" for v in versions)
        for rt in (runtime, second):
            found, total = rt.index.search(name="web", limit=100)
            assert total == len(versions)
            assert sorted(a.record.version for a in found) == sorted(versions)
        # They took turns at the remote: no push was refused, none retried.
        assert runtime.writer.push_retries == second.writer.push_retries == 0
        assert runtime.writer.push_attempts + second.writer.push_attempts == sum(
            rt.writer.pushes for rt in (runtime, second)
        )
    finally:
        close_replica(second)


def test_named_locks_are_advisory_locks_across_engines(database_url: str, tmp_path: Path) -> None:
    """Two engines stand for two replicas: one holds, the other gives up or waits."""
    one, two = make_engine(database_url), make_engine(database_url)
    try:
        exercise(Locks(one, tmp_path / "a"), Locks(two, tmp_path / "b", wait=0.2))
        assert not (tmp_path / "a").exists()  # no file locks on PostgreSQL
    finally:
        one.dispose()
        two.dispose()


def test_the_writers_lock_is_taken_in_turn(database_url: str, tmp_path: Path) -> None:
    """`in_turn` waits in line: the holder, asking again at once, goes behind a waiter;
    a waiter past its bound gets LockBusy."""
    engines = [make_engine(database_url) for _ in range(3)]
    try:
        holder, waiter = Locks(engines[0], tmp_path), Locks(engines[1], tmp_path)
        impatient = Locks(engines[2], tmp_path, wait=0.2)
        order: list[str] = []
        name = "manifests-writer:remote:main"

        def wait_then_take() -> None:
            with waiter.in_turn(name):
                order.append("waiter")

        with holder.in_turn(name):
            thread = threading.Thread(target=wait_then_take)
            thread.start()
            time.sleep(0.3)  # the waiter is in line
            try:
                with impatient.in_turn(name):
                    order.append("impatient")
            except LockBusy as exc:
                order.append(str(exc))
        with holder.in_turn(name):  # asked again at once: after the waiter
            order.append("holder again")
        thread.join(10)
        assert order == [
            f"{name} stayed busy for 0 s; retry later",
            "waiter",
            "holder again",
        ]
        with impatient.in_turn(name):  # free now; its connection went back as it came
            pass
        with engines[2].connect() as conn:
            assert conn.execute(sa.text("SHOW lock_timeout")).scalar_one() == "0"
    finally:
        for engine in engines:
            engine.dispose()
