"""Webhook deliveries acknowledged in groups on PostgreSQL: two replicas (two engines, two
queues) given the same deliveries at once queue each exactly once, in one order."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from bot.store.deliveries import DeliveryQueue, deliveries
from bot.store.schema import make_engine


def test_two_replicas_queue_each_delivery_once(database_url: str) -> None:
    engines = [make_engine(database_url), make_engine(database_url)]
    try:
        queues = [DeliveryQueue(engine) for engine in engines]
        names = [f"d-{n}" for n in range(30)]
        fresh: dict[str, list[bool]] = {name: [] for name in names}
        lock = threading.Lock()
        start = threading.Barrier(2 * len(names))

        def deliver(queue: DeliveryQueue, name: str) -> None:
            start.wait(30)
            queued = queue.accept(name, "pull_request_review", '{"n": 1}')
            with lock:
                fresh[name].append(queued)

        threads = [
            threading.Thread(target=deliver, args=(queue, name))
            for name in names
            for queue in queues  # GitHub's redelivery, or a balancer, sends it to both
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(sorted(answers) == [False, True] for answers in fresh.values()), fresh
        with engines[0].connect() as conn:
            rows = conn.execute(sa.select(deliveries.c.delivery_id, deliveries.c.seq)).all()
        assert sorted(r.delivery_id for r in rows) == sorted(names)
        assert sorted(r.seq for r in rows) == list(range(1, len(names) + 1))
    finally:
        for engine in engines:
            engine.dispose()
