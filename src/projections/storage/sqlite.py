"""SQLite: every SQL difference from PostgreSQL that the read models need, in one place."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from projections.storage.tables import Table
from subledger.settings import Database

NAME = "sqlite"
TRANSIENT: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
_PAGE = 2000
# SQLite 3.40's JSON functions refuse a BLOB: rows travel as one JSON text.
_JSON_ROWS = "json_each(CAST(? AS TEXT))"


def connect(database: Database, lock_timeout_s: float) -> Any:
    Path(database.path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        database.path, isolation_level=None, check_same_thread=False, timeout=lock_timeout_s
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a lost commit is re-projected
    # Debian's SQLite zeroes every freed page by default: a replay's swap then rewrote the
    # whole old read model. Read models hold nothing the log does not keep, so zero only
    # where it costs no I/O.
    conn.execute("PRAGMA secure_delete=FAST")
    return conn


@contextlib.contextmanager
def _transaction(conn: Any, begin: str, *, keep: bool) -> Iterator[Any]:
    """Committed when `keep` and nothing failed, else rolled back."""
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


def write(
    conn: Any, database: Database, lock_timeout_s: float
) -> contextlib.AbstractContextManager[Any]:
    """BEGIN IMMEDIATE takes the database's one write lock: projectors and replays queue."""
    return _transaction(conn, "BEGIN IMMEDIATE", keep=True)


@contextlib.contextmanager
def read(conn: Any) -> Iterator[Any]:
    yield conn.cursor()


def snapshot(conn: Any) -> contextlib.AbstractContextManager[Any]:
    return _transaction(conn, "BEGIN", keep=False)


def q(text: str) -> str:
    return text


def ddl(prefix: str, tables: Sequence[Table]) -> list[str]:
    statements = []
    for t in tables:
        columns = [f"{c} {'INTEGER' if c in t.numbers else 'TEXT'} NOT NULL" for c in t.keys]
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {prefix}{t.name} ({', '.join(columns)}, "
            f"{t.value} TEXT NOT NULL, PRIMARY KEY ({', '.join(t.keys)}))"
        )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {prefix}meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    )
    return statements


def _columns(count: int) -> str:
    """The columns of each JSON array row (json_extract works before SQLite 3.38)."""
    return ", ".join(f"json_extract(value, '$[{i}]')" for i in range(count))


def _json_rows(rows: list[Any]) -> bytes:
    """Rows as one JSON array, bound as bytes and read as text: decoding it to a str here
    only made sqlite3 encode it back to UTF-8, all while holding the GIL."""
    return msgspec.json.encode(rows)


def select_rows(cur: Any, name: str, app_id: str, ids: list[str]) -> dict[str, str]:
    marks = ",".join("?" * len(ids))
    cur.execute(
        f"SELECT id, state FROM {name} WHERE app_id = ? AND id IN ({marks})", [app_id, *ids]
    )
    return {row[0]: row[1] for row in cur.fetchall()}


def upsert(cur: Any, name: str, rows: list[tuple[str, str, bytes]]) -> None:
    cur.execute(
        f"INSERT INTO {name} (app_id, id, state) SELECT {_columns(3)} FROM {_JSON_ROWS} "
        "WHERE true ON CONFLICT (app_id, id) DO UPDATE SET state = excluded.state",
        (_json_rows([(a, i, state.decode()) for a, i, state in rows]),),
    )


def delete(cur: Any, name: str, keys: list[tuple[str, str]]) -> None:
    cur.execute(
        f"DELETE FROM {name} WHERE (app_id, id) IN (SELECT {_columns(2)} FROM {_JSON_ROWS})",
        (_json_rows(keys),),
    )


def insert(cur: Any, table: Table, name: str, rows: list[tuple[Any, ...]]) -> None:
    """Append rows (keys, then the value as encoded JSON) with one statement."""
    columns = [*table.keys, table.value]
    cur.execute(
        f"INSERT INTO {name} ({', '.join(columns)}) SELECT {_columns(len(columns))} "
        f"FROM {_JSON_ROWS}",
        (_json_rows([(*row[:-1], row[-1].decode()) for row in rows]),),
    )


def stream(cur: Any, query: str, name: str) -> Iterator[list[Any]]:
    cur.execute(query)
    while page := cur.fetchmany(_PAGE):
        yield page


def order_by(table: Table) -> str:
    """Key order: SQLite's default collation is already binary (UTF-8 byte order)."""
    return ", ".join(table.keys)


def row_bytes(expression: str) -> str:
    """An SQL expression giving `expression` (text) as UTF-8 bytes."""
    return f"CAST({expression} AS BLOB)"


def char(code: int) -> str:
    return f"char({code})"


def rename_table(cur: Any, old: str, new: str) -> None:
    cur.execute(f"ALTER TABLE {old} RENAME TO {new}")


def json_string(column: str) -> str:
    """The text inside a JSON string column ('"abc"' → abc)."""
    return f"json_extract({column}, '$')"


def outbox_due(column: str) -> str:
    """The due time inside an outbox key (`integration/due/event`), as its 15 digits."""
    return f"substr({column}, instr({column}, '/') + 1, 15)"


def tracking_table(recorder: Any, database: Database) -> str:
    return "tracking"
