"""Connections for the read models: one writer transaction shape for SQLite and PostgreSQL.

SQL is written with `?` placeholders and translated for psycopg. A write transaction first
takes the projection lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory transaction
lock), so projector processes and a replay swap serialise instead of interleaving.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from subledger.settings import Database
from subledger.store import pg_conninfo

# Advisory lock shared by the projectors and replay swaps of one schema: keyed by this id
# and the schema's name, so deployments in other schemas of the database never wait on it.
PROJECTION_LOCK = 0x5B1ED6E2


class Cursor(Protocol):
    def execute(self, query: Any, params: Any = ..., /, **kwargs: Any) -> Any: ...
    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...
    def fetchmany(self, size: int = ..., /) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


@contextlib.contextmanager
def _sqlite_transaction(conn: Any, begin: str, *, keep: bool) -> Iterator[Cursor]:
    """A SQLite transaction: committed when `keep` and nothing failed, else rolled back."""
    cur = conn.cursor()
    cur.execute(begin)
    try:
        yield cur
    except BaseException:
        conn.rollback()
        raise
    if keep:
        conn.commit()
    else:
        conn.rollback()


class ViewDb:
    """A store's read-model connection factory; `dialect` is sqlite or postgresql."""

    def __init__(self, database: Database, *, lock_timeout_s: float = 10.0) -> None:
        self.database = database
        self.dialect = database.kind
        self.lock_timeout_s = lock_timeout_s
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    def q(self, text: str) -> str:
        """Translate `?` placeholders for psycopg."""
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            Path(self.database.path).parent.mkdir(parents=True, exist_ok=True)
            conn: Any = sqlite3.connect(
                self.database.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.lock_timeout_s,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a lost commit is re-projected
            # Debian's SQLite zeroes every freed page by default: a replay's swap then
            # rewrote the whole old read model (1.27 of 13 s of a 100k-fact rebuild). Read
            # models hold nothing the log does not keep, so zero only where it costs no I/O.
            conn.execute("PRAGMA secure_delete=FAST")
            return conn
        options = f"-c search_path={self.database.schema}"
        return psycopg.connect(**pg_conninfo(self.database), options=options, autocommit=True)

    def connection(self) -> Any:
        """One connection per thread, reopened after a failure."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Any]:
        """This thread's connection; dropped on a store error (the next use reconnects)."""
        try:
            yield self.connection()
        except (sqlite3.OperationalError, psycopg.OperationalError):
            self.discard()
            raise

    @contextlib.contextmanager
    def write(self) -> Iterator[Cursor]:
        """A locked write transaction; rolled back on any error."""
        with self._connected() as conn:
            if self.dialect == "sqlite":
                with _sqlite_transaction(conn, "BEGIN IMMEDIATE", keep=True) as cur:
                    yield cur
            else:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout_s * 1000)}ms'")
                    # Read models are derived: a crash may lose the last commits, and with
                    # them their tracking rows, so the projector re-applies those facts.
                    cur.execute("SET LOCAL synchronous_commit = off")
                    cur.execute(
                        "SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))",
                        (PROJECTION_LOCK, self.database.schema),
                    )
                    yield cur

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        with self._connected() as conn:
            if self.dialect == "sqlite":
                yield conn.cursor()
            else:
                with conn.cursor() as cur:
                    yield cur

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Cursor]:
        """A read-only transaction on this thread's connection, without the projection lock
        (PostgreSQL's server-side cursors need a transaction; SQLite reads one snapshot)."""
        with self._connected() as conn:
            if self.dialect == "sqlite":
                with _sqlite_transaction(conn, "BEGIN", keep=False) as cur:
                    yield cur
            else:
                with conn.transaction(force_rollback=True), conn.cursor() as cur:
                    yield cur

    def execute_script(self, statements: Sequence[str]) -> None:
        with self.write() as cur:
            for statement in statements:
                cur.execute(statement)

    def identifier(self, name: str) -> Any:
        return name if self.dialect == "sqlite" else sql.Identifier(name)

    def close(self) -> None:
        """Close every thread's connection (at shutdown)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
