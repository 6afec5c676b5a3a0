"""Shared fixtures: every store-touching test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from subledger.settings import Database, Settings, parse_database_url
from tests.harness import Harness, harness

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("SUBLEDGER_TEST_DATABASE_URL", "").strip() or DEFAULT_PG
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
STRIPE_SAMPLES = REPO / "tests" / "fixtures"


def _pg_problem() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {PG_URL} is not reachable: {error}".strip()
    return None


_PG_PROBLEM = _pg_problem()


def unavailable(what: str, problem: str) -> None:
    """Something the suite must test is missing: a loud skip here, a failure under CI."""
    if IN_CI:
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(f"SKIPPING {what} — {problem}")


def require_postgres() -> None:
    if _PG_PROBLEM is not None:
        unavailable("POSTGRESQL TESTS", _PG_PROBLEM)


def pytest_report_header() -> list[str]:
    from projections import native

    return [
        f"postgresql: {PG_URL} ({'ok' if _PG_PROBLEM is None else _PG_PROBLEM})",
        f"fold: {'compiled' if native.active() else 'pure Python'} ({native.root()})",
    ]


@contextlib.contextmanager
def fresh_postgres_url() -> Iterator[str]:
    """A new PostgreSQL schema on the test server, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'subledger.db'}"
        return
    with fresh_postgres_url() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """For the few tests that only make sense on PostgreSQL (network, LISTEN, locks)."""
    with fresh_postgres_url() as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Database:
    return parse_database_url(database_url)


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(database=database)


@pytest.fixture
def h(settings: Settings) -> Iterator[Harness]:
    """The service in this process behind litestar's test client, on the test's store."""
    with harness(settings) as running:
        yield running
