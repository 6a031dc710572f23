"""The index's SQL schema: the tables git rebuilds, the engine, and creating both.

An index of another SCHEMA_VERSION is dropped and rebuilt from git; queues (webhook
deliveries, the outbox) and tokens are kept.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

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


def ensure_schema(engine: Engine) -> None:
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
