"""The projection lock serialises writers of one PostgreSQL schema, and only of that one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from projections.storage.db import ViewDb
from subledger.settings import parse_database_url
from tests.conftest import fresh_postgres_url


@pytest.fixture
def other_postgres_url() -> Iterator[str]:
    with fresh_postgres_url() as url:
        yield url


def _write_while_held(holder_url: str, other_url: str) -> BaseException | None:
    """Hold the projection lock of `holder_url`'s store and try a write to `other_url`'s
    from another thread; returns what that write raised (None when it got the lock)."""
    holder = ViewDb(parse_database_url(holder_url))
    other = ViewDb(parse_database_url(other_url), lock_timeout_s=0.3)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            with other.write() as cur:
                cur.execute("SELECT 1")
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome.append(error)

    try:
        with holder.write():
            thread = threading.Thread(target=write)
            thread.start()
            thread.join(10)
    finally:
        holder.close()
        other.close()
    assert outcome, "the second write neither finished nor failed"
    return outcome[0]


def test_projection_lock_serialises_writers_of_one_schema(postgres_url: str) -> None:
    error = _write_while_held(postgres_url, postgres_url)
    assert isinstance(error, psycopg.errors.LockNotAvailable)


def test_projection_lock_does_not_reach_other_schemas(
    postgres_url: str, other_postgres_url: str
) -> None:
    """Two deployments in two schemas of one database: a replay swap or a projector
    batch in one never makes the other's projector wait (or time out)."""
    assert _write_while_held(postgres_url, other_postgres_url) is None
