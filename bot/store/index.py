"""ArtifactIndex: the artifacts, their promotions, rollbacks and holds as rows, so that API
reads need not walk git. The tables are in schema.py, the facts it is fed in facts.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.statuses import RequestStatus
from bot.store.artifact_record import ArtifactRecord
from bot.store.facts import HistoryFact, PromotionFact, RollbackFact
from bot.store.query import last_seq, page_rows
from bot.store.schema import (
    artifacts,
    ensure_schema,
    holds,
    index_state,
    metadata,
    promotions,
    requests,
    reviews,
    rollbacks,
)


@dataclass(frozen=True)
class IndexedArtifact:
    record: ArtifactRecord
    commit: str
    promotion_status: str

    def as_json(self) -> dict[str, Any]:
        return {
            **self.record.to_dict(),
            "commit": self.commit,
            "promotion_status": self.promotion_status,
        }


class ArtifactIndex:
    def __init__(
        self, engine: Engine, initial_environment: str | Callable[[], str] = "dev"
    ) -> None:
        self._engine = engine
        self.engine = engine
        # Where a new record stands: the first environment of the policy in force, asked
        # when the record is indexed (the policy can change while the server runs).
        self._initial = initial_environment
        ensure_schema(engine)
        metadata.create_all(engine)

    @property
    def initial_environment(self) -> str:
        return self._initial if isinstance(self._initial, str) else self._initial()

    def get(self, artifact_id: str) -> IndexedArtifact | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.id == artifact_id)).first()
        return _to_artifact(row) if row else None

    def get_each(self, artifact_ids: list[str]) -> list[IndexedArtifact | None]:
        """`get` of each id, in order, in one query (ids may repeat)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(artifacts).where(artifacts.c.id.in_(sorted(set(artifact_ids))))
            ).all()
        found = {row.id: row for row in rows}
        return [_to_artifact(found[i]) if i in found else None for i in artifact_ids]

    def names(self) -> list[str]:
        """Every app an artifact was recorded for."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(artifacts.c.name).distinct()).all()
        return sorted(r.name for r in rows)

    def search(
        self,
        name: str | None = None,
        version: str | None = None,
        promotion_status: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[IndexedArtifact], int]:
        rows, total = page_rows(
            self._engine,
            artifacts,
            {"name": name, "version": version, "promotion_status": promotion_status},
            offset,
            limit,
        )
        return [_to_artifact(r) for r in rows], total

    def add(
        self,
        entries: Iterable[tuple[ArtifactRecord, str]],
        tip: str,
        promoted: Iterable[HistoryFact] = (),
    ) -> int:
        """Insert (record, commit) pairs not yet indexed, then the promotions and rollbacks,
        in order, and remember `tip`; one transaction."""
        fresh: dict[str, tuple[ArtifactRecord, str]] = {}
        for record, commit in entries:
            fresh.setdefault(record.id, (record, commit))
        with self._engine.begin() as conn:
            next_seq = last_seq(conn, artifacts)
            ids = list(fresh)
            for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
                chunk = ids[start : start + 500]
                known = conn.execute(sa.select(artifacts.c.id).where(artifacts.c.id.in_(chunk)))
                for (known_id,) in known:
                    fresh.pop(known_id, None)
            rows = []
            for record, commit in fresh.values():
                next_seq += 1
                rows.append(
                    {
                        "id": record.id,
                        "name": record.name,
                        "version": record.version,
                        "promotion_status": self.initial_environment,
                        "commit": commit,
                        "created_at": record.created_at,
                        "seq": next_seq,
                        "record": json.dumps(record.to_dict(), sort_keys=True),
                    }
                )
            if rows:
                conn.execute(artifacts.insert(), rows)
            self._add_promotions(conn, promoted)
            self._set_tip(conn, tip)
        return len(rows)

    @staticmethod
    def _add_promotions(conn: sa.Connection, promoted: Iterable[HistoryFact]) -> None:
        next_seq = last_seq(conn, promotions)
        for fact in promoted:
            if isinstance(fact, RollbackFact):
                _add_rollback(conn, fact)
                continue
            row = conn.execute(
                sa.select(artifacts.c.name, artifacts.c.version).where(
                    artifacts.c.id == fact.artifact_id
                )
            ).first()
            if row is None:  # a trailer naming an artifact nobody recorded: not ours to index
                continue
            if conn.execute(sa.select(promotions.c.id).where(promotions.c.id == fact.id)).first():
                continue
            next_seq += 1
            conn.execute(
                promotions.insert().values(
                    id=fact.id,
                    artifact_id=fact.artifact_id,
                    app=row.name,
                    version=row.version,
                    from_env=fact.from_env,
                    to_env=fact.to_env,
                    status=RequestStatus.PROMOTED,
                    commit=fact.commit,
                    promoted_by=fact.promoted_by,
                    approval_ticket=fact.approval_ticket,
                    approved_by=fact.approved_by,
                    correlation_id=fact.correlation_id,
                    request_id=fact.request_id,
                    promoted_at=fact.promoted_at,
                    automatic=fact.automatic,
                    seq=next_seq,
                )
            )
            conn.execute(
                artifacts.update()
                .where(artifacts.c.id == fact.artifact_id)
                .values(promotion_status=fact.to_env)
            )
            if not fact.automatic:
                conn.execute(
                    holds.update()
                    .where(
                        holds.c.artifact_id == fact.artifact_id,
                        holds.c.environment == fact.to_env,
                        holds.c.released_by.is_(None),
                    )
                    .values(released_by=fact.commit)
                )

    def promotion(self, promotion_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(promotions).where(promotions.c.id == promotion_id)).first()
        return _promotion_json(row) if row else None

    def search_promotions(
        self,
        app: str | None = None,
        env: str | None = None,
        artifact_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        rows, total = page_rows(
            self._engine,
            promotions,
            {"app": app, "to_env": env, "artifact_id": artifact_id},
            offset,
            limit,
        )
        return [_promotion_json(r) for r in rows], total

    def last_promoted(self, app: str, environment: str) -> str | None:
        """The artifact of the latest promotion of `app` into `environment`, if any."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(promotions.c.artifact_id)
                .where(promotions.c.app == app, promotions.c.to_env == environment)
                .order_by(promotions.c.seq.desc())
                .limit(1)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def registered_after(self, artifact_id: str, other_id: str) -> bool:
        """Whether `artifact_id` was recorded after `other_id` on the branch's history (an
        artifact the index does not know yet is being recorded: it is the later one)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(artifacts.c.id, artifacts.c.seq).where(
                    artifacts.c.id.in_([artifact_id, other_id])
                )
            ).all()
        seq = {r.id: r.seq for r in rows}
        if artifact_id not in seq:
            return False
        return other_id in seq and seq[artifact_id] > seq[other_id]

    def chained_pins(self, artifact_id: str, first_from: str) -> list[dict[str, Any]]:
        """The pins policy chained on the artifact's registration, as each answer to that
        registration names them: its automatic promotions, in order, made under the
        correlation id of the first (the one from `first_from`)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    promotions.c.from_env,
                    promotions.c.to_env,
                    promotions.c.commit,
                    promotions.c.correlation_id,
                )
                .where(promotions.c.artifact_id == artifact_id, promotions.c.automatic)
                .order_by(promotions.c.seq)
            ).all()
        first = next((r for r in rows if r.from_env == first_from), None)
        if first is None:
            return []
        return [
            {"environment": r.to_env, "commit": r.commit}
            for r in rows
            if r.correlation_id == first.correlation_id
        ]

    def held(self, artifact_id: str, environment: str) -> bool:
        """Whether a rollback keeps the artifact out of the environment's auto-promotion."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(holds.c.rollback_commit).where(
                    holds.c.artifact_id == artifact_id,
                    holds.c.environment == environment,
                    holds.c.released_by.is_(None),
                )
            ).first()
        return row is not None

    def holds_of(self, artifact_id: str) -> list[str]:
        """The environments the artifact is held out of."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(holds.c.environment)
                .where(holds.c.artifact_id == artifact_id, holds.c.released_by.is_(None))
                .distinct()
            ).all()
        return sorted(r.environment for r in rows)

    def rollbacks(
        self, environment: str | None = None, failed_artifact: str | None = None
    ) -> list[dict[str, Any]]:
        rows, _ = page_rows(
            self._engine,
            rollbacks,
            {"environment": environment, "failed_artifact": failed_artifact},
            0,
            500,
        )
        return [dict(r._mapping) for r in rows]

    def tip(self) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(index_state.c.value).where(index_state.c.key == "tip")
            ).scalar_one_or_none()
        return value

    def clear(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(holds.delete())
            conn.execute(rollbacks.delete())
            conn.execute(reviews.delete())
            conn.execute(requests.delete())
            conn.execute(promotions.delete())
            conn.execute(artifacts.delete())
            conn.execute(index_state.delete().where(index_state.c.key != "schema"))

    @staticmethod
    def _set_tip(conn: sa.Connection, tip: str) -> None:
        updated = conn.execute(
            index_state.update().where(index_state.c.key == "tip").values(value=tip)
        )
        if updated.rowcount == 0:
            conn.execute(index_state.insert().values(key="tip", value=tip))


def _add_rollback(conn: sa.Connection, fact: RollbackFact) -> None:
    known = conn.execute(sa.select(rollbacks.c.commit).where(rollbacks.c.commit == fact.commit))
    if known.first():
        return
    conn.execute(
        rollbacks.insert().values(
            commit=fact.commit,
            environment=fact.environment,
            restored_artifact=fact.restored,
            failed_artifact=fact.failed,
            deployment_id=fact.deployment_id,
            rolled_back_by=fact.rolled_back_by,
            correlation_id=fact.correlation_id,
            rolled_back_at=fact.rolled_back_at,
            seq=last_seq(conn, rollbacks) + 1,
        )
    )
    conn.execute(
        holds.insert().values(
            artifact_id=fact.failed, environment=fact.environment, rollback_commit=fact.commit
        )
    )
    if fact.returned_to:
        conn.execute(
            artifacts.update()
            .where(artifacts.c.id == fact.failed)
            .values(promotion_status=fact.returned_to)
        )


def _to_artifact(row: sa.Row[Any]) -> IndexedArtifact:
    return IndexedArtifact(
        record=ArtifactRecord.from_dict(json.loads(row.record)),
        commit=row.commit,
        promotion_status=row.promotion_status,
    )


def _promotion_json(row: sa.Row[Any]) -> dict[str, Any]:
    fact = PromotionFact(
        commit=row.commit,
        artifact_id=row.artifact_id,
        from_env=row.from_env,
        to_env=row.to_env,
        promoted_by=row.promoted_by,
        approval_ticket=row.approval_ticket,
        approved_by=row.approved_by,
        correlation_id=row.correlation_id,
        request_id=row.request_id,
        promoted_at=row.promoted_at,
        automatic=bool(row.automatic),
    )
    return fact.as_json(row.app, row.version)
