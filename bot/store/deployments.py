"""Deployments as the ledger branch records them, and the CD reports already taken."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.statuses import DeploymentStatus
from bot.store.deployment_record import Deployment
from bot.store.query import last_seq, page_rows
from bot.store.schema import index_state, metadata

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("app", sa.String(64), nullable=False, index=True),
    sa.Column("environment", sa.String(64), nullable=False, index=True),
    sa.Column("artifact_id", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("pin_commit", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False, index=True),
)

cd_reports = sa.Table(
    "cd_reports",
    metadata,
    # Who reported about what: (source, cluster or instance, namespace, name, revision),
    # hashed; and the outcome it reported last. The same outcome again is a re-send (Flux
    # says ReconciliationSucceeded on every interval); another outcome is news.
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False, server_default=""),
)

forge_refs = sa.Table(
    "deployment_forge_refs",
    metadata,
    # The GitHub deployment mirroring a Ritmo deployment. A cache: losing it makes the next
    # status start a new GitHub deployment, nothing worse.
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("forge_ref", sa.String(64), nullable=False),
)

_LEDGER_TIP = "ledger_tip"


class DeploymentIndex:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def save(self, records: Iterable[Deployment], ledger_tip: str | None = None) -> None:
        """Insert or update `records` and remember the ledger's tip; one transaction."""
        with self._engine.begin() as conn:
            self._save(conn, records, ledger_tip)

    def replace(self, records: Iterable[Deployment], ledger_tip: str) -> None:
        """The deployments are exactly `records` (the ledger was rewritten), in one
        transaction: a replica reading meanwhile sees the old set or the new one."""
        with self._engine.begin() as conn:
            conn.execute(deployments.delete())
            self._save(conn, records, ledger_tip)

    @staticmethod
    def _save(conn: sa.Connection, records: Iterable[Deployment], ledger_tip: str | None) -> None:
        # First: on PostgreSQL this serialises savers, so two replicas following the same
        # ledger commit cannot both insert a record each found missing.
        next_seq = last_seq(conn, deployments)
        for record in records:
            values = {
                "app": record.app,
                "environment": record.environment,
                "artifact_id": record.artifact_id,
                "status": str(record.status),
                "pin_commit": record.pin_commit,
                "created_at": record.created_at,
                "record": json.dumps(record.to_dict(), sort_keys=True),
            }
            known = conn.execute(
                sa.select(deployments.c.seq).where(deployments.c.id == record.id)
            ).first()
            if known is None:
                next_seq += 1
                conn.execute(deployments.insert().values(id=record.id, seq=next_seq, **values))
            else:
                conn.execute(
                    deployments.update().where(deployments.c.id == record.id).values(**values)
                )
        if ledger_tip is not None:
            _set_state(conn, _LEDGER_TIP, ledger_tip)

    def get(self, deployment_id: str) -> Deployment | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(deployments.c.record).where(deployments.c.id == deployment_id)
            ).first()
        return _record(row.record) if row else None

    def search(
        self,
        app: str | None = None,
        env: str | None = None,
        status: str | None = None,
        artifact_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Deployment], int]:
        rows, total = page_rows(
            self._engine,
            deployments,
            {"app": app, "environment": env, "status": status, "artifact_id": artifact_id},
            offset,
            limit,
        )
        return [_record(r.record) for r in rows], total

    def last_succeeded(
        self, app: str, env: str, other_than: str | None = None
    ) -> Deployment | None:
        """The newest succeeded deployment in the environment, optionally of another artifact."""
        where = [
            deployments.c.app == app,
            deployments.c.environment == env,
            deployments.c.status == DeploymentStatus.SUCCEEDED,
        ]
        if other_than is not None:
            where.append(deployments.c.artifact_id != other_than)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(deployments.c.record).where(*where).order_by(deployments.c.seq.desc())
            ).first()
        return _record(row.record) if row else None

    def latest_of(self, artifact_id: str, env: str) -> Deployment | None:
        """The artifact's newest deployment in the environment; superseded reports (about
        a revision older than the environment's pin) are history and do not count."""
        return next(self.current_records(env=env, artifact_id=artifact_id), None)

    def current_records(
        self, app: str | None = None, env: str | None = None, artifact_id: str | None = None
    ) -> Iterator[Deployment]:
        """Deployments, newest first, without the superseded ones."""
        where = [deployments.c.seq > 0]
        for column, value in (("app", app), ("environment", env), ("artifact_id", artifact_id)):
            if value is not None:
                where.append(deployments.c[column] == value)
        query = sa.select(deployments.c.record).where(*where).order_by(deployments.c.seq.desc())
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            record = _record(row.record)
            if not record.superseded:
                yield record

    def latest_by_place(self) -> dict[tuple[str, str], Deployment]:
        """(app, environment) -> its newest deployment, for every place with one; one query."""
        newest = sa.select(sa.func.max(deployments.c.seq)).group_by(
            deployments.c.app, deployments.c.environment
        )
        with self._engine.connect() as conn:
            query = sa.select(deployments.c.record).where(deployments.c.seq.in_(newest))
            found = [_record(r.record) for r in conn.execute(query)]
        return {(r.app, r.environment): r for r in found}

    def clear(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(deployments.delete())
            conn.execute(cd_reports.delete())
            conn.execute(index_state.delete().where(index_state.c.key == _LEDGER_TIP))

    def ledger_tip(self) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(index_state.c.value).where(index_state.c.key == _LEDGER_TIP)
            ).scalar_one_or_none()

    # -- reports already taken ----------------------------------------------------
    def reported(self, key: str) -> str | None:
        """The deployment a report with this key went to, when it was taken before."""
        last = self.last_report(key)
        return last[0] if last else None

    def last_report(self, key: str) -> tuple[str, str] | None:
        """(deployment id, outcome) of the last report taken with this key."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(cd_reports.c.deployment_id, cd_reports.c.outcome).where(
                    cd_reports.c.key == key
                )
            ).first()
        return (str(row.deployment_id), str(row.outcome)) if row else None

    def remember_report(self, key: str, deployment_id: str, outcome: str = "") -> None:
        """The reporter's last outcome is `outcome` now (the deployment a key goes to never
        changes: the key holds the revision)."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    cd_reports.insert().values(
                        key=key, deployment_id=deployment_id, outcome=outcome
                    )
                )
        except IntegrityError:  # taken before, or a concurrent copy: the outcome moves on
            with self._engine.begin() as conn:
                conn.execute(
                    cd_reports.update().where(cd_reports.c.key == key).values(outcome=outcome)
                )

    # -- the forge's mirror -------------------------------------------------------
    def forge_ref(self, deployment_id: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(forge_refs.c.forge_ref).where(forge_refs.c.deployment_id == deployment_id)
            ).scalar_one_or_none()

    def set_forge_ref(self, deployment_id: str, ref: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(forge_refs.delete().where(forge_refs.c.deployment_id == deployment_id))
            conn.execute(forge_refs.insert().values(deployment_id=deployment_id, forge_ref=ref))


def _record(stored: str) -> Deployment:
    return Deployment.from_dict(json.loads(stored))


def _set_state(conn: sa.Connection, key: str, value: str) -> None:
    updated = conn.execute(index_state.update().where(index_state.c.key == key).values(value=value))
    if updated.rowcount == 0:
        conn.execute(index_state.insert().values(key=key, value=value))
