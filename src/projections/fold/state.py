"""The state of one batch: the rows it reads and writes (behind `Rows`), the customers whose
documents it must rebuild, and the history entry of the fact being applied.

Deterministic by construction: a step reads only the fact, its context and these rows (no
clock, no randomness, no environment); time comes from the fact.
"""

from __future__ import annotations

from projections.fold.context import Context, Rows
from projections.model import (
    APPS,
    CUSTOMERS,
    DOCUMENT_VERSIONS,
    DOCUMENTS,
    LINKS,
    PAYMENTS,
    PURCHASES,
    USER_VERSIONS,
    USERS,
    AppState,
    Change,
    Customer,
    HistoryEntry,
    HistoryPart,
    Payments,
    Purchase,
    Transfer,
)
from projections.rules.documents import Shown, render_subscriber, shown_purchases
from projections.rules.subscriptions import subscription_view
from projections.views import SubscriptionView


class Batch:
    """What one batch of facts reads and writes; steps are functions that take it."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.touched: set[tuple[str, str]] = set()  # customers whose document to rebuild
        self.charted: set[tuple[str, str]] = set()  # purchases to chart afresh (SPEC 11)
        self.recharted: set[tuple[str, str]] = set()  # customers saved or dropped (charts)
        self._views: dict[int, tuple[Purchase, SubscriptionView | None]] = {}
        self._parts: list[HistoryPart] = []  # the current fact's
        self._subjects: dict[str, list[int]] = {}  # subject → indexes of its parts
        # Purchases the current fact saved, as they were before it (outbound events are
        # what changed between the two, SPEC 10); kept only while `watching`: the fact's app
        # has integrations (the others pay nothing for outbound).
        self._before: dict[tuple[str, str], Purchase | None] = {}
        self.watching = False
        # App User IDs whose customer the current fact changed (SPEC 12: as of any moment).
        self._moved: dict[tuple[str, str], str | None] = {}
        # What each customer's document was last rendered from in this batch.
        self._rendered: dict[tuple[str, str], tuple[Customer, AppState, Shown]] = {}

    def start_fact(self, app_id: str) -> None:
        self.watching = bool(self.app(app_id).integrations)

    # --- rows --------------------------------------------------------------------------

    def app(self, app_id: str) -> AppState:
        found: AppState | None = self.rows.get(APPS, app_id, "")
        return found or AppState()

    def purchase(self, app_id: str, key: str) -> Purchase | None:
        found: Purchase | None = self.rows.get(PURCHASES, app_id, key)
        return found

    def customer(self, app_id: str, customer_id: str) -> Customer | None:
        found: Customer | None = self.rows.get(CUSTOMERS, app_id, customer_id)
        return found

    def customer_of(self, app_id: str, app_user_id: str | None) -> Customer | None:
        if app_user_id is None:
            return None
        customer_id = self.rows.get(USERS, app_id, app_user_id)
        return None if customer_id is None else self.customer(app_id, customer_id)

    def linked(self, app_id: str, session_id: str) -> str | None:
        """The subscription a subscription-mode Checkout Session created, once known."""
        found: str | None = self.rows.get(LINKS, app_id, session_id)
        return found

    def payments(self, app_id: str, customer_key: str) -> Payments:
        found: Payments | None = self.rows.get(PAYMENTS, app_id, customer_key)
        return found or Payments()

    def save_purchase(self, app_id: str, p: Purchase) -> None:
        if self.watching:
            key = (app_id, p.key)
            if key not in self._before:
                self._before[key] = self.rows.get(PURCHASES, app_id, p.key)
        self.rows.put(PURCHASES, app_id, p.key, p)
        self.charted.add((app_id, p.key))
        owner = self.customer_of(app_id, p.owner)
        if owner is not None:
            self.touched.add((app_id, owner.id))

    def save_customer(self, app_id: str, c: Customer) -> None:
        self.rows.put(CUSTOMERS, app_id, c.id, c)
        for app_user_id in c.ids:
            if self.rows.get(USERS, app_id, app_user_id) != c.id:
                self.rows.put(USERS, app_id, app_user_id, c.id)
                self._moved[(app_id, app_user_id)] = c.id
        self.touched.add((app_id, c.id))
        self.recharted.add((app_id, c.id))

    def drop_customer(self, app_id: str, customer_id: str, *, user_too: bool = False) -> None:
        """Delete a customer (merged into another, or a placeholder that goes); its
        document goes with it when the batch finishes."""
        self.rows.put(CUSTOMERS, app_id, customer_id, None)
        if user_too:
            self.rows.put(USERS, app_id, customer_id, None)
            self._moved[(app_id, customer_id)] = None
        self.touched.add((app_id, customer_id))
        self.recharted.add((app_id, customer_id))

    # --- views -------------------------------------------------------------------------

    def view(self, p: Purchase | None) -> SubscriptionView | None:
        """The subscription a customer sees: none while nobody owns the purchase."""
        return self.subscription_view(p) if p is not None and p.owner else None

    def subscription_view(self, p: Purchase) -> SubscriptionView | None:
        """Views of unchanged purchases are computed once per batch (purchases are frozen)."""
        cached = self._views.get(id(p))
        if cached is not None and cached[0] is p:
            return cached[1]
        view = subscription_view(p)
        self._views[id(p)] = (p, view)
        return view

    def changed_purchases(self) -> list[tuple[str, Purchase | None, Purchase | None]]:
        """(app, before, after) of each purchase the current fact saved, by key; forgets
        them (the next fact starts afresh)."""
        changed = [
            (app_id, before, self.purchase(app_id, key))
            for (app_id, key), before in sorted(self._before.items(), key=lambda i: i[0])
        ]
        self._before.clear()
        return changed

    # --- history -----------------------------------------------------------------------

    def note(
        self,
        subjects: list[str],
        text: str,
        ids: dict[str, str],
        changes: tuple[Change, ...] = (),
        transfer: Transfer | None = None,
    ) -> None:
        """One thing the current fact did, filed under each non-empty subject. The same
        part for many subjects is kept once (a new entitlement mapping touches every
        customer holding a product: one part, not one per customer)."""
        named = [subject for subject in subjects if subject]
        if not named:
            return
        part = HistoryPart(text=text, ids=ids, changes=changes, transfer=transfer)
        parts = self._parts
        index = next((i for i, kept in enumerate(parts) if kept == part), len(parts))
        if index == len(parts):
            parts.append(part)
        for subject in named:
            indexes = self._subjects.setdefault(subject, [])
            if index not in indexes:
                indexes.append(index)

    def end_fact(self, ctx: Context) -> None:
        """Write the fact's history entry: everything it did, once (SPEC 9); then the
        documents it changed and where its App User IDs point, as versions at its position
        (SPEC 12)."""
        self.render(ctx)
        if self._subjects:
            entry = HistoryEntry(
                position=ctx.position,
                received_at_ms=ctx.received_at_ms,
                kind=ctx.kind,
                created=ctx.created,
                event_id=ctx.event_id,
                parts=tuple(self._parts),
            )
            subjects = {subject: tuple(i) for subject, i in self._subjects.items()}
            self.rows.add_history(ctx.app_id, entry, subjects)
        self._parts.clear()
        self._subjects.clear()
        self._before.clear()

    # --- documents ---------------------------------------------------------------------

    def render(self, ctx: Context | None) -> None:
        """Rebuild the documents of the customers touched since the last render; each that
        changed, and each App User ID that moved, is also a version at the fact's position
        (`ctx`), so any position of the log finds the document as it stood then."""
        at = None if ctx is None else (ctx.position, ctx.received_at_ms)
        for (app_id, app_user_id), customer_id in sorted(self._moved.items()):
            if at is not None:
                self.rows.append(USER_VERSIONS, (app_id, app_user_id, *at), customer_id)
        self._moved.clear()
        for app_id, customer_id in sorted(self.touched):
            customer = self.customer(app_id, customer_id)
            before = self.rows.get(DOCUMENTS, app_id, customer_id)
            if customer is None:
                if before is not None:
                    self.rows.put(DOCUMENTS, app_id, customer_id, None)
                continue
            owned = [self.purchase(app_id, key) for key in customer.purchases]
            shown = shown_purchases([p for p in owned if p], self.subscription_view)
            inputs = (customer, self.app(app_id), shown)
            if self._rendered.get((app_id, customer_id)) == inputs:
                continue  # the same customer, settings and purchases shown: the same document
            self._rendered[(app_id, customer_id)] = inputs
            doc = render_subscriber(customer, shown, inputs[1])
            if doc != before:
                self.rows.put(DOCUMENTS, app_id, customer_id, doc)
                if at is not None:
                    self.rows.append(DOCUMENT_VERSIONS, (app_id, customer_id, *at), doc)
        self.touched.clear()

    def finish(self) -> None:
        """The end of a batch (every fact rendered its documents as it ended)."""
        self.render(None)
        self._views.clear()
        self._rendered.clear()
