"""Connections for the read models: one writer transaction shape for SQLite and PostgreSQL.

SQL is written with `?` placeholders and translated by the dialect. A write transaction
first takes the projection lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
transaction lock), so projector processes and a replay swap serialise instead of
interleaving. Everything that differs between the two stores is in `sqlite.py` and
`postgresql.py`; `dialect` is one of those modules.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, Protocol

from projections.storage import postgresql, sqlite
from subledger.settings import Database

DIALECTS: dict[str, ModuleType] = {sqlite.NAME: sqlite, postgresql.NAME: postgresql}
# Store failures a caller retries (a projector) or answers 503 to (a read): never a fact's
# fault, never a reason to skip one.
TRANSIENT: tuple[type[BaseException], ...] = (*sqlite.TRANSIENT, *postgresql.TRANSIENT)


class Cursor(Protocol):
    def execute(self, query: Any, params: Any = ..., /, **kwargs: Any) -> Any: ...
    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...
    def fetchmany(self, size: int = ..., /) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class ViewDb:
    """A store's read-model connection factory: one connection per thread."""

    def __init__(self, database: Database, *, lock_timeout_s: float = 10.0) -> None:
        self.database = database
        self.dialect: Any = DIALECTS[database.kind]
        self.lock_timeout_s = lock_timeout_s
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    def q(self, text: str) -> str:
        """Translate `?` placeholders for the store."""
        result: str = self.dialect.q(text)
        return result

    def connection(self) -> Any:
        """This thread's connection, reopened after a failure."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.dialect.connect(self.database, self.lock_timeout_s)
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
        except TRANSIENT:
            self.discard()
            raise

    @contextlib.contextmanager
    def write(self) -> Iterator[Cursor]:
        """A locked write transaction; rolled back on any error."""
        with (
            self._connected() as conn,
            self.dialect.write(conn, self.database, self.lock_timeout_s) as cur,
        ):
            yield cur

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        with self._connected() as conn, self.dialect.read(conn) as cur:
            yield cur

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Cursor]:
        """A read-only transaction without the projection lock (rolled back)."""
        with self._connected() as conn, self.dialect.snapshot(conn) as cur:
            yield cur

    def execute_script(self, statements: Sequence[str]) -> None:
        with self.write() as cur:
            for statement in statements:
                cur.execute(statement)

    def close(self) -> None:
        """Close every thread's connection (at shutdown)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
