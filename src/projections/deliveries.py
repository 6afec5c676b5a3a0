"""Queries on the outbound read models (SPEC 10): what is due for a sender, an event's body,
and the deliveries operators list. Reads only; the fold writes these tables."""

from __future__ import annotations

import msgspec

from projections.model import (
    DELIVERIES,
    OUTBOUND_EVENTS,
    OUTBOX,
    Delivery,
    OutboundEvent,
    OutboxEntry,
)
from projections.reader import Reader
from projections.rules.subjects import delivery_key, outbox_range

_entry = msgspec.json.Decoder(OutboxEntry)
_event = msgspec.json.Decoder(OutboundEvent)
_delivery = msgspec.json.Decoder(Delivery)
STATUSES = ("pending", "delivered", "failed", "canceled")


class DeliveryReader:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.db = reader.db
        self.prefix = reader.prefix

    def due(
        self, app_id: str, integration_id: str, now_ms: int, limit: int
    ) -> list[tuple[str, OutboxEntry]]:
        """The integration's pending deliveries due at `now_ms`, earliest first: one range
        of the outbox's primary key (keys are `integration/due/event`)."""
        low, high = outbox_range(integration_id, now_ms)
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT id, state FROM {self.prefix}{OUTBOX} "
                    "WHERE app_id = ? AND id >= ? AND id < ? ORDER BY id LIMIT ?"
                ),
                (app_id, low, high, limit),
            )
            rows = cur.fetchall()
        return [(str(key), _entry.decode(state)) for key, state in rows]

    def event(self, app_id: str, event_id: str) -> OutboundEvent | None:
        raw = self.reader._state(OUTBOUND_EVENTS, app_id, event_id)
        return None if raw is None else _event.decode(raw)

    def delivery(self, app_id: str, integration_id: str, event_id: str) -> Delivery | None:
        raw = self.reader._state(DELIVERIES, app_id, delivery_key(integration_id, event_id))
        return None if raw is None else _delivery.decode(raw)

    def deliveries(
        self,
        app_id: str | None,
        *,
        integration_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, Delivery]]:
        """(app, delivery) of one app or every app, newest event first (read in full: an
        operator's listing)."""
        query = f"SELECT app_id, state FROM {self.prefix}{DELIVERIES} WHERE 1 = 1"
        params: list[object] = []
        if app_id is not None:
            query += " AND app_id = ?"
            params.append(app_id)
        if integration_id is not None:
            query += " AND id >= ? AND id < ?"
            params += [f"{integration_id}/", f"{integration_id}0"]  # '0' follows '/'
        with self.db.read() as cur:
            cur.execute(self.db.q(query), params)
            found = [(str(app), _delivery.decode(state)) for app, state in cur.fetchall()]
        if status is not None:
            found = [(app, d) for app, d in found if d.status == status]
        found.sort(key=lambda f: (f[1].position, f[1].event, f[1].integration, f[0]), reverse=True)
        return found[:limit] if limit else found

    def of_event(
        self, event_id: str, integration_id: str | None = None
    ) -> list[tuple[str, Delivery]]:
        """Every delivery of one outbound event (to one integration), whatever its app."""
        with self.db.read() as cur:
            cur.execute(
                self.db.q(f"SELECT app_id FROM {self.prefix}{OUTBOUND_EVENTS} WHERE id = ?"),
                (event_id.upper(),),
            )
            apps = [str(row[0]) for row in cur.fetchall()]
        found = []
        for app in apps:
            for _, d in self.deliveries(app, integration_id=integration_id, limit=0):
                if d.event == event_id.upper():
                    found.append((app, d))
        return found

    def backlog(self, now_ms: int) -> dict[str, int]:
        """For /ready and /metrics: the pending deliveries (the outbox), how many are due
        now, and the oldest pending age: how long the longest-waiting one has waited since it
        became due (a first attempt is due at its fact's receive time; 0 when none is due: a
        delivery waiting for its retry is scheduled, not late)."""
        due = self.db.dialect.outbox_due("id")
        with self.db.read() as cur:
            cur.execute(self.db.q(f"SELECT COUNT(*), MIN({due}) FROM {self.prefix}{OUTBOX}"))
            pending, earliest = cur.fetchone()
            cur.execute(
                self.db.q(f"SELECT COUNT(*) FROM {self.prefix}{OUTBOX} WHERE {due} <= ?"),
                (f"{now_ms:015d}",),
            )
            (due_now,) = cur.fetchone()
        oldest = max(0, now_ms - int(earliest)) if earliest is not None else 0
        return {"pending": int(pending), "due": int(due_now), "oldest_pending_age_ms": oldest}
