"""The fold: every fact, in log order, into purchases, ownership, customers and history.

Deterministic by construction: it reads only the facts and the rows it wrote before (no
clock, no randomness, no environment); time comes from each fact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from projections import purchases as rules
from projections.appsettings import SettingsStep
from projections.claims import Claims, creates_identity
from projections.context import Context, event_subject, note, read_subjects
from projections.documents import build_subscriber
from projections.explain import describe_view_change, view_changes
from projections.model import AppState, Customer, HistoryEntry, Purchase
from projections.ownership import (
    apply_attributes,
)
from projections.payments import PaymentsStep
from projections.prefetch import decode_stripe, prefetch
from projections.shapes import SubscriptionView
from projections.subscriptions import subscription_view
from projections.tables import APPS, CUSTOMERS, DOCUMENTS, PURCHASES, USERS
from projections.workingset import WorkingSet
from subledger import apps
from subledger.facts import (
    AttributesPosted,
    NotificationReceived,
    NotificationRedelivered,
    StripeObjectRead,
    TokenPosted,
    UserIdentified,
)
from subledger.store import LogEntry, decode_record
from subledger.stripe import objects

READ_KINDS = ("subscription", "checkout.session", "invoice", "charge")


class Fold:
    def __init__(self, ws: WorkingSet) -> None:
        self.ws = ws
        self.touched: set[tuple[str, str]] = set()
        self.payments = PaymentsStep(self)
        self.claims = Claims(self)
        self.settings = SettingsStep(self)
        self._views: dict[int, tuple[Purchase, SubscriptionView | None]] = {}

    # --- dispatch ----------------------------------------------------------------------

    def apply(self, position: int, record: Any, obj: Any = None) -> None:
        """Fold one fact; `obj` is its Stripe object when the caller decoded it already."""
        match record:
            case NotificationReceived():
                self._notification(position, record, obj)
            case NotificationRedelivered():
                self._redelivered(position, record)
            case TokenPosted():
                self.claims.token(position, record)
            case AttributesPosted():
                self._attributes(position, record)
            case UserIdentified():
                self.claims.user_identified(position, record)
            case StripeObjectRead():
                self._stripe_read(position, record, obj)
            case apps.AppEvent():
                self.settings.apply(position, record)
            case _:
                pass

    def finish(self) -> None:
        """Rebuild the documents of every customer this batch touched."""
        for app_id, customer_id in sorted(self.touched):
            customer = self.customer(app_id, customer_id)
            if customer is None:
                self.ws.delete(DOCUMENTS, app_id, customer_id)
                continue
            owned = [self.purchase(app_id, key) for key in customer.purchases]
            doc = build_subscriber(
                customer, [p for p in owned if p], self.app(app_id), self.subscription_view
            )
            self.ws.put(DOCUMENTS, app_id, customer_id, doc)
        self.touched.clear()
        self._views.clear()

    def close(self) -> None:
        """Break the fold ↔ step cycles, so a finished batch is freed without the GC."""
        del self.claims.fold, self.payments.fold, self.settings.fold

    # --- rows --------------------------------------------------------------------------

    def app(self, app_id: str) -> AppState:
        found: AppState | None = self.ws.get(APPS, app_id, "")
        return found or AppState()

    def purchase(self, app_id: str, key: str) -> Purchase | None:
        found: Purchase | None = self.ws.get(PURCHASES, app_id, key)
        return found

    def customer(self, app_id: str, customer_id: str) -> Customer | None:
        found: Customer | None = self.ws.get(CUSTOMERS, app_id, customer_id)
        return found

    def customer_of(self, app_id: str, app_user_id: str | None) -> Customer | None:
        if app_user_id is None:
            return None
        customer_id = self.ws.get(USERS, app_id, app_user_id)
        return None if customer_id is None else self.customer(app_id, customer_id)

    def save_purchase(self, app_id: str, p: Purchase) -> None:
        self.ws.put(PURCHASES, app_id, p.key, p)
        owner = self.customer_of(app_id, p.owner)
        if owner is not None:
            self.touched.add((app_id, owner.id))

    def save_customer(self, app_id: str, c: Customer) -> None:
        self.ws.put(CUSTOMERS, app_id, c.id, c)
        for app_user_id in c.ids:
            if self.ws.get(USERS, app_id, app_user_id) != c.id:
                self.ws.put(USERS, app_id, app_user_id, c.id)
        self.touched.add((app_id, c.id))

    def view(self, p: Purchase | None) -> SubscriptionView | None:
        return self.subscription_view(p) if p is not None and p.owner else None

    def subscription_view(self, p: Purchase) -> SubscriptionView | None:
        """Views of unchanged purchases are computed once per batch (purchases are frozen)."""
        cached = self._views.get(id(p))
        if cached is not None and cached[0] is p:
            return cached[1]
        view = subscription_view(p)
        self._views[id(p)] = (p, view)
        return view

    def record(self, app_id: str, subjects: list[str], entry: HistoryEntry) -> None:
        """Add `entry` to the history of each distinct, non-empty subject (in order)."""
        distinct = [subject for subject in dict.fromkeys(subjects) if subject]
        if distinct:
            self.ws.record(app_id, distinct, entry)

    # --- notifications -----------------------------------------------------------------

    def _notification(self, position: int, fact: NotificationReceived, obj: Any) -> None:
        kind = f"stripe:{fact.type}"
        try:
            obj = obj or objects.decode_event_object(fact.type, fact.body)
        except msgspec.ValidationError as error:
            entry = note(position, fact.received_at_ms, kind, f"unreadable payload: {error}")
            self.record(fact.app_id, [event_subject(fact.event_id)], entry)
            return
        context = Context(
            fact.app_id, position, fact.received_at_ms, kind, fact.created, fact.event_id
        )
        self.observe_object(context, obj, fact.event_id, fact.type)

    def observe_object(self, ctx: Context, obj: Any, order_id: str, event_type: str = "") -> None:
        created = ctx.created or ctx.received_at_ms // 1000
        match obj:
            case objects.Subscription():
                order = (created, rules.subscription_precedence(obj), order_id)
                obs = rules.sub_obs(obj, order, ctx.position)
                creates = event_type == "customer.subscription.created"
                self.observe(ctx, obj.id, lambda p: rules.add_subscription(p, obs), creates)
            case objects.CheckoutSession():
                order = (created, rules.session_precedence(obj), order_id)
                session = rules.session_obs(obj, order, ctx.position)
                creates = event_type == "checkout.session.completed"
                if obj.mode == "subscription" and session.subscription:
                    self.claims.link_session(ctx, obj.id, session.subscription)
                    key = session.subscription
                elif obj.mode == "payment":
                    key = obj.id
                    self.payments.one_time_session(ctx, session)
                else:
                    text = f"checkout session {obj.id} ({obj.mode or 'no'} mode) grants nothing"
                    self.record(ctx.app_id, [obj.id], ctx.entry(text, {"session": obj.id}))
                    return
                self.observe(ctx, key, lambda p: rules.add_session(p, session), creates)
            case objects.Invoice():
                self.payments.invoice(ctx, obj, order_id)
            case objects.Charge():
                self.payments.charge(ctx, obj, order_id)
            case _:
                pass

    def observe(self, ctx: Context, key: str, change: Any, creates: bool) -> Purchase:
        """Merge a snapshot into a purchase; unknown purchases keep it and wait (SPEC 7.2)."""
        p = self.purchase(ctx.app_id, key) or Purchase(key=key)
        before = self.view(p)
        changed: Purchase = change(p)
        app = self.app(ctx.app_id)
        ids = {"purchase": key}
        if changed.known_at is None:
            if not (creates and app.track_new_purchases):
                changed = msgspec.structs.replace(changed, waiting=(*changed.waiting, ctx.position))
                self.save_purchase(ctx.app_id, changed)
                text = f"{key} is not known yet: waits for a token"
                self.record(ctx.app_id, [key], ctx.entry(text, ids))
                return changed
            changed = self.claims.claim_by_detection(ctx, changed, app)
        elif creates_identity(changed, app):
            changed = self.claims.identify(ctx, changed, app)
        elif changed == p:
            text = f"{key}: older or repeated snapshot, state unchanged"
            self.record(ctx.app_id, [key], ctx.entry(text, ids))
            return p
        self.save_purchase(ctx.app_id, changed)
        after = self.view(changed)
        text = describe_view_change(key, before, after, app.entitlements)
        changes = view_changes(before, after)
        self.record(ctx.app_id, [key], ctx.entry(text, ids, changes))
        return changed

    def _redelivered(self, position: int, fact: NotificationRedelivered) -> None:
        """Listed under the event id; explain joins it to the original's entries."""
        ctx = Context(fact.app_id, position, fact.received_at_ms, "stripe-duplicate", None)
        text = f"duplicate delivery of {fact.event_id} — ignored (already recorded)"
        self.record(
            fact.app_id, [event_subject(fact.event_id)], ctx.entry(text, {"event": fact.event_id})
        )

    def _attributes(self, position: int, fact: AttributesPosted) -> None:
        ctx = Context(fact.app_id, position, fact.received_at_ms, "attributes", None)
        customer = self.claims.ensure_customer(ctx, fact.app_user_id)
        customer, changed = apply_attributes(customer, fact.attributes, fact.received_at_ms)
        self.save_customer(fact.app_id, customer)
        text = (
            f"attributes {', '.join(changed)} updated"
            if changed
            else "attributes posted; none newer than the stored values"
        )
        self.record(
            fact.app_id, [fact.app_user_id], ctx.entry(text, {"app_user_id": fact.app_user_id})
        )

    def _stripe_read(self, position: int, fact: StripeObjectRead, decoded: Any) -> None:
        ctx = Context(fact.app_id, position, fact.received_at_ms, "stripe-read", None)
        ids = {"request": fact.request, "subject": fact.subject}
        if fact.status != 200:
            text = f"Stripe read {fact.request} failed ({fact.status} {fact.error}): {fact.reason}"
            self.record(fact.app_id, read_subjects(fact), ctx.entry(text, ids))
            return
        kind = objects.object_kind(fact.body)
        order_id = f"read:{fact.originator_id.hex}"
        if kind == "list":
            self.payments.intent_links(ctx, fact)
            return
        try:
            obj = decoded or (
                objects.decode_api_object(kind, fact.body) if kind in READ_KINDS else None
            )
        except msgspec.ValidationError:
            obj = None
        if obj is None:
            text = f"Stripe read {fact.request} returned an unexpected {kind or 'body'}"
            self.record(fact.app_id, read_subjects(fact), ctx.entry(text, ids))
            return
        self.observe_object(ctx, obj, order_id)


def fold_batch(ws: WorkingSet, notifications: Sequence[LogEntry]) -> list[int]:
    """Decode, prefetch and fold one batch (in log order) into `ws`; returns the facts'
    receive times. Here rather than in the runner so that it runs compiled too."""
    batch = []
    received = []
    for n in notifications:
        record = decode_record(n.topic, n.state)
        batch.append((n.id, record, decode_stripe(record)))
        received.append(record.received_at_ms)
    prefetch(ws, batch)
    fold = Fold(ws)
    try:
        for position, record, obj in batch:
            fold.apply(position, record, obj)
        fold.finish()
    finally:
        fold.close()
    return received
