"""The ingest baseline: the same server stack answering 200 after verify + one INSERT/COMMIT.

Same route, same raw-body read, the same `verify` and `decode_envelope` as subledger, then one
`INSERT … ON CONFLICT DO NOTHING` committed on its own (a duplicate answers duplicate:true),
nothing else: no event sourcing, no group commit. Served like `subledger serve`
(`uvicorn.run(app, host, port, log_config=None, access_log=False)`); with `--workers N` (the
naive multi-worker server of issue 21) as `uvicorn --workers N` runs it: N processes
accepting on one socket the parent binds.

Environment:
  BENCH_DATABASE_URL    sqlite:////abs/path.db or postgresql://…/db?schema=NAME
  BENCH_APP_ID          the app id in the path; any other answers 404
  BENCH_WEBHOOK_SECRET  whsec_… the requests are signed with
  BENCH_PG_MODE         async (default: AsyncConnectionPool, autocommit INSERT = one round trip),
                        async-tx (BEGIN/INSERT/COMMIT), thread (sync ConnectionPool in a thread)
  BENCH_PG_POOL         pool size (default 8)

Run by scripts/bench/ingest: python scripts/bench/baseline_app.py --port N [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from subledger.runtime import tune_runtime
from subledger.sealing import fingerprint
from subledger.settings import Database, parse_database_url
from subledger.store import pg_conninfo
from subledger.stripe.payloads import SUPPORTED_EVENT_TYPES, PayloadError, decode_envelope
from subledger.stripe.signature import SignatureError, verify

TABLE = "bench_baseline"
TOLERANCE_S = 86400


class Store(Protocol):
    description: str

    async def start(self) -> None: ...

    async def insert(self, event_id: str, body: bytes) -> bool: ...

    async def close(self) -> None: ...


def pg_statements(database: Database) -> tuple[list[Any], Any]:
    """(schema and table DDL, the one INSERT) for the baseline table in `database.schema`."""
    from psycopg import sql

    table = sql.SQL("{}.{}").format(sql.Identifier(database.schema), sql.Identifier(TABLE))
    create = [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(database.schema)),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (event_id text PRIMARY KEY, body bytea NOT NULL)"
        ).format(table),
    ]
    insert = sql.SQL(
        "INSERT INTO {} (event_id, body) VALUES (%s, %s) ON CONFLICT (event_id) DO NOTHING"
    ).format(table)
    return create, insert


class PgAsyncStore:
    """psycopg AsyncConnectionPool on the event loop: no thread hop at all."""

    def __init__(self, database: Database, *, explicit_tx: bool, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.description = f"postgresql AsyncConnectionPool(size={size}), " + (
            "BEGIN; INSERT; COMMIT" if explicit_tx else "autocommit INSERT (1 round trip)"
        )
        self.explicit_tx = explicit_tx
        self.schema = database.schema
        self.create, self.insert_sql = pg_statements(database)
        self.pool = AsyncConnectionPool(
            kwargs={**pg_conninfo(database), "autocommit": True},
            min_size=size,
            max_size=size,
            open=False,
        )

    async def start(self) -> None:
        await self.pool.open(wait=True)
        async with self.pool.connection() as conn:
            for statement in self.create:
                await conn.execute(statement)

    async def insert(self, event_id: str, body: bytes) -> bool:
        async with self.pool.connection() as conn:
            if self.explicit_tx:
                async with conn.transaction():
                    cursor = await conn.execute(self.insert_sql, (event_id, body))
            else:
                cursor = await conn.execute(self.insert_sql, (event_id, body))
            return cursor.rowcount == 1

    async def close(self) -> None:
        await self.pool.close()


class PgThreadStore:
    """psycopg ConnectionPool used from worker threads (what eventsourcing does)."""

    def __init__(self, database: Database, *, size: int) -> None:
        from psycopg_pool import ConnectionPool

        self.description = f"postgresql ConnectionPool(size={size}) in threads, autocommit INSERT"
        self.create, self.insert_sql = pg_statements(database)
        self.pool = ConnectionPool(
            kwargs={**pg_conninfo(database), "autocommit": True},
            min_size=size,
            max_size=size,
            open=False,
        )
        self.executor = ThreadPoolExecutor(size, thread_name_prefix="pg")

    async def start(self) -> None:
        self.pool.open(wait=True)
        with self.pool.connection() as conn:
            for statement in self.create:
                conn.execute(statement)

    def _insert(self, event_id: str, body: bytes) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(self.insert_sql, (event_id, body)).rowcount == 1

    async def insert(self, event_id: str, body: bytes) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._insert, event_id, body)

    async def close(self) -> None:
        self.executor.shutdown()
        self.pool.close()


class SqliteStore:
    """One connection in one thread (SQLite has one writer anyway), WAL like eventsourcing."""

    def __init__(self, path: str) -> None:
        self.description = "sqlite3, one writer thread, WAL, INSERT + COMMIT per request"
        self.path = path
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self.conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (event_id TEXT PRIMARY KEY, body BLOB NOT NULL)"
        )
        conn.commit()
        self.conn = conn

    def _insert(self, event_id: str, body: bytes) -> bool:
        assert self.conn is not None
        cursor = self.conn.execute(
            f"INSERT OR IGNORE INTO {TABLE} (event_id, body) VALUES (?, ?)", (event_id, body)
        )
        self.conn.commit()
        return cursor.rowcount == 1

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self._open)

    async def insert(self, event_id: str, body: bytes) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._insert, event_id, body)

    async def close(self) -> None:
        if self.conn is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.conn.close)
        self.executor.shutdown()


class Baseline:
    def __init__(self, store: Store, app_id: str, secret: str) -> None:
        self.store = store
        self.app_id = app_id
        self.secrets = ((fingerprint(secret), secret),)


def _error(status: int, code: str) -> Response[bytes]:
    body = msgspec.json.encode({"error": {"code": code}})
    return Response(body, status_code=status, media_type=MediaType.JSON)


@post("/v1/incoming-webhooks/stripe/{app_id:str}", status_code=200)
async def receive(app_id: FromPath[str], request: Request[Any, Any, Any]) -> Response[bytes]:
    bench: Baseline = request.app.state.bench
    if app_id != bench.app_id:
        return _error(404, "unknown_app")
    body = await request.body()
    try:
        verify(
            body,
            request.headers.get("stripe-signature"),
            bench.secrets,
            tolerance_s=TOLERANCE_S,
            now_s=time.time(),
        )
    except SignatureError as error:
        return _error(400, error.reason)
    try:
        event = decode_envelope(body)
    except PayloadError:
        return _error(400, "not_a_stripe_event")
    if event.type not in SUPPORTED_EVENT_TYPES:
        return _error(400, "unsupported_event_type")
    new = await bench.store.insert(event.id, body)
    answer = msgspec.json.encode({"received": True, "id": event.id, "duplicate": not new})
    return Response(answer, status_code=200, media_type=MediaType.JSON)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def make_store(database: Database) -> Store:
    if database.kind == "sqlite":
        return SqliteStore(database.path)
    mode = os.environ.get("BENCH_PG_MODE", "async")
    size = int(os.environ.get("BENCH_PG_POOL", "8"))
    if mode == "thread":
        return PgThreadStore(database, size=size)
    if mode not in ("async", "async-tx"):
        raise SystemExit(f"BENCH_PG_MODE must be async, async-tx or thread, not {mode!r}")
    return PgAsyncStore(database, explicit_tx=mode == "async-tx", size=size)


def create_app() -> Litestar:
    """The baseline app (factory: reads BENCH_* from the environment)."""
    tune_runtime()  # the same interpreter settings as `subledger serve` (also in workers)
    database = parse_database_url(os.environ["BENCH_DATABASE_URL"])
    store = make_store(database)
    bench = Baseline(store, os.environ["BENCH_APP_ID"], os.environ["BENCH_WEBHOOK_SECRET"])
    sys.stderr.write(f"baseline store: {store.description}\n")
    return Litestar(
        route_handlers=[receive, health],
        on_startup=[store.start],
        on_shutdown=[store.close],
        state=State({"bench": bench}),
        debug=False,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    import uvicorn

    if args.workers <= 1:
        app = create_app()
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
        return 0
    asyncio.run(_create_table())  # once, before N workers race to create it
    uvicorn.run(
        "baseline_app:create_app",
        factory=True,
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
    )
    return 0


async def _create_table() -> None:
    store = make_store(parse_database_url(os.environ["BENCH_DATABASE_URL"]))
    await store.start()
    await store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
