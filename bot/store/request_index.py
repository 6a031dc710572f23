"""RequestIndex: promotion requests and their reviews, as rows."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.statuses import RequestStatus
from bot.store.query import last_seq, page_rows
from bot.store.request_record import RequestRecord, ReviewRecord
from bot.store.schema import metadata, requests, reviews


class RequestIndex:
    """Promotion requests and their reviews, as the request branches and main say."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def save(self, request: RequestRecord) -> None:
        row = request.as_row()
        with self._engine.begin() as conn:
            exists = conn.execute(sa.select(requests.c.seq).where(requests.c.id == row["id"]))
            seq = exists.scalar_one_or_none()
            if seq is None:
                conn.execute(requests.insert().values(**row, seq=last_seq(conn, requests) + 1))
            else:
                conn.execute(requests.update().where(requests.c.id == row["id"]).values(**row))

    def add_review(self, review: ReviewRecord) -> None:
        with self._engine.begin() as conn:
            known = conn.execute(sa.select(reviews.c.sha).where(reviews.c.sha == review.sha))
            if not known.first():
                conn.execute(reviews.insert().values(**review.as_row()))

    def get(self, request_id: str) -> RequestRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(requests).where(requests.c.id == request_id)).first()
        return RequestRecord.from_row(dict(row._mapping)) if row else None

    def open_for(self, app: str, env: str) -> RequestRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(requests).where(
                    requests.c.app == app,
                    requests.c.to_env == env,
                    requests.c.status == RequestStatus.PENDING,
                )
            ).first()
        return RequestRecord.from_row(dict(row._mapping)) if row else None

    def by_forge_ref(self, ref: str) -> RequestRecord | None:
        """The request shown as `ref` on the forge (a pull request number): the pending one,
        else the latest (GitHub may keep a pull request across requests, e.g. after a crash)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(requests)
                .where(requests.c.forge_ref == ref)
                .order_by(
                    (requests.c.status == RequestStatus.PENDING).desc(), requests.c.seq.desc()
                )
            ).first()
        return RequestRecord.from_row(dict(row._mapping)) if row else None

    def by_commit(self, sha: str) -> RequestRecord | None:
        """The request whose head or branch tip is `sha`."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(requests)
                .where(sa.or_(requests.c.head == sha, requests.c.tip == sha))
                .order_by(requests.c.seq.desc())
            ).first()
        return RequestRecord.from_row(dict(row._mapping)) if row else None

    def reviews_of(self, request_id: str) -> list[ReviewRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(reviews)
                .where(reviews.c.request_id == request_id)
                .order_by(reviews.c.submitted_at)
            ).all()
        return [ReviewRecord.from_row(dict(r._mapping)) for r in rows]

    def search(
        self,
        app: str | None = None,
        env: str | None = None,
        status: RequestStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[RequestRecord], int]:
        rows, total = page_rows(
            self._engine,
            requests,
            {"app": app, "to_env": env, "status": status},
            offset,
            limit,
        )
        return [RequestRecord.from_row(dict(r._mapping)) for r in rows], total

    def pending(self) -> list[RequestRecord]:
        return self.search(status=RequestStatus.PENDING, limit=10_000)[0]
