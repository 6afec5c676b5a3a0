"""eventsourcing plumbing: msgspec records, a fail-fast PostgreSQL recorder, schema setup."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import msgspec
import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic, resolve_topic
from psycopg import sql
from psycopg.rows import tuple_row

from subledger.pool import LedgerPostgresFactory
from subledger.settings import Database, eventsourcing_env

_encoder = msgspec.msgpack.Encoder()


class LogEntry(NamedTuple):
    """One stored record as projections read it: position, class topic, encoded state."""

    id: int
    topic: str
    state: bytes


class UnreadableRecord(msgspec.Struct, frozen=True):
    """A stored record no fact class can read (written by another version, or damaged)."""

    topic: str
    reason: str


class StoreUnavailableError(RuntimeError):
    """The event store did not answer in time (down, unreachable or locked)."""


# What a store that is down, restarting, unreachable or locked raises, from any layer: our
# own error, eventsourcing's wrappers, psycopg and its pool (PoolTimeout is an
# OperationalError), SQLite ("database is locked"). Each means "retry later", never a bug.
STORE_FAULTS: tuple[type[Exception], ...] = (
    StoreUnavailableError,
    persistence.OperationalError,
    persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)


_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {}
_DECODERS_LOCK = threading.Lock()


def _decoder(topic: str) -> msgspec.msgpack.Decoder[Any]:
    """One decoder per class, built under a lock. msgspec fills in a Struct's type
    information lazily and publishes it before it is complete; a second thread building a
    decoder for a class that shares a Struct (the projector and a request thread, at a
    server's first requests) could decode with a half-built one and crash the process
    (a segfault in `mpack_decode`, seen once in CI)."""
    found = _DECODERS.get(topic)
    if found is None:
        with _DECODERS_LOCK:
            found = _DECODERS.get(topic)
            if found is None:
                found = _DECODERS[topic] = msgspec.msgpack.Decoder(resolve_topic(topic))
    return found


def build_decoders(classes: Iterable[type]) -> None:
    """Build the decoders of `classes` now (at import, while one thread runs)."""
    for cls in classes:
        _decoder(get_topic(cls))


def decode_record(topic: str, state: bytes) -> Any:
    """A stored record back into its fact or settings-event class (one decoder per class)."""
    return _decoder(topic).decode(state)


class RecordMapper(Mapper[Any]):
    """Stores msgspec structs as MessagePack: raw Stripe bodies stay bytes, not base64."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = _encoder.encode(domain_event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return decode_record(stored_event.topic, state)


class UnusedTranscoder(Transcoder):
    """RecordMapper encodes structs itself; eventsourcing still wants a transcoder object."""

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError("RecordMapper does not use a transcoder")

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError("RecordMapper does not use a transcoder")


class FailFastPostgresRecorder(PostgresApplicationRecorder):
    """Appends a group of events with one `INSERT … SELECT unnest(…)` statement.

    - One attempt: the HTTP layer answers 503 and Stripe retries, so the library's ten
      retries (seconds of blocking per request) would only delay that answer.
    - No pipeline: the library's pipelined executemany deadlocked here with groups of a few
      MB (server waiting in ClientRead, client in sync — psycopg issue #685's shape), and one
      statement per group is also cheaper than one per event.
    - Same guarantees as the library: the table's EXCLUSIVE lock (with lock_timeout) makes
      commit order equal notification-id order, and NOTIFY wakes subscribers.
    """

    # Reads make one attempt too: the library retries each ten times, 0.2 s apart, after a
    # pool wait of up to POSTGRES_CONNECT_TIMEOUT each, so a read during an outage blocked
    # a request thread for ~20 s where the answer is a 503 within the store timeout.
    select_events = getattr(PostgresApplicationRecorder.select_events, "__wrapped__")  # noqa: B009
    select_notifications = getattr(  # noqa: B009
        PostgresApplicationRecorder.select_notifications, "__wrapped__"
    )
    max_notification_id = getattr(  # noqa: B009
        PostgresApplicationRecorder.max_notification_id, "__wrapped__"
    )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        insert = sql.SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::int8[], %b::text[], %b::bytea[]) "
            "RETURNING originator_id, originator_version, notification_id"
        ).format(sql.Identifier(self.datastore.schema), sql.Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            curs.execute(
                insert,
                (
                    [e.originator_id for e in stored_events],
                    [e.originator_version for e in stored_events],
                    [e.topic for e in stored_events],
                    [e.state for e in stored_events],
                ),
                prepare=False,
            )
            ids = {
                (r["originator_id"], r["originator_version"]): r["notification_id"] for r in curs
            }
        return [ids[(e.originator_id, e.originator_version)] for e in stored_events]


def read_log(
    recorder: Any, database: Database, start: int, limit: int, stop: int | None
) -> list[LogEntry]:
    """A page of the log with only the columns a projection needs. eventsourcing's
    select_notifications also loads and converts every originator id, which projections
    never use (measurable at tens of thousands of facts a second)."""
    upper = stop if stop is not None else 2**62
    if database.kind == "sqlite":
        with recorder.datastore.transaction(commit=False) as cur:
            cur.execute(
                "SELECT rowid, topic, state FROM stored_events "
                "WHERE rowid >= ? AND rowid <= ? ORDER BY rowid LIMIT ?",
                (start, upper, limit),
            )
            return [LogEntry(row[0], row[1], row[2]) for row in cur.fetchall()]
    query = sql.SQL(
        "SELECT notification_id, topic, state FROM {}.{} WHERE notification_id >= %s "
        "AND notification_id <= %s ORDER BY notification_id LIMIT %s"
    ).format(sql.Identifier(database.schema), sql.Identifier(recorder.events_table_name))
    # binary=True: bodies travel as raw bytes, not hex text that both sides convert.
    with (
        recorder.datastore.get_connection() as conn,
        conn.cursor(row_factory=tuple_row, binary=True) as cur,
    ):
        cur.execute(query, (start, upper, limit))
        return [LogEntry(row[0], row[1], bytes(row[2])) for row in cur.fetchall()]


def ledger_env(database: Database) -> dict[str, str]:
    env = eventsourcing_env(database)
    env["MAPPER_TOPIC"] = get_topic(RecordMapper)
    env["TRANSCODER_TOPIC"] = get_topic(UnusedTranscoder)
    if database.kind == "postgresql":
        env["PERSISTENCE_MODULE"] = get_topic(LedgerPostgresFactory)
        env["APPLICATION_RECORDER_TOPIC"] = get_topic(FailFastPostgresRecorder)
    return env


def pg_conninfo(database: Database, *, connect_timeout: int = 2) -> dict[str, Any]:
    return {
        "host": database.host,
        "port": database.port,
        "user": database.user,
        "password": database.password,
        "dbname": database.dbname,
        "connect_timeout": connect_timeout,
    }


DDL_LOCK = 0x5B1ED6E1  # serialises table creation between processes starting together


@contextlib.contextmanager
def ddl_lock(database: Database) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while creating tables: concurrent
    `CREATE TABLE IF NOT EXISTS` of the same table can fail on PostgreSQL's catalog."""
    if database.kind != "postgresql":
        yield
        return
    with psycopg.connect(**pg_conninfo(database), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK,))


def ensure_schema(database: Database) -> None:
    """Create the PostgreSQL schema the store lives in (eventsourcing creates only tables)."""
    if database.kind != "postgresql" or database.schema == "public":
        return
    with psycopg.connect(**pg_conninfo(database), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(database.schema))
        )
