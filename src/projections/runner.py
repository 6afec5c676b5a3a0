"""Follow the log and apply it to the read models, exactly once.

Each batch is one transaction holding the projection lock: the rows it changes and the
eventsourcing tracking record of its last position commit together, so a crash replays the
batch and a second projector finds the position already taken (and refreshes its cache).
SQLite cannot `subscribe`, so the log is polled with `select_notifications` (ids have gaps;
only the order matters), and the in-process projector is also woken on every local append.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from eventsourcing.persistence import (
    InfrastructureFactory,
    PersistenceError,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment

from projections.fold.dispatch import Folded, fold_facts, fold_unprojectable
from projections.fold.notifications import decode_stripe
from projections.storage import sqltables
from projections.storage.changes import Changes
from projections.storage.db import TRANSIENT, Cursor, ViewDb
from projections.storage.prefetch import prefetch
from projections.storage.tables import LIVE
from projections.storage.workingset import RowCache, WorkingSet
from subledger.ledger import Ledger
from subledger.settings import Database, eventsourcing_env
from subledger.store import LogEntry, StoreUnavailableError, ddl_lock, decode_record

log = logging.getLogger("subledger.projector")
UPSTREAM = "Ledger"
MAX_TRACKED_KEYS = 2_000_000  # ~70 MB of hashes at most


def tracking_recorder(database: Database) -> TrackingRecorder:
    """eventsourcing's tracking table (created if missing); rows are written in our own
    transactions through `_insert_tracking`, so the recorder's own pool is closed."""
    with ddl_lock(database):
        env = Environment("Projections", eventsourcing_env(database))
        factory = InfrastructureFactory.construct(env)
        recorder = factory.tracking_recorder()
        factory.close()
    return recorder


class StaleProjectionError(RuntimeError):
    """Another writer moved the projection while a batch was being folded."""


def is_transient(error: BaseException) -> bool:
    """A store failure (down, locked, moved under us): retried, never taken for a fact the
    fold cannot apply. Anything else a fact causes is that fact's, and deterministic."""
    return isinstance(
        error,
        (*TRANSIENT, PersistenceError, StoreUnavailableError, StaleProjectionError, MemoryError),
    )


def decode(entries: Sequence[LogEntry]) -> list[Folded]:
    """Stored records back into facts, each with its Stripe object decoded once."""
    folded = []
    for n in entries:
        record = decode_record(n.topic, n.state)
        folded.append((n.id, record, decode_stripe(record)))
    return folded


def describe_failure(error: BaseException) -> str:
    """Why a fact could not be applied, as its unprojectable row records it."""
    return f"{type(error).__name__}: {error}"[:500]


def record_unprojectable(ws: WorkingSet, entry: LogEntry, error: BaseException) -> int:
    """Record in `ws` that `entry` cannot be applied; returns its receive time (0 when not
    even the record decodes)."""
    try:
        record = decode_record(entry.topic, entry.state)
    except Exception:  # noqa: BLE001 - then not even its kind is known
        record = None
    fold_unprojectable(ws, entry.id, record, describe_failure(error))
    received: int = getattr(record, "received_at_ms", 0)
    return received


def fold_log(ws: WorkingSet, entries: Sequence[LogEntry]) -> list[int]:
    """Decode, prefetch and fold a batch of the log into `ws`; returns the facts' receive
    times. Raises whatever a fact the fold cannot apply raises."""
    batch = decode(entries)
    prefetch(ws, batch)
    fold_facts(ws, batch)
    return [record.received_at_ms for _, record, _ in batch]


