"""Fresh stores for a benchmark, a quiet PostgreSQL before each measured run, row counts."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PG = (
    os.environ.get("SUBLEDGER_BENCH_DATABASE_URL", "")
    or os.environ.get("SUBLEDGER_TEST_DATABASE_URL", "")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = ("sqlite", "postgresql")


def fresh_url(store: str, tmp: Path) -> str:
    """A new SQLite file in `tmp`, or a new schema `bench_…` on the PostgreSQL server."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    if store == "sqlite":
        return f"sqlite:///{tmp / f'{name}.db'}"
    return with_schema(PG, name)


def with_schema(base: str, schema: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"schema={schema}", ""))


def connect(url: str = PG) -> Any:
    import psycopg

    from subledger.settings import parse_database_url
    from subledger.store import pg_conninfo

    return psycopg.connect(**pg_conninfo(parse_database_url(url)), autocommit=True)


def drop(url: str) -> None:
    """Remove what fresh_url() made."""
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    from psycopg import sql

    schema = url.rsplit("schema=", 1)[1]
    with connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def reachable() -> str | None:
    """None, or why the PostgreSQL server cannot be used (one line)."""
    try:
        with connect() as conn:
            conn.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - reported, not fatal
        return f"PostgreSQL at {PG} is not reachable ({type(error).__name__}); use --stores sqlite"
    return None


def settings() -> dict[str, str]:
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "wal_sync_method")
    with connect() as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}


def quiet(url: str, max_wait_s: float = 300.0) -> None:
    """Before each measured run: vacuum and analyze the store's tables (PostgreSQL), flush
    PostgreSQL's dirty pages (SQLite runs too: they share the disk) and wait until no
    autovacuum worker runs, so that one run's aftermath (a checkpoint of gigabytes after a
    1M-fact replay, autovacuum of swapped-in tables) does not land on the next run. After
    generation it also sets the fresh rows' hint bits, a write PostgreSQL's first reader
    would otherwise pay, slowing whichever side reads first."""
    import psycopg

    from subledger.settings import parse_database_url

    on_postgres = url.startswith("postgresql")
    try:
        conn = connect(url if on_postgres else PG)
    except psycopg.OperationalError:
        if on_postgres:
            raise
        return  # a SQLite-only machine: nothing to quiet
    schema = parse_database_url(url).schema if on_postgres else ""
    with conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            conn.execute(f'VACUUM (ANALYZE) "{schema}"."{table}"')
        conn.execute("CHECKPOINT")
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ).fetchone()
            if not busy or not busy[0]:
                return
            time.sleep(0.5)


def count_rows(url: str, table: str) -> int:
    """Rows in a table of the store at `url`."""
    from subledger.settings import parse_database_url

    database = parse_database_url(url)
    if database.kind == "sqlite":
        with sqlite3.connect(f"file:{database.path}?mode=ro", uri=True) as conn:
            return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    from psycopg import sql

    with connect(url) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(database.schema), sql.Identifier(table)
        )
        return int(conn.execute(query).fetchone()[0])


def log_position(url: str) -> int:
    """The last notification id of a PostgreSQL log."""
    from psycopg import sql

    from subledger.settings import parse_database_url

    schema = parse_database_url(url).schema
    with connect(url) as conn:
        query = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}.ledger_events").format(
            sql.Identifier(schema)
        )
        return int(conn.execute(query).fetchone()[0])


def commits_since(url: str, position: int) -> tuple[int, int]:
    """(facts, distinct writing transactions) of a PostgreSQL log past `position`: xmin tells
    which rows one transaction inserted, so facts/transactions is the real commit group size."""
    from psycopg import sql

    from subledger.settings import parse_database_url

    schema = parse_database_url(url).schema
    with connect(url) as conn:
        query = sql.SQL(
            "SELECT count(*), count(DISTINCT xmin::text) FROM {}.ledger_events"
            " WHERE notification_id > %s"
        ).format(sql.Identifier(schema))
        rows, transactions = conn.execute(query, (position,)).fetchone()
        return int(rows), int(transactions)
