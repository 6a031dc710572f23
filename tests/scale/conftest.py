"""PostgreSQL for the scale tests: RITMO_TEST_DATABASE_URL names a server (.ci/run starts
one); each test gets a database of its own. Without the variable these tests skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from bot.store.schema import make_engine
from tests.helpers import kill_gpg_agent

URL_VARIABLE = "RITMO_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(
            f"{URL_VARIABLE} is unset: no PostgreSQL to test replicas against "
            "(.ci/run starts one and sets it)"
        )
    return url


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = "ritmo_" + uuid.uuid4().hex[:12]
    admin = make_engine(postgres_server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(postgres_server).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def settings(
    tmp_path: Path, remote: Path, signing_key: tuple[Path, str], database_url: str
) -> Settings:
    return replica_settings(tmp_path / "data", remote, signing_key, database_url)


def replica_settings(
    data_dir: Path,
    remote: Path,
    signing_key: tuple[Path, str],
    database_url: str,
    tokens_file: Path | None = None,
) -> Settings:
    home, fingerprint = signing_key
    return load_settings(
        None,
        data_dir=data_dir,
        auth={"tokens_file": str(tokens_file) if tokens_file else None},
        database_url=database_url,
        manifests={"url": str(remote), "author_name": "Ritmo", "author_email": "ritmo@example.com"},
        signing={"gnupghome": str(home), "key": fingerprint},
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    close_replica(rt)


def close_replica(rt: Runtime) -> None:
    """Runtime.close, then the engine's pooled connections (psycopg warns about open ones)."""
    rt.close()
    rt.index.engine.dispose()
    kill_gpg_agent(rt.settings.data_dir / "trusted-gnupg")