class Projector:
    def __init__(
        self,
        ledger: Ledger,
        *,
        prefix: str = LIVE,
        tracking_name: str = UPSTREAM,
        batch_size: int = 500,
        cache_rows: int = 20_000,
    ) -> None:
        self.ledger = ledger
        self.prefix = prefix
        self.tracking_name = tracking_name
        self.batch_size = batch_size
        self.db = ViewDb(ledger.database)
        sqltables.create(self.db, prefix)
        self.recorder = tracking_recorder(ledger.database)
        self.tracking_table = self.db.dialect.tracking_table(self.recorder, ledger.database)
        self.cache = RowCache(cache_rows)
        self.wake = threading.Event()
        self._changed = threading.Condition()
        self.position = -1
        self.generation = -1
        self.facts = 0
        self.lags_ms: deque[int] = deque(maxlen=20_000)  # append → projected, recent facts
        self.maybe_written: set[int] | None = None
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection-writer")
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection-reader")
        self.on_commit: Callable[[int], None] = lambda position: None

    def stored_state(self, cur: Cursor) -> tuple[int, int]:
        """(tracked position, table generation) as committed by whoever wrote last."""
        cur.execute(
            self.db.q(
                f"SELECT notification_id FROM {self.tracking_table} WHERE application_name = ?"
            ),
            (self.tracking_name,),
        )
        row = cur.fetchone()
        cur.execute(
            self.db.q(f"SELECT value FROM {self.prefix}meta WHERE name = ?"), ("generation",)
        )
        meta = cur.fetchone()
        return (row[0] if row and row[0] is not None else 0), (meta[0] if meta else 0)

    def step(self) -> int:
        """Apply the next batch; returns how many facts it applied (0 when caught up)."""
        start = max(self.position, 0) + 1
        notifications = self.ledger.log_page(start, self.batch_size)
        if not notifications and self.position >= 0:
            return 0
        try:
            with self.db.write() as cur:
                position, generation = self.stored_state(cur)
                if (position, generation) != (self.position, self.generation):
                    # Someone else wrote (another projector, a replay swap): cache is stale.
                    self.cache.clear()
                    self.position, self.generation = position, generation
                    self.maybe_written = set() if position == 0 else None
                    if position + 1 < start:
                        # Stored behind where this page starts (a restored database, a
                        # crash that lost commits the pooler hid): read from there instead
                        # of skipping what lies between.
                        notifications = self.ledger.log_page(position + 1, self.batch_size)
                pending = [n for n in notifications if n.id > position]
                if pending:
                    received = self.apply(cur, pending)
        except BaseException:
            self.forget()
            raise
        if not pending:
            # A page read before the stored position was known (a restart, or another
            # projector moved on) may lie wholly behind it: read on from that position.
            return self.step() if notifications else 0
        self.committed(pending[-1].id, len(pending), received)
        return len(pending)

    def apply(self, cur: Cursor, notifications: Sequence[LogEntry]) -> list[int]:
        """Fold `notifications` (in log order) into the tables and track the last one, inside
        the caller's locked transaction; returns the facts' receive times (for lag).

        The fold is total: when a fact cannot be applied (a rule bug, a store that cannot
        hold what it derives, a record an older version wrote), the batch is rolled back
        and applied one fact at a time; each fact that fails alone is recorded as
        unprojectable with its reason, and the projection moves on. A rebuild meets the same
        facts in the same states and records the same. Store failures are raised (retried)."""
        try:
            received = self._apply_all(cur, notifications)
        except Exception as error:
            if is_transient(error):
                raise
            log.warning(
                "a fact in positions %s-%s cannot be applied: %s",
                notifications[0].id,
                notifications[-1].id,
                describe_failure(error),
            )
            received = [self._apply_one(cur, n) for n in notifications]
        self.track(cur, notifications[-1].id)
        return received

    def _apply_all(self, cur: Cursor, notifications: Sequence[LogEntry]) -> list[int]:
        """Fold and write `notifications` under a savepoint (rolled back on failure, with
        everything this process cached of them)."""
        cur.execute("SAVEPOINT fold")
        try:
            changes, received = self.fold(self.working_set(cur), notifications)
            sqltables.write(self.db, cur, self.prefix, changes)
        except BaseException:
            cur.execute("ROLLBACK TO SAVEPOINT fold")
            self.cache.clear()
            self.maybe_written = None
            raise
        cur.execute("RELEASE SAVEPOINT fold")
        return received

    def _apply_one(self, cur: Cursor, entry: LogEntry) -> int:
        """Apply one fact, or record why it cannot be; returns its receive time."""
        try:
            return self._apply_all(cur, [entry])[0]
        except Exception as error:
            if is_transient(error):
                raise
            log.error("fact at position %s is unprojectable: %s", entry.id, describe_failure(error))
            ws = self.working_set(cur)
            received = record_unprojectable(ws, entry, error)
            sqltables.write(self.db, cur, self.prefix, ws.prepare())
            return received

    def fold(self, ws: WorkingSet, notifications: Sequence[LogEntry]) -> tuple[Changes, list[int]]:
        """Decode, prefetch and fold a batch; returns its encoded changes and receive times."""
        received = fold_log(ws, notifications)
        return ws.prepare(), received

    def track(self, cur: Cursor, position: int) -> None:
        tracking = Tracking(self.tracking_name, position)
        self.recorder._insert_tracking(cur, tracking)  # type: ignore[attr-defined]

    def forget(self) -> None:
        """Drop everything cached: the next batch re-reads position and rows."""
        self.cache.clear()
        self.maybe_written = None
        self.position = self.generation = -1

    def working_set(self, cur: Cursor, overlay: dict[Any, Any] | None = None) -> WorkingSet:
        if self.maybe_written is not None and len(self.maybe_written) > MAX_TRACKED_KEYS:
            self.maybe_written = None  # bounded memory: fall back to asking the store
        source = sqltables.SqlTables(self.db, cur, self.prefix)
        return WorkingSet(source, self.cache, overlay=overlay, maybe_written=self.maybe_written)

    def committed(self, position: int, count: int, received: list[int]) -> None:
        now_ms = time.time_ns() // 1_000_000
        self.lags_ms.extend(now_ms - at for at in received)
        self.position = position
        self.facts += count
        with self._changed:
            self._changed.notify_all()
        self.on_commit(position)

    def catch_up(self) -> int:
        """Apply everything in the log; returns how many facts this call applied. A batch
        holding a fact the fold cannot apply is left to `step`, which sets it apart."""
        start = self.facts
        while True:
            try:
                self._pipeline()
            except Exception as error:
                if is_transient(error):
                    raise
                log.warning(
                    "pipelined batch failed, applying it apart: %s", describe_failure(error)
                )
                self.step()
                continue
            return self.facts - start

    def _pipeline(self) -> int:
        """Batch N+2 is read and N+1 folded while a writer thread commits batch N (the
        store's work overlaps Python's). Batch N's rows stay visible to N+1 through an
        overlay until N has committed."""
        applied = self.step()
        if applied < self.batch_size:
            return applied
        folded_to = self.position
        in_flight: Future[None] | None = None
        overlay: dict[Any, Any] = {}
        ahead = self.reader.submit(self.ledger.log_page, folded_to + 1, self.batch_size)
        try:
            while page := ahead.result():
                # Read the next page while this one is folded (the store works meanwhile).
                ahead = self.reader.submit(self.ledger.log_page, page[-1].id + 1, self.batch_size)
                with self.db.read() as cur:
                    changes, received = self.fold(self.working_set(cur, overlay), page)
                if in_flight is not None:
                    in_flight.result()
                start, last = folded_to, page[-1].id
                in_flight = self.writer.submit(self._commit, changes, start, last, received)
                overlay, folded_to = changes.values, last
                applied += len(page)
            if in_flight is not None:
                in_flight.result()
        except BaseException:
            for pending in (in_flight, ahead):
                if pending is not None:
                    pending.exception()  # let the threads finish before forgetting
            self.forget()
            raise
        return applied

    def _commit(self, changes: Changes, start: int, last: int, received: list[int]) -> None:
        """Writer thread: commit one folded batch if nobody else wrote since `start`."""
        with self.db.write() as cur:
            if self.stored_state(cur) != (start, self.generation):
                raise StaleProjectionError(f"tables changed under the batch after {start}")
            sqltables.write(self.db, cur, self.prefix, changes)
            self.track(cur, last)
        self.committed(last, len(received), received)

    def run(self, stop: threading.Event, poll_s: float = 0.025) -> None:
        """Follow the log until `stop`; store errors are logged and retried with back-off."""
        backoff = 0.05
        published = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - published >= 2.0:
                published = time.monotonic()
                self.publish_lag()
            try:
                applied = self.step()
            except Exception as error:  # noqa: BLE001 - keep following; the log is the truth
                log.warning("projection batch failed, retrying: %s", error)
                stop.wait(backoff)
                backoff = min(backoff * 2, 0.5)
                continue
            backoff = 0.05
            if applied < self.batch_size:
                self.wake.wait(poll_s)
                self.wake.clear()

    def publish_lag(self) -> None:
        """Recent lag into the meta table, for /ready when the projector is another process."""
        stats = self.describe()
        if not stats["lag_samples"]:
            return
        try:
            with self.db.write() as cur:
                for name in ("lag_ms_p50", "lag_ms_p99", "lag_samples"):
                    cur.execute(
                        self.db.q(
                            f"INSERT INTO {self.prefix}meta (name, value) VALUES (?, ?) "
                            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                        ),
                        (name, int(stats[name])),
                    )
        except Exception as error:  # noqa: BLE001 - metrics must never stop projecting
            log.warning("could not publish projection lag: %s", error)

    def wait_for(self, position: int, timeout_s: float) -> bool:
        """Block until the projection has applied `position` (read-your-writes)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.position < position:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.wake.set()
                self._changed.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.reader.shutdown(wait=True)
        self.db.close()

    def describe(self) -> dict[str, Any]:
        """Position and recent lag (receive time → projected) for /ready and benchmarks."""
        lags = sorted(self.lags_ms)

        def pct(q: float) -> int | None:
            return lags[min(len(lags) - 1, int(q * len(lags)))] if lags else None

        return {
            "position": self.position,
            "facts": self.facts,
            "lag_ms_p50": pct(0.50),
            "lag_ms_p99": pct(0.99),
            "lag_samples": len(lags),
        }
