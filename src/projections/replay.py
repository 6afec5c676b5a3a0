"""Rebuild the read models from the log into fresh tables, then compare or swap (SPEC 9).

The live tables keep serving while the rebuild runs. The final step holds the projection
lock: it brings whichever side is behind (rebuild or live) to the same log position, then
either compares the two (`verify`, rolled back: no side effects) or swaps the rebuilt tables
in atomically. Memory stays flat: the log is read in batches, rows through a bounded cache,
and checksums stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from projections.model import RETIRED
from projections.runner import UPSTREAM, Projector
from projections.storage.db import Cursor, ViewDb
from projections.storage.tables import LIVE, PROJECTIONS, REBUILD, TABLES, Table, tables_of
from subledger.ledger import Ledger

REBUILD_TRACKING = f"{UPSTREAM}:rebuild"
Progress = Callable[[int, int], None]
_PAGE = 2000


class Difference(msgspec.Struct, frozen=True):
    table: str
    key: str
    live: str | None
    rebuilt: str | None


class Checksum(msgspec.Struct, frozen=True):
    projection: str
    checksum: str
    rows: int


class ReplayResult(msgspec.Struct, frozen=True):
    position: int
    facts: int
    checksums: list[Checksum]
    verified: bool | None = None
    differences: list[Difference] = []
    swapped: bool = False


class ReplayConflictError(RuntimeError):
    """The rebuilt tables moved under this replay: another `subledger replay` ran meanwhile."""

    @classmethod
    def found(cls, state: str) -> ReplayConflictError:
        return cls(
            f"the rebuild tables {state}: most likely another `subledger replay` ran at the "
            "same time. Nothing was compared or swapped; run it again once it has finished"
        )


class _Rollback(Exception):  # noqa: N818 - control flow: leave the locked transaction unchanged
    def __init__(self, result: ReplayResult) -> None:
        self.result = result


def _key(table: Table) -> str:
    """The key columns joined by '/' (what differences name, and checksums hash)."""
    parts = (f"CAST({c} AS TEXT)" if c in table.numbers else c for c in table.keys)
    return " || '/' || ".join(parts)


def rows(
    db: ViewDb, cur: Cursor, prefix: str, table: Table
) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """(order, key, value) of every row in key order, streamed. `order` holds the key
    columns themselves, which compare as the store orders them (strings by code point, as
    UTF-8 bytes and "C" collation do; positions as numbers); the joined key text does not
    ("…/10/0" sorts before "…/9/0")."""
    query = (
        f"SELECT {_key(table)}, {table.value}, {', '.join(table.keys)} "
        f"FROM {prefix}{table.name} ORDER BY {db.dialect.order_by(table)}"
    )
    for page in db.dialect.stream(cur, query, prefix + table.name):
        yield from ((tuple(r[2:]), str(r[0]), str(r[1])) for r in page)


def checksum(db: ViewDb, cur: Cursor, prefix: str, projection: str) -> Checksum:
    """SHA-256 over `table` markers and every row as UTF-8 `key 0x1F value 0x1E`, in key
    order. The store concatenates and encodes each row, so Python hashes whole pages."""
    digest = hashlib.sha256()
    count = 0
    dialect = db.dialect
    for table in tables_of(projection):
        digest.update(f"\x00table:{table.name}\x00".encode())
        row = f"{_key(table)} || {dialect.char(31)} || {table.value} || {dialect.char(30)}"
        query = (
            f"SELECT {dialect.row_bytes(row)} FROM {prefix}{table.name} "
            f"ORDER BY {dialect.order_by(table)}"
        )
        for page in dialect.stream(cur, query, prefix + table.name):
            digest.update(b"".join([r[0] for r in page]))
            count += len(page)
    return Checksum(projection=projection, checksum=digest.hexdigest(), rows=count)


def differences(
    db: ViewDb, live_cur: Cursor, rebuilt_cur: Cursor, table: Table, limit: int = 5
) -> list[Difference]:
    """The first rows (in key order) where live and rebuilt tables disagree (a merge join
    of two ordered streams, so memory stays flat)."""
    live = rows(db, live_cur, LIVE, table)
    rebuilt = rows(db, rebuilt_cur, REBUILD, table)
    found: list[Difference] = []
    a, b = next(live, None), next(rebuilt, None)
    while (a is not None or b is not None) and len(found) < limit:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            found.append(Difference(table=table.name, key=a[1], live=a[2], rebuilt=None))
            a = next(live, None)
        elif a is None or b[0] < a[0]:
            found.append(Difference(table=table.name, key=b[1], live=None, rebuilt=b[2]))
            b = next(rebuilt, None)
        else:
            if a[2] != b[2]:
                found.append(Difference(table=table.name, key=a[1], live=a[2], rebuilt=b[2]))
            a, b = next(live, None), next(rebuilt, None)
    return found


def drop_projection(projector: Projector, prefix: str, tracking_name: str) -> None:
    """Drop `prefix`'s read-model tables and the tracking row `tracking_name`: the next
    projector writing them starts from position 0."""
    db = projector.db
    with db.write() as cur:
        for table in [*TABLES, "meta"]:
            cur.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
        cur.execute(
            db.q(f"DELETE FROM {projector.tracking_table} WHERE application_name = ?"),
            (tracking_name,),
        )


class Replay:
    def __init__(
        self,
        ledger: Ledger,
        *,
        batch_size: int = 2000,
        cache_rows: int = 20_000,
        progress: Progress | None = None,
    ) -> None:
        self.ledger = ledger
        self.batch_size = batch_size
        self.cache_rows = cache_rows
        self.progress = progress or (lambda position, end: None)

    def run(
        self, projections: Sequence[str] = PROJECTIONS, *, verify: bool = False
    ) -> ReplayResult:
        unknown = set(projections) - set(PROJECTIONS)
        if unknown:
            raise ValueError(f"unknown projection(s) {', '.join(sorted(unknown))}")
        live = Projector(self.ledger, batch_size=self.batch_size, cache_rows=self.cache_rows)
        drop_projection(live, REBUILD, REBUILD_TRACKING)
        shadow = Projector(
            self.ledger,
            prefix=REBUILD,
            tracking_name=REBUILD_TRACKING,
            batch_size=self.batch_size,
            cache_rows=self.cache_rows,
        )
        try:
            end = self.ledger.last_position()
            self.progress(0, end)
            shadow.on_commit = lambda position: self.progress(position, max(end, position))
            shadow.catch_up()
            try:
                with live.db.write() as cur:
                    result = self._finish(cur, live, shadow, projections, verify)
            except _Rollback as rollback:
                result = rollback.result
            drop_projection(live, REBUILD, REBUILD_TRACKING)
            return result
        finally:
            shadow.close()
            live.close()

    def _finish(
        self,
        cur: Cursor,
        live: Projector,
        shadow: Projector,
        projections: Sequence[str],
        verify: bool,
    ) -> ReplayResult:
        live_at, _ = live.stored_state(cur)
        # Another replay may have dropped or rewritten the rebuild tables since this one
        # caught up: advancing from there would fold facts again onto this one's row cache.
        try:
            shadow_at, _ = shadow.stored_state(cur)
        except Exception as error:
            raise ReplayConflictError.found(f"cannot be read ({error})") from error
        if shadow_at != max(shadow.position, 0):
            raise ReplayConflictError.found(f"are at position {shadow_at}, not {shadow.position}")
        target = max(live_at, shadow_at)
        for side, at in ((shadow, shadow_at), (live, live_at)):
            self._advance(cur, side, at, target)
        self.progress(target, target)
        sums = self._rebuilt_checksums(cur, shadow.db, projections, apart=shadow_at == target)
        if verify:
            mismatched = [
                p
                for p, s in zip(projections, sums, strict=True)
                if checksum(live.db, cur, LIVE, p).checksum != s.checksum
            ]
            other = self._second_cursor(cur, live.db)
            diffs = [
                d
                for p in mismatched
                for t in tables_of(p)
                for d in differences(live.db, cur, other, t)
            ]
            raise _Rollback(
                ReplayResult(
                    position=target,
                    facts=shadow.facts,
                    checksums=sums,
                    verified=not mismatched,
                    differences=diffs[:10],
                )
            )
        self._swap(cur, live.db, projections)
        return ReplayResult(position=target, facts=shadow.facts, checksums=sums, swapped=True)

    @staticmethod
    def _rebuilt_checksums(
        cur: Cursor, db: ViewDb, projections: Sequence[str], *, apart: bool
    ) -> list[Checksum]:
        """The rebuilt tables' checksums. When the rebuild had nothing left to apply under
        the lock (the usual case), its tables are committed and nobody else writes them,
        so two connections of their own read them side by side, the largest first: the
        store does most of this work, and the live projector waits for the lock meanwhile.
        Otherwise they are read in the locked transaction, which alone sees the last rows."""
        if not apart or len(projections) < 2:
            return [checksum(db, cur, REBUILD, p) for p in projections]

        def apart_from_the_lock(projection: str) -> Checksum:
            with db.snapshot() as own:
                return checksum(db, own, REBUILD, projection)

        largest_first = sorted(projections, key=lambda p: p != "history")
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay-checksum") as pool:
            futures = {p: pool.submit(apart_from_the_lock, p) for p in largest_first}
            return [futures[p].result() for p in projections]

    @staticmethod
    def _second_cursor(cur: Cursor, db: ViewDb) -> Cursor:
        """Another cursor in the same transaction, to stream two tables side by side."""
        conn: Any = cur.connection  # type: ignore[attr-defined]
        second: Cursor = conn.cursor()
        return second

    def _advance(self, cur: Cursor, side: Projector, at: int, target: int) -> None:
        while at < target:
            page = self.ledger.log_page(at + 1, self.batch_size, stop=target)
            if not page:
                return
            side.apply(cur, page)
            at = page[-1].id

    def _swap(self, cur: Cursor, db: ViewDb, projections: Sequence[str]) -> None:
        for projection in projections:
            for table in tables_of(projection):
                cur.execute(f"DROP TABLE {LIVE}{table.name}")
                db.dialect.rename_table(cur, f"{REBUILD}{table.name}", f"{LIVE}{table.name}")
            for retired in RETIRED.get(projection, ()):
                cur.execute(f"DROP TABLE IF EXISTS {LIVE}{retired}")
        cur.execute(
            db.q(
                f"INSERT INTO {LIVE}meta (name, value) VALUES (?, 1) ON CONFLICT (name) "
                f"DO UPDATE SET value = {LIVE}meta.value + 1"
            ),
            ("generation",),
        )
