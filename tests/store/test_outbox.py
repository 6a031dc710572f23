"""The outbox table: unique keys, atomic leased claims, backoff, dead letters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.store.outbox import NewDelivery, NotDead, OutboxStore, backoff
from bot.store.schema import make_engine

NOW = 1_700_000_000.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    yield engine
    engine.dispose()


def item(key: str = "ritmo-k1", target: str = "webhook") -> NewDelivery:
    return NewDelivery(
        key=key,
        event="promoted",
        app="web",
        environment="staging",
        integration=None,
        target=target,
        request={"kind": target, "target": {"url": "https://cd/x"}, "event": {"id": "e"}},
        correlation_id="c-1",
    )


def test_enqueue_skips_keys_already_stored(engine: Engine) -> None:
    store = OutboxStore(engine)
    assert store.enqueue([item("a"), item("b"), item("a")], NOW) == [1, 2]
    assert store.enqueue([item("b"), item("c")], NOW) == [3]
    assert store.enqueue([], NOW) == []
    row = store.get(1)
    assert row is not None
    assert (row.key, row.status, row.attempts, row.next_attempt_at) == ("a", "queued", 0, NOW)
    assert row.request == item().request
    assert row.created_at == "2023-11-14T22:13:20Z"


def test_only_one_claimer_wins(engine: Engine) -> None:
    store = OutboxStore(engine)
    [row_id] = store.enqueue([item()], NOW)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(store.claim(row_id, NOW))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.due(NOW) == []  # claimed rows are not due while leased


def test_due_orders_by_time_and_skips_the_future(engine: Engine) -> None:
    store = OutboxStore(engine, random=lambda: 1.0)
    a, b = store.enqueue([item("a"), item("b")], NOW)
    assert store.claim(a, NOW)
    store.failed(a, "HTTP 503", NOW)  # due at NOW + 2
    assert [r.id for r in store.due(NOW)] == [b]
    assert [r.id for r in store.due(NOW + 2)] == [b, a]
    assert store.next_due() == NOW


def test_a_dead_holders_row_is_taken_again_when_its_lease_runs_out(engine: Engine) -> None:
    store = OutboxStore(engine, lease=60.0)
    [row_id] = store.enqueue([item()], NOW)
    assert store.claim(row_id, NOW)
    other = OutboxStore(engine, lease=60.0)  # another replica
    assert other.due(NOW + 59) == []
    assert other.claim(row_id, NOW + 59) is False  # the lease holds
    store.renew(row_id, NOW + 50)  # the holder is alive and says so
    assert other.claim(row_id, NOW + 100) is False
    assert store.next_due() == NOW + 110
    # The holder dies: no more renewals. Once the lease runs out the row is due again.
    assert [r.id for r in other.due(NOW + 110)] == [row_id]
    assert other.claim(row_id, NOW + 110) is True
    assert store.claim(row_id, NOW + 111) is False  # and now the other one holds it
    row = other.get(row_id)
    assert row is not None and row.status == "delivering"


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    top = [backoff(n, random=lambda: 1.0) for n in range(1, 12)]
    assert top == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert backoff(3, random=lambda: 0.5) == 4.0
    assert backoff(3, random=lambda: 0.0) == 0.0
    assert backoff(2, base=0.01, cap=0.015, random=lambda: 1.0) == 0.015
    assert backoff(10_000, random=lambda: 1.0) == 600  # no overflow


def test_failures_back_off_honour_retry_after_then_die(engine: Engine) -> None:
    draws = iter([0.5, 0.5, 0.5])
    store = OutboxStore(engine, max_attempts=3, random=lambda: next(draws))
    [row_id] = store.enqueue([item()], NOW)
    assert store.failed(row_id, "HTTP 502", NOW) == "queued"
    row = store.get(row_id)
    assert row is not None and (row.attempts, row.next_attempt_at) == (1, NOW + 1.0)
    assert store.failed(row_id, "HTTP 429", NOW, retry_after=90) == "queued"
    row = store.get(row_id)
    assert row is not None and row.next_attempt_at == NOW + 90
    assert store.failed(row_id, "HTTP 503", NOW) == "dead"
    row = store.get(row_id)
    assert row is not None and row.attempts == 3
    assert row.last_error == "gave up after 3 attempts; last: HTTP 503"


def test_dead_letters_are_paged_and_retried(engine: Engine) -> None:
    store = OutboxStore(engine)
    ids = store.enqueue([item(f"k{i}") for i in range(5)], NOW)
    for row_id in ids[:3]:
        store.dead(row_id, "HTTP 404")
    page, total = store.dead_letters(offset=0, limit=2)
    assert total == 3 and [r.id for r in page] == [3, 2]
    page, total = store.dead_letters(offset=2, limit=2)
    assert [r.id for r in page] == [1]
    assert store.counts() == {"queued": 2, "delivering": 0, "delivered": 0, "dead": 3}

    row = store.retry(2, NOW + 50)
    assert row is not None
    assert (row.status, row.attempts, row.next_attempt_at) == ("queued", 0, NOW + 50)
    assert row.last_error == "HTTP 404"  # kept, for the record
    assert store.retry(99, NOW) is None
    with pytest.raises(NotDead, match="notification 2 is queued, not dead"):
        store.retry(2, NOW)


def test_delivered(engine: Engine) -> None:
    store = OutboxStore(engine)
    [row_id] = store.enqueue([item()], NOW)
    assert store.claim(row_id, NOW)
    store.delivered(row_id, NOW + 1)
    row = store.get(row_id)
    assert row is not None
    assert (row.status, row.attempts, row.delivered_at) == ("delivered", 1, "2023-11-14T22:13:21Z")
    assert row.as_json()["next_attempt_at"] is None
    assert store.next_due() is None
