"""Queries the API and the CLI run against the live read models (never writes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from projections.context import stripe_customer_subject
from projections.db import ViewDb
from projections.model import Customer, HistoryEntry, Payments, Purchase, TokenOutcome
from projections.runner import UPSTREAM, tracking_recorder, tracking_table
from projections.tables import HISTORY, LIVE, ddl
from subledger.settings import Database
from subledger.stripe.objects import Charge, ref_id

_customer = msgspec.json.Decoder(Customer)
_purchase = msgspec.json.Decoder(Purchase)
_token = msgspec.json.Decoder(TokenOutcome)
_entry = msgspec.json.Decoder(HistoryEntry)
_text = msgspec.json.Decoder(str)
_payments = msgspec.json.Decoder(Payments)


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
        self.db.execute_script(ddl(prefix, self.db.dialect))
        self.tracking_table = tracking_table(tracking_recorder(database), database)

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
        raw = self._state("users", app_id, app_user_id)
        return None if raw is None else _text.decode(raw)

    def _of_user(self, table: str, app_id: str, app_user_id: str) -> str | None:
        """The `table` row of the customer holding `app_user_id`, in one statement: two reads
        could straddle a batch that merges that customer into another (an alias) and find
        the id pointing at a row just deleted."""
        unquoted = (
            "json_extract(u.state, '$')"
            if self.db.dialect == "sqlite"
            else ("(u.state::json #>> '{}')")
        )
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT t.state FROM {self.prefix}users u JOIN {self.prefix}{table} t "
                    f"ON t.app_id = u.app_id AND t.id = {unquoted} "
                    "WHERE u.app_id = ? AND u.id = ?"
                ),
                (app_id, app_user_id),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def customer(self, app_id: str, app_user_id: str) -> Customer | None:
        raw = self._of_user("customers", app_id, app_user_id)
        return None if raw is None else _customer.decode(raw)

    def document(self, app_id: str, app_user_id: str) -> str | None:
        """The stored subscriber JSON of the customer holding `app_user_id`."""
        return self._of_user("documents", app_id, app_user_id)

    def purchase(self, app_id: str, key: str) -> Purchase | None:
        raw = self._state("purchases", app_id, key)
        return None if raw is None else _purchase.decode(raw)

    def linked_purchase(self, app_id: str, token: str) -> str:
        raw = self._state("purchase_links", app_id, token) if token.startswith("cs_") else None
        return token if raw is None else _text.decode(raw)

    def token_outcome(self, app_id: str, token_id: str) -> TokenOutcome | None:
        raw = self._state("tokens", app_id, token_id)
        return None if raw is None else _token.decode(raw)

    def history(self, app_id: str, subjects: Iterable[str]) -> list[tuple[str, HistoryEntry]]:
        """Entries about any of `subjects`, in log order."""
        wanted = sorted(set(subjects) - {""})
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        with self.db.read() as cur:
            cur.execute(
                self.db.q(
                    f"SELECT subject, entry FROM {self.prefix}{HISTORY} "
                    f"WHERE app_id = ? AND subject IN ({marks}) ORDER BY position, seq, subject"
                ),
                (app_id, *wanted),
            )
            rows: list[Any] = cur.fetchall()
        seen: set[tuple[int, str]] = set()
        result = []
        for subject, raw in rows:
            entry = _entry.decode(raw)
            if (entry.position, entry.text) in seen:
                continue  # one entry recorded under two of the customer's subjects
            seen.add((entry.position, entry.text))
            result.append((subject, entry))
        return result

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
        entries = [entry for _, entry in self.history(app_id, subjects)]
        events = {e.ids["event"] for e in entries if "event" in e.ids}
        redeliveries = self.history(app_id, [f"event:{event}" for event in events])
        entries += [entry for _, entry in redeliveries]
        return CustomerHistory(
            app_user_id=app_user_id,
            customer_id=customer.id if customer else None,
            ids=ids,
            purchases=list(customer.purchases) if customer else [],
            entries=sorted(entries, key=lambda e: e.position),
        )

    def payments(self, app_id: str, customer: str) -> Payments | None:
        raw = self._state("payments", app_id, customer)
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
