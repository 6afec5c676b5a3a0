"""Shared fixtures: every store-touching test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from subledger.settings import Database, Settings, parse_database_url
from tests.harness import Harness, harness

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("SUBLEDGER_TEST_DATABASE_URL", "").strip() or DEFAULT_PG
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEMORY_CHECKS:
        terminalreporter.write_line(
            f"memory fold = SQL rows: {len(MEMORY_CHECKS)} stores compared byte for byte"
        )


def pytest_report_header() -> list[str]:
    return [f"postgresql: {PG_URL} ({'ok' if _PG_PROBLEM is None else _PG_PROBLEM})"]


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
    """A fresh store: a new SQLite file, or a new PostgreSQL schema dropped afterwards.
    Afterwards, the rows the test's projection wrote must be those the fold writes in
    memory from the same log (unless the test tampers with them on purpose)."""
    check = request.node.get_closest_marker("tampers_read_models") is None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'subledger.db'}"
        yield url
        if check:
            memory_matches_sql(url)
        return
    with fresh_postgres_url() as url:
        yield url
        if check:
            memory_matches_sql(url)


def memory_matches_sql(url: str) -> None:
    """Fold the store's log in memory; when its live projection has caught up with that
    log, every row must be the same bytes (issue 18: one fold, two kinds of storage)."""
    from projections.reader import Reader
    from subledger.ledger import Ledger
    from tests.memory import fold_entries, sql_rows

    database = parse_database_url(url)
    if database.kind == "sqlite" and not Path(database.path).exists():
        return
    ledger = Ledger(database)
    reader = Reader(database)
    try:
        end = ledger.last_position()
        if end == 0 or reader.position() != end:
            return  # no log, or a projection the test left behind on purpose
        entries = ledger.log_page(1, end + 1)
        assert sql_rows(database) == fold_entries(entries).rows()
        MEMORY_CHECKS.append(url)
    finally:
        reader.close()
        ledger.close()


MEMORY_CHECKS: list[str] = []  # stores compared, for the summary line


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
