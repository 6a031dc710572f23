"""ArtifactIndex: SQLAlchemy Core tables that answer API reads without walking git."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.store.locks import lock_key

metadata = sa.MetaData()

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("promotion_status", sa.String(64), nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False, index=True),  # order of appearance in history
    sa.Column("record", sa.Text, nullable=False),
    sa.UniqueConstraint("name", "version"),
)

promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("artifact_id", sa.String(64), nullable=False, index=True),
    sa.Column("app", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("from_env", sa.String(64), nullable=False),
    sa.Column("to_env", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("promoted_by", sa.String(128), nullable=False),
    sa.Column("approval_ticket", sa.String(128)),
    sa.Column("approved_by", sa.Text),
    sa.Column("correlation_id", sa.String(128)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("promoted_at", sa.String(32)),
    sa.Column("automatic", sa.Boolean, nullable=False, default=False),
    sa.Column("seq", sa.Integer, nullable=False, index=True),
)

requests = sa.Table(
    "promotion_requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("artifact_id", sa.String(64), nullable=False),
    sa.Column("app", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("from_env", sa.String(64), nullable=False),
    sa.Column("to_env", sa.String(64), nullable=False, index=True),
    sa.Column("branch", sa.String(255), nullable=False),
    sa.Column("head", sa.String(64), nullable=False),  # the commit that edits the overlay
    sa.Column("tip", sa.String(64), nullable=False),  # the branch tip: head plus reviews
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("requested_by", sa.String(128), nullable=False),
    sa.Column("approval_ticket", sa.String(128)),
    sa.Column("opened_at", sa.String(32), nullable=False),
    sa.Column("closed_at", sa.String(32)),
    sa.Column("superseded_by", sa.String(64)),
    sa.Column("merge_commit", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("forge_ref", sa.String(64)),  # e.g. the pull request number
    sa.Column("body", sa.Text),  # the description shown to reviewers
    sa.Column("seq", sa.Integer, nullable=False, index=True),
)

reviews = sa.Table(
    "promotion_reviews",
    metadata,
    sa.Column("sha", sa.String(64), primary_key=True),  # the review's own commit
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("reviewer", sa.String(128), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),  # the request head it reviewed
    sa.Column("submitted_at", sa.String(32), nullable=False),
)

rollbacks = sa.Table(
    "rollbacks",
    metadata,
    sa.Column("commit", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(64), nullable=False, index=True),
    sa.Column("restored_artifact", sa.String(64), nullable=False),
    sa.Column("failed_artifact", sa.String(64), nullable=False, index=True),
    sa.Column("deployment_id", sa.String(64)),
    sa.Column("rolled_back_by", sa.String(128), nullable=False),
    sa.Column("correlation_id", sa.String(128)),
    sa.Column("rolled_back_at", sa.String(32)),
    sa.Column("seq", sa.Integer, nullable=False, index=True),
)

holds = sa.Table(
    "holds",
    metadata,
    # A rolled-back artifact is kept out of the environment's auto-promotion until an
    # explicit promotion into it releases the hold.
    sa.Column("artifact_id", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(64), primary_key=True),
    sa.Column("rollback_commit", sa.String(64), primary_key=True),
    sa.Column("released_by", sa.String(64)),
)

index_state = sa.Table(
    "index_state",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class IndexedArtifact:
    record: dict[str, Any]
    commit: str
    promotion_status: str

    def as_json(self) -> dict[str, Any]:
        return {**self.record, "commit": self.commit, "promotion_status": self.promotion_status}


@dataclass(frozen=True)
class PromotionFact:
    """A promotion as its commit's trailers tell it."""

    commit: str
    artifact_id: str
    from_env: str
    to_env: str
    promoted_by: str
    approval_ticket: str | None = None
    approved_by: str | None = None
    correlation_id: str | None = None
    request_id: str | None = None  # set when a merged request made this promotion
    promoted_at: str | None = None  # the commit's time
    automatic: bool = False  # made by policy, not asked for: it releases no hold

    @property
    def id(self) -> str:
        return "pro-" + self.commit[:16]

    def as_json(self, app: str, version: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "artifact_id": self.artifact_id,
            "app": app,
            "version": version,
            "from": self.from_env,
            "to": self.to_env,
            "status": "promoted",
            "commit": self.commit,
            "promoted_by": self.promoted_by,
            "approval_ticket": self.approval_ticket,
            "approved_by": self.approved_by.split(", ") if self.approved_by else [],
            "request_id": self.request_id,
            "promoted_at": self.promoted_at,
            "automatic": self.automatic,
        }


