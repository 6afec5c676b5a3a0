"""PostgreSQL: every SQL difference from SQLite that the read models need, in one place.

Rows travel as arrays expanded by `unnest()` on the server: per-row client work (psycopg's
executemany) dominated projection time. A text column travels as one string the server
splits, which is far cheaper than psycopg dumping a list item by item.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from projections.storage.tables import Table
from subledger.settings import Database
from subledger.store import pg_conninfo

NAME = "postgresql"
# Infrastructure, not data: retried, never taken for a fact the fold cannot apply.
TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.InternalError,
    psycopg.ProgrammingError,
)
# Shared by the projectors and replay swaps of one schema: keyed by this id and the
# schema's name, so deployments in other schemas of the database never wait on it.
PROJECTION_LOCK = 0x5B1ED6E2
_PAGE = 2000
_US = "\x1f"
_US_BYTES = b"\x1f"
_SPLIT_JSON = "(string_to_array(chr(31) || convert_from(%b, 'UTF8'), chr(31)))[2:]"
_SPLIT = "(string_to_array(chr(31) || %s, chr(31)))[2:]"  # a lone '' stays one element


def connect(database: Database, lock_timeout_s: float) -> Any:
    options = f"-c search_path={database.schema}"
    return psycopg.connect(**pg_conninfo(database), options=options, autocommit=True)


@contextlib.contextmanager
def write(conn: Any, database: Database, lock_timeout_s: float) -> Iterator[Any]:
    """A transaction holding the schema's projection lock (an advisory transaction lock)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
        # Read models are derived: a crash may lose the last commits, and with them their
        # tracking rows, so the projector re-applies those facts.
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute(
            "SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))",
            (PROJECTION_LOCK, database.schema),
        )
        yield cur


@contextlib.contextmanager
def read(conn: Any) -> Iterator[Any]:
    with conn.cursor() as cur:
        yield cur


@contextlib.contextmanager
def snapshot(conn: Any) -> Iterator[Any]:
    """Server-side cursors need a transaction; this one is rolled back."""
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        yield cur


def q(text: str) -> str:
    """`?` placeholders as psycopg's."""
    return text.replace("?", "%s")


def ddl(prefix: str, tables: Sequence[Table]) -> list[str]:
    # Keys in byte order, so checksums stream in primary-key order instead of sorting
    # every row.
    statements = []
    text = 'TEXT COLLATE "C"'
    for t in tables:
        columns = [f"{c} {'BIGINT' if c in t.numbers else text} NOT NULL" for c in t.keys]
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {prefix}{t.name} ({', '.join(columns)}, "
            f"{t.value} TEXT NOT NULL, PRIMARY KEY ({', '.join(t.keys)}))"
        )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {prefix}meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"
    )
    return statements


def _text_column(values: Sequence[str]) -> tuple[str, str | list[str]]:
    """(SQL expression, parameter) for one text[] column. A column whose values contain
    the separator (an App User ID may hold any character but NUL) travels as an array."""
    joined = _US.join(values)
    if joined.count(_US) == len(values) - 1:
        return _SPLIT, joined
    return "%b::text[]", list(values)


def _json_column(values: Sequence[bytes]) -> tuple[str, bytes]:
    """Encoded JSON rows: JSON escapes control characters, so the separator never occurs
    inside a value; the server decodes the bytes (Python never makes a str)."""
    return _SPLIT_JSON, _US_BYTES.join(values)


def _int_column(values: Sequence[int]) -> tuple[str, str]:
    return "string_to_array(%s, ',')::bigint[]", ",".join(map(str, values))


def _unnest(*columns: tuple[str, Any]) -> tuple[str, list[Any]]:
    return f"unnest({', '.join(c[0] for c in columns)})", [c[1] for c in columns]


def select_rows(cur: Any, name: str, app_id: str, ids: list[str]) -> dict[str, str]:
    # prepare=False: a generic plan for ANY(array) can pick a sequential scan.
    cur.execute(
        f"SELECT id, state FROM {name} WHERE app_id = %s AND id = ANY(%b::text[])",
        (app_id, ids),
        prepare=False,
    )
    return {row[0]: row[1] for row in cur.fetchall()}


def upsert(cur: Any, name: str, rows: list[tuple[str, str, bytes]]) -> None:
    app_ids, ids, states = zip(*rows, strict=True)
    source, params = _unnest(_text_column(app_ids), _text_column(ids), _json_column(states))
    cur.execute(
        f"INSERT INTO {name} (app_id, id, state) SELECT * FROM {source} "
        "ON CONFLICT (app_id, id) DO UPDATE SET state = excluded.state",
        params,
    )


def delete(cur: Any, name: str, keys: list[tuple[str, str]]) -> None:
    source, params = _unnest(*(_text_column(c) for c in zip(*keys, strict=True)))
    cur.execute(f"DELETE FROM {name} WHERE (app_id, id) IN (SELECT * FROM {source})", params)


def insert(cur: Any, table: Table, name: str, rows: list[tuple[Any, ...]]) -> None:
    """Append rows (keys, then the value as encoded JSON) with one statement."""
    columns = list(zip(*rows, strict=True))
    prepared = [
        _int_column(values) if column in table.numbers else _text_column(values)
        for column, values in zip(table.keys, columns, strict=False)
    ]
    source, params = _unnest(*prepared, _json_column(columns[-1]))
    names = ", ".join([*table.keys, table.value])
    cur.execute(f"INSERT INTO {name} ({names}) SELECT * FROM {source}", params)


def stream(cur: Any, query: str, name: str) -> Iterator[list[Any]]:
    """The rows of `query` in pages, through a server-side cursor (binary)."""
    with cur.connection.cursor(name=f"stream_{name}", binary=True) as named:
        named.execute(query)
        while page := named.fetchmany(_PAGE):
            yield page


def order_by(table: Table) -> str:
    return ", ".join(c if c in table.numbers else f'{c} COLLATE "C"' for c in table.keys)


def row_bytes(expression: str) -> str:
    return f"convert_to({expression}, 'UTF8')"


def char(code: int) -> str:
    return f"chr({code})"


def rename_table(cur: Any, old: str, new: str) -> None:
    cur.execute(f"ALTER TABLE {old} RENAME TO {new}")
    cur.execute(f"ALTER INDEX {old}_pkey RENAME TO {new}_pkey")


def json_string(column: str) -> str:
    return f"({column}::json #>> '{{}}')"


def outbox_due(column: str) -> str:
    """The due time inside an outbox key (`integration/due/event`), as its 15 digits."""
    return f"split_part({column}, '/', 2)"


def tracking_table(recorder: Any, database: Database) -> str:
    name: str = recorder.tracking_table_name
    return f'"{database.schema}"."{name}"'
