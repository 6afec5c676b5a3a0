"""Queries the API and the CLI run against the live read models (never writes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from projections.model import (
    CUSTOMERS,
    DOCUMENT_VERSIONS,
    DOCUMENTS,
    HISTORY,
    HISTORY_SUBJECTS,
    LINKS,
    PAYMENTS,
    PURCHASES,
    TOKENS,
    UNPROJECTABLE,
    USER_VERSIONS,
    USERS,
    Customer,
    HistoryEntry,
    Payments,
    Purchase,
    TokenOutcome,
    Unprojectable,
)
from projections.rules.subjects import event_subject, stripe_customer_subject
from projections.runner import UPSTREAM, tracking_recorder
from projections.storage import sqltables
from projections.storage.db import ViewDb
from projections.storage.tables import LIVE, TABLES
from subledger.settings import Database
from subledger.stripe.objects import Charge, ref_id

_customer = msgspec.json.Decoder(Customer)
_purchase = msgspec.json.Decoder(Purchase)
_token = msgspec.json.Decoder(TokenOutcome)
_entry = msgspec.json.Decoder(HistoryEntry)
_text = msgspec.json.Decoder(str)
_payments = msgspec.json.Decoder(Payments)
_parts = msgspec.json.Decoder(list[int])
_unprojectable = msgspec.json.Decoder(Unprojectable)


class CustomerHistory(msgspec.Struct, frozen=True):
    app_user_id: str
    customer_id: str | None
    ids: list[str]
    purchases: list[str]
    entries: list[HistoryEntry]


class Reader:
    def __init__(self, database: Database, *, prefix: str = LIVE) -> None:
        self.db = ViewDb(database)
        self.prefix = prefix
        sqltables.create(self.db, prefix)
        self.tracking_table = self.db.dialect.tracking_table(tracking_recorder(database), database)

    def _state(self, table: str, app_id: str, row_id: str) -> str | None:
        with self.db.read() as cur:
            cur.execute(
                self.db.q(f"SELECT state FROM {self.prefix}{table} WHERE app_id = ? AND id = ?"),
                (app_id, row_id),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def position(self) -> int:
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT notification_id FROM {self.tracking_table} WHERE application_name = ?"
                ),
                (UPSTREAM,),
            )
            row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def customer_id(self, app_id: str, app_user_id: str) -> str | None:
        raw = self._state(USERS, app_id, app_user_id)
        return None if raw is None else _text.decode(raw)

    def _of_user(self, table: str, app_id: str, app_user_id: str) -> str | None:
        """The `table` row of the customer holding `app_user_id`, in one statement: two reads
        could straddle a batch that merges that customer into another (an alias) and find
        the id pointing at a row just deleted."""
        unquoted = self.db.dialect.json_string("u.state")
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT t.state FROM {self.prefix}{USERS} u JOIN {self.prefix}{table} t "
                    f"ON t.app_id = u.app_id AND t.id = {unquoted} "
                    "WHERE u.app_id = ? AND u.id = ?"
                ),
                (app_id, app_user_id),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def customer(self, app_id: str, app_user_id: str) -> Customer | None:
        raw = self._of_user(CUSTOMERS, app_id, app_user_id)
        return None if raw is None else _customer.decode(raw)

    def document(self, app_id: str, app_user_id: str) -> str | None:
        """The stored subscriber JSON of the customer holding `app_user_id`."""
        return self._of_user(DOCUMENTS, app_id, app_user_id)

    def document_as_of(
        self, app_id: str, app_user_id: str, *, position: int | None, time_ms: int | None
    ) -> str | None:
        """The stored subscriber JSON of the customer holding `app_user_id` as the fold
        left it after the fact at `position`, or after the last fact received at or before
        `time_ms` (SPEC 12); None when the id was nobody's then."""
        column, bound = ("position", position) if time_ms is None else ("received_at_ms", time_ms)
        customer = self._version(USER_VERSIONS, app_id, app_user_id, column, bound)
        if customer is None or customer == "null":
            return None
        customer_id = _text.decode(customer)
        return self._version(DOCUMENT_VERSIONS, app_id, customer_id, column, bound)

    def _version(
        self, table: str, app_id: str, key: str, column: str, bound: int | None
    ) -> str | None:
        """The value of `key`'s last version whose `column` is at most `bound`."""
        subject, value = TABLES[table].keys[1], TABLES[table].value
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT {value} FROM {self.prefix}{table} WHERE app_id = ? AND "
                    f"{subject} = ? AND {column} <= ? ORDER BY position DESC LIMIT 1"
                ),
                (app_id, key, bound),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def purchase(self, app_id: str, key: str) -> Purchase | None:
        raw = self._state(PURCHASES, app_id, key)
        return None if raw is None else _purchase.decode(raw)

    def linked_purchase(self, app_id: str, token: str) -> str:
        raw = self._state(LINKS, app_id, token) if token.startswith("cs_") else None
        return token if raw is None else _text.decode(raw)

    def token_outcome(self, app_id: str, token_id: str) -> TokenOutcome | None:
        raw = self._state(TOKENS, app_id, token_id)
        return None if raw is None else _token.decode(raw)

    def history(self, app_id: str, subjects: Iterable[str]) -> list[HistoryEntry]:
        """The entries of every fact about any of `subjects`, in log order, each with only
        the parts about those subjects (one entry per fact, SPEC 9)."""
        wanted = sorted(set(subjects) - {""})
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT s.position, s.parts, h.entry FROM {self.prefix}{HISTORY_SUBJECTS} s "
                    f"JOIN {self.prefix}{HISTORY} h "
                    "ON h.app_id = s.app_id AND h.position = s.position "
                    f"WHERE s.app_id = ? AND s.subject IN ({marks}) ORDER BY s.position"
                ),
                (app_id, *wanted),
            )
            rows: list[Any] = cur.fetchall()
        parts: dict[int, set[int]] = {}
        entries: dict[int, str] = {}
        for position, about, raw in rows:
            parts.setdefault(position, set()).update(_parts.decode(about))
            entries[position] = raw
        return [_entry.decode(entries[p]).only(parts[p]) for p in sorted(entries)]

    def customer_history(self, app_id: str, app_user_id: str) -> CustomerHistory:
        """Every fact that touched the customer: its ids, the purchases it holds or held,
        their checkout sessions and Stripe customers (unlinked refunds), in log order."""
        customer = self.customer(app_id, app_user_id)
        ids = list(customer.ids) if customer else [app_user_id]
        owned = list(customer.owned) if customer else []
        subjects = [*ids, *owned]
        for key in owned:
            purchase = self.purchase(app_id, key)
            if purchase is not None:
                # Its Stripe customer's payments (unlinked refunds, refund reads) live under
                # a namespaced subject: a `cus_…` App User ID's own entries are not these.
                subjects += [*purchase.sessions, stripe_customer_subject(purchase.customer)]
        entries = self.history(app_id, subjects)
        events = {e.event_id for e in entries if e.event_id}
        known = {e.position for e in entries}
        redeliveries = self.history(app_id, [event_subject(event) for event in events])
        entries += [e for e in redeliveries if e.position not in known]
        return CustomerHistory(
            app_user_id=app_user_id,
            customer_id=customer.id if customer else None,
            ids=ids,
            purchases=list(customer.purchases) if customer else [],
            entries=sorted(entries, key=lambda e: e.position),
        )

    def unprojectable(self, limit: int = 100) -> tuple[int, list[Unprojectable]]:
        """How many facts could not be applied, and the latest `limit` of them."""
        with self.db.read() as cur:
            cur.execute(f"SELECT count(*) FROM {self.prefix}{UNPROJECTABLE}")
            count = int(cur.fetchone()[0])
            cur.execute(
                self.db.q(
                    f"SELECT state FROM {self.prefix}{UNPROJECTABLE} ORDER BY id DESC LIMIT ?"
                ),
                (limit,),
            )
            found = [_unprojectable.decode(row[0]) for row in cur.fetchall()]
        return count, found

    def payments(self, app_id: str, customer: str) -> Payments | None:
        raw = self._state(PAYMENTS, app_id, customer)
        return None if raw is None else _payments.decode(raw)

    def charge_linked(self, app_id: str, charge: Charge) -> bool:
        """Is this refunded charge already attributed to an invoice (or its intent known)?"""
        found = self.payments(app_id, ref_id(charge.customer) or "-")
        if found is None:
            return False
        intent = ref_id(charge.payment_intent)
        if intent and intent in found.intent_invoice:
            return True
        return any(ref.charge == charge.id for ref in found.invoices.values())

    def projection_state(self) -> dict[str, Any]:
        """Position and the lag another projector process last published."""
        lags = {name: self.meta(name) or None for name in ("lag_ms_p50", "lag_ms_p99")}
        return {"position": self.position(), **lags, "lag_samples": self.meta("lag_samples")}

    def unprojectable_state(self) -> dict[str, Any]:
        """For /ready: how many facts the fold could not apply, and the latest of them."""
        count, latest = self.unprojectable(limit=1)
        return {
            "unprojectable": count,
            "latest_unprojectable": msgspec.to_builtins(latest[0]) if latest else None,
        }

    def meta(self, name: str) -> int:
        with self.db.read() as cur:
            cur.execute(self.db.q(f"SELECT value FROM {self.prefix}meta WHERE name = ?"), (name,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def set_meta(self, name: str, value: int) -> None:
        with self.db.write() as cur:
            cur.execute(
                self.db.q(
                    f"INSERT INTO {self.prefix}meta (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                ),
                (name, value),
            )

    def close(self) -> None:
        self.db.close()
