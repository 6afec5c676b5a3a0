"""One holder at a time for a background job shared by several processes (the sender of
outbound events: two senders would post every event twice). A row in the store with an
expiry: the holder renews it; a holder that dies loses it when it expires."""

from __future__ import annotations

import time

from projections.storage.db import ViewDb


class Lease:
    def __init__(self, db: ViewDb, name: str, holder: str, ttl_s: float = 15.0) -> None:
        self.db = db
        self.name = name
        self.holder = holder
        self.ttl_ms = int(ttl_s * 1000)
        self._until_ms = 0  # when our hold ends, as last written
        # Under the projection lock, as the read models' tables are made: two processes
        # creating one table at once can fail on PostgreSQL's catalog.
        db.execute_script(
            [
                "CREATE TABLE IF NOT EXISTS sl_leases "
                "(name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL)"
            ]
        )

    def hold(self, now_ms: int | None = None) -> bool:
        """Take or renew the lease; True while this holder has it. Written only when half
        of the hold has passed, so holding costs a write every few seconds."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if self._until_ms - now > self.ttl_ms // 2:
            return True
        until = now + self.ttl_ms
        with self.db.read() as cur:  # one statement: atomic on both stores
            cur.execute(
                self.db.q(
                    "INSERT INTO sl_leases (name, holder, until_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                    "until_ms = excluded.until_ms WHERE sl_leases.holder = excluded.holder "
                    "OR sl_leases.until_ms < ?"
                ),
                (self.name, self.holder, until, now),
            )
            cur.execute(self.db.q("SELECT holder FROM sl_leases WHERE name = ?"), (self.name,))
            row = cur.fetchone()
        held = row is not None and row[0] == self.holder
        self._until_ms = until if held else 0
        return held

    def release(self) -> None:
        """Let another holder take over at once (at a clean shutdown)."""
        self._until_ms = 0
        with self.db.read() as cur:
            cur.execute(
                self.db.q("UPDATE sl_leases SET until_ms = 0 WHERE name = ? AND holder = ?"),
                (self.name, self.holder),
            )
