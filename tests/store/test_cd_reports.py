"""The CD reports already taken: each reporter's last outcome per revision (cd_reports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.store.deployments import DeploymentIndex
from bot.store.index import ArtifactIndex
from bot.store.schema import SCHEMA_VERSION, index_state, make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    yield engine
    engine.dispose()


def test_the_last_outcome_moves_and_the_deployment_stays(engine: Engine) -> None:
    reports = DeploymentIndex(engine)
    assert reports.last_report("k") is None
    reports.remember_report("k", "dep-1", "degraded")
    assert reports.last_report("k") == ("dep-1", "degraded")
    reports.remember_report("k", "dep-1", "succeeded")
    assert reports.last_report("k") == ("dep-1", "succeeded")
    reports.remember_report("k", "dep-2", "degraded")  # a key always goes to one deployment
    assert reports.last_report("k") == ("dep-1", "degraded")
    assert reports.reported("k") == "dep-1"
    reports.clear()
    assert reports.last_report("k") is None


def test_an_index_of_the_old_shape_is_rebuilt(tmp_path: Path) -> None:
    """cd_reports had no outcome before schema 4: such an index is dropped and rebuilt."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.execute(sa.text("CREATE TABLE cd_reports (key VARCHAR(64) PRIMARY KEY, "
                             "deployment_id VARCHAR(64) NOT NULL)"))  # fmt: skip
        conn.execute(sa.text("INSERT INTO cd_reports VALUES ('k', 'dep-1')"))
        conn.execute(sa.text("CREATE TABLE index_state (key VARCHAR(64) PRIMARY KEY, "
                             "value TEXT NOT NULL)"))  # fmt: skip
        conn.execute(sa.text("INSERT INTO index_state VALUES ('schema', '3')"))
    old.dispose()
    engine = make_engine(url)
    try:
        ArtifactIndex(engine)  # the runtime's first store: it checks the schema
        reports = DeploymentIndex(engine)
        assert reports.last_report("k") is None
        reports.remember_report("k", "dep-1", "succeeded")
        assert reports.last_report("k") == ("dep-1", "succeeded")
        with engine.connect() as conn:
            schema = conn.execute(
                sa.select(index_state.c.value).where(index_state.c.key == "schema")
            ).scalar_one()
        assert schema == SCHEMA_VERSION == "4"
    finally:
        engine.dispose()
