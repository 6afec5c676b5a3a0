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
        app_id: str,
        *,
        integration_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """An app's deliveries, newest event first (read in full: an operator's listing)."""
        query = f"SELECT state FROM {self.prefix}{DELIVERIES} WHERE app_id = ?"
        params: list[object] = [app_id]
        if integration_id is not None:
            query += " AND id >= ? AND id < ?"
            params += [f"{integration_id}/", f"{integration_id}0"]  # '0' follows '/'
        with self.db.read() as cur:
            cur.execute(self.db.q(query), params)
            found = [_delivery.decode(row[0]) for row in cur.fetchall()]
        if status is not None:
            found = [d for d in found if d.status == status]
        found.sort(key=lambda d: (d.position, d.event, d.integration), reverse=True)
        return found[:limit] if limit else found