@dataclass(frozen=True)
class RollbackFact:
    """A rollback as its commit's trailers tell it: `failed` out, `restored` back in."""

    commit: str
    environment: str
    restored: str
    failed: str
    returned_to: str | None  # where the failed artifact stands now (the previous environment)
    rolled_back_by: str
    deployment_id: str | None = None
    correlation_id: str | None = None
    rolled_back_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "environment": self.environment,
            "restored_artifact": self.restored,
            "failed_artifact": self.failed,
            "deployment_id": self.deployment_id,
            "rolled_back_by": self.rolled_back_by,
            "rolled_back_at": self.rolled_back_at,
        }


HistoryFact = PromotionFact | RollbackFact


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            # WAL lets readers in other workers go on while the writer commits.
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":
        # Plain postgresql:// means psycopg2 to SQLAlchemy; Ritmo ships psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    # pre_ping: a replica outlives database restarts and failovers without failed requests.
    return sa.create_engine(parsed, pool_pre_ping=True)


# Bumped when a table that git rebuilds changes shape. An index of another version is
# dropped and rebuilt from git; queues (webhook deliveries, the outbox) are kept.
SCHEMA_VERSION = "4"  # 4: cd_reports keeps the last outcome
GIT_DERIVED = (
    "artifacts", "promotions", "promotion_requests", "promotion_reviews", "rollbacks",
    "holds", "deployments", "cd_reports", "deployment_forge_refs", "index_state",
)  # fmt: skip


_SCHEMA_LOCK = 0x52_69_74_6D  # "Ritm": replicas starting together create the schema once


def _ensure_schema(engine: Engine) -> None:
    """Create the tables, or drop and re-create the git-derived ones when their shape is
    another version's; one transaction, serialised across replicas on PostgreSQL."""
    try:
        _create_schema(engine)
    except (IntegrityError, OperationalError):
        # SQLite has no such lock: a process starting beside us created it first.
        _create_schema(engine)


def _create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        if "index_state" in sa.inspect(conn).get_table_names():
            version = conn.execute(
                sa.select(index_state.c.value).where(index_state.c.key == "schema")
            ).scalar_one_or_none()
            if version == SCHEMA_VERSION:
                metadata.create_all(conn)  # tables added since, in the same version
                return
            for name in GIT_DERIVED:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
        metadata.create_all(conn)
        conn.execute(index_state.insert().values(key="schema", value=SCHEMA_VERSION))


class ArtifactIndex:
    def __init__(
        self, engine: Engine, initial_environment: str | Callable[[], str] = "dev"
    ) -> None:
        self._engine = engine
        self.engine = engine
        # Where a new record stands: the first environment of the policy in force, asked
        # when the record is indexed (the policy can change while the server runs).
        self._initial = initial_environment
        _ensure_schema(engine)
        metadata.create_all(engine)

    @property
    def initial_environment(self) -> str:
        return self._initial if isinstance(self._initial, str) else self._initial()

    def get(self, artifact_id: str) -> IndexedArtifact | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.id == artifact_id)).first()
        return _to_artifact(row) if row else None

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
        entries: Iterable[tuple[dict[str, Any], str]],
        tip: str,
        promoted: Iterable[HistoryFact] = (),
    ) -> int:
        """Insert (record, commit) pairs not yet indexed, then the promotions and rollbacks,
        in order, and remember `tip`; one transaction."""
        fresh: dict[str, tuple[dict[str, Any], str]] = {}
        for record, commit in entries:
            fresh.setdefault(record["id"], (record, commit))
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
                        "id": record["id"],
                        "name": record["name"],
                        "version": record["version"],
                        "promotion_status": self.initial_environment,
                        "commit": commit,
                        "created_at": record["created_at"],
                        "seq": next_seq,
                        "record": json.dumps(record, sort_keys=True),
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
                    status="promoted",
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
        record=json.loads(row.record), commit=row.commit, promotion_status=row.promotion_status
    )


class RequestIndex:
    """Promotion requests and their reviews, as the request branches and main say."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def save(self, row: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            exists = conn.execute(sa.select(requests.c.seq).where(requests.c.id == row["id"]))
            seq = exists.scalar_one_or_none()
            if seq is None:
                conn.execute(requests.insert().values(**row, seq=last_seq(conn, requests) + 1))
            else:
                conn.execute(requests.update().where(requests.c.id == row["id"]).values(**row))

    def add_review(self, row: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            known = conn.execute(sa.select(reviews.c.sha).where(reviews.c.sha == row["sha"]))
            if not known.first():
                conn.execute(reviews.insert().values(**row))

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(requests).where(requests.c.id == request_id)).first()
        return dict(row._mapping) if row else None

    def open_for(self, app: str, env: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(requests).where(
                    requests.c.app == app, requests.c.to_env == env, requests.c.status == "pending"
                )
            ).first()
        return dict(row._mapping) if row else None

    def by_forge_ref(self, ref: str) -> dict[str, Any] | None:
        """The request shown as `ref` on the forge (a pull request number): the pending one,
        else the latest (GitHub may keep a pull request across requests, e.g. after a crash)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(requests)
                .where(requests.c.forge_ref == ref)
                .order_by((requests.c.status == "pending").desc(), requests.c.seq.desc())
            ).first()
        return dict(row._mapping) if row else None

    def by_commit(self, sha: str) -> dict[str, Any] | None:
        """The request whose head or branch tip is `sha`."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(requests)
                .where(sa.or_(requests.c.head == sha, requests.c.tip == sha))
                .order_by(requests.c.seq.desc())
            ).first()
        return dict(row._mapping) if row else None

    def reviews_of(self, request_id: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(reviews)
                .where(reviews.c.request_id == request_id)
                .order_by(reviews.c.submitted_at)
            ).all()
        return [dict(r._mapping) for r in rows]

    def search(
        self,
        app: str | None = None,
        env: str | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        rows, total = page_rows(
            self._engine,
            requests,
            {"app": app, "to_env": env, "status": status},
            offset,
            limit,
        )
        return [dict(r._mapping) for r in rows], total

    def pending(self) -> list[dict[str, Any]]:
        return self.search(status="pending", limit=10_000)[0]


def last_seq(conn: sa.Connection, table: sa.Table) -> int:
    """The highest `seq` in `table` (0 when empty): rows are ordered by appearance.

    On PostgreSQL this first takes a transaction-scoped lock on the table's sequence, so
    replicas adding rows at once neither tie on max + 1 nor both insert a row that each
    found missing; the lock goes with the caller's transaction. (SQLite's writer lock
    does the same there.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"seq/{table.name}")}
        )
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.seq), 0))).scalar_one())


def promotion_history(
    engine: Engine,
    app: str | None = None,
    env: str | None = None,
    status: str | None = None,
    artifact_id: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[tuple[str, str]], int]:
    """Promotion requests and direct promotions, newest first, paged in SQL: the page's
    ("request" | "promotion", id) and how many match. A merged request's promotion is
    listed once, as the request; `status` "promoted" means direct promotions only, other
    statuses are a request's; requests are listed without `artifact_id` only."""
    parts: list[sa.Select[Any]] = []
    if status != "promoted" and artifact_id is None:
        where = _equal({requests.c.app: app, requests.c.to_env: env, requests.c.status: status})
        parts.append(
            sa.select(
                sa.literal("request").label("kind"), requests.c.id.label("id"),
                requests.c.opened_at.label("at"), requests.c.seq.label("seq"),
            ).where(*where)
        )  # fmt: skip
    if status in (None, "promoted"):
        where = _equal(
            {promotions.c.app: app, promotions.c.to_env: env, promotions.c.artifact_id: artifact_id}
        )
        parts.append(
            sa.select(
                sa.literal("promotion").label("kind"), promotions.c.id.label("id"),
                promotions.c.promoted_at.label("at"), promotions.c.seq.label("seq"),
            ).where(promotions.c.request_id.is_(None), *where)
        )  # fmt: skip
    if not parts:
        return [], 0
    both = (sa.union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    newest = (sa.func.coalesce(both.c.at, "").desc(), both.c.seq.desc())
    with engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(both)).scalar_one())
        rows = conn.execute(
            sa.select(both.c.kind, both.c.id).order_by(*newest).offset(offset).limit(limit)
        ).all()
    return [(str(kind), str(row_id)) for kind, row_id in rows], total


def _equal(wanted: dict[sa.Column[Any], Any]) -> list[sa.ColumnElement[bool]]:
    return [column == value for column, value in wanted.items() if value is not None]


def page_rows(
    engine: Engine, table: sa.Table, equal: dict[str, Any], offset: int, limit: int
) -> tuple[list[sa.Row[Any]], int]:
    """Rows whose columns equal the given values (None: any), newest first, and the count."""
    where = _equal({table.c[column]: value for column, value in equal.items()})
    count = sa.select(sa.func.count()).select_from(table).where(*where)
    query = sa.select(table).where(*where).order_by(table.c.seq.desc())
    with engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
        rows = list(conn.execute(query.offset(offset).limit(limit)).all())
    return rows, total


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
