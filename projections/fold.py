"""The fold: every fact, in log order, into purchases, ownership, customers and history.

Deterministic by construction: it reads only the facts and the rows it wrote before (no
clock, no randomness, no environment); time comes from each fact.
"""

from __future__ import annotations

from typing import Any

import msgspec

from projections import purchases as rules
from projections.documents import build_subscriber
from projections.explain import describe_view_change, view_changes, when
from projections.model import AppState, Customer, HistoryEntry, Purchase, TokenOutcome
from projections.ownership import (
    ALIASED,
    OWNED,
    REFUSED,
    TRANSFERRED,
    UNCHANGED,
    apply_attributes,
    decide,
    detect_owner,
    merge,
    new_customer,
    seen,
    with_purchase,
    without_purchase,
)
from projections.payments import PaymentsStep
from projections.subscriptions import SubscriptionView, subscription_view
from projections.workingset import WorkingSet
from subledger import apps
from subledger.facts import (
    AttributesPosted,
    NotificationReceived,
    NotificationRedelivered,
    StripeObjectRead,
    TokenPosted,
)
from subledger.identity import is_anonymous
from subledger.stripe import objects

PURCHASES, LINKS, APPS, USERS, CUSTOMERS, TOKENS, DOCUMENTS = (
    "purchases",
    "purchase_links",
    "apps",
    "users",
    "customers",
    "tokens",
    "documents",
)


def event_subject(event_id: str) -> str:
    return f"event:{event_id}"


class Fold:
    def __init__(self, ws: WorkingSet) -> None:
        self.ws = ws
        self.touched: set[tuple[str, str]] = set()
        self.payments = PaymentsStep(self)
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
                self._token(position, record)
            case AttributesPosted():
                self._attributes(position, record)
            case StripeObjectRead():
                self._stripe_read(position, record, obj)
            case apps.AppEvent():
                self._settings(position, record)
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
        done: list[str] = []
        for subject in subjects:
            if subject and subject not in done:
                done.append(subject)
                self.ws.record(app_id, subject, entry)

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
                    self.link_session(ctx, obj.id, session.subscription)
                    key = session.subscription
                elif obj.mode == "payment":
                    key = obj.id
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
            changed = self.claim_by_detection(ctx, changed, app)
        elif creates_identity(changed, app):
            changed = self.identify(ctx, changed, app)
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

    def claim_by_detection(self, ctx: Context, p: Purchase, app: AppState) -> Purchase:
        owner, how = self.detect(ctx, p, app)
        p = msgspec.structs.replace(p, known_at=ctx.position, known_by="tracking")
        p, _, _ = self.take(ctx, p, owner)
        text = f"{p.key} tracked from a notification; owner {owner} detected from {how}"
        self.record(
            ctx.app_id, [p.key, owner], ctx.entry(text, {"purchase": p.key, "owner": owner})
        )
        self.record_applied(ctx, p)
        return p

    def detect(self, ctx: Context, p: Purchase, app: AppState) -> tuple[str, str]:
        latest = p.subs[-1] if p.subs else None
        session = p.session
        return detect_owner(
            app,
            ctx.app_id,
            p.key,
            customer=(latest.customer if latest else None)
            or (session.customer if session else None),
            subscription_metadata=latest.metadata if latest else {},
            session_metadata=session.metadata if session else {},
        )

    def identify(self, ctx: Context, p: Purchase, app: AppState) -> Purchase:
        """A tracked purchase fell back to an anonymous owner; a later snapshot names the
        user (e.g. the Checkout Session's metadata): alias them, as a token would."""
        detected, how = self.detect(ctx, p, app)
        owner = self.customer_of(ctx.app_id, p.owner)
        if is_anonymous(detected) or (owner is not None and detected in owner.ids):
            return p
        p, _, message = self.take(ctx, p, detected)
        text = f"{detected} detected from {how}: " + message
        self.record(
            ctx.app_id, [p.key, detected], ctx.entry(text, {"purchase": p.key, "owner": detected})
        )
        return p

    def record_applied(self, ctx: Context, p: Purchase) -> None:
        for waited in p.waiting:
            text = f"waited since position {waited} for a token, applied at position {ctx.position}"
            self.record(
                ctx.app_id, [p.key], ctx.entry(text, {"purchase": p.key, "waited": str(waited)})
            )

    def _redelivered(self, position: int, fact: NotificationRedelivered) -> None:
        """Listed under the event id; explain joins it to the original's entries."""
        ctx = Context(fact.app_id, position, fact.received_at_ms, "stripe-duplicate", None)
        text = f"duplicate delivery of {fact.event_id} — ignored (already recorded)"
        self.record(
            fact.app_id, [event_subject(fact.event_id)], ctx.entry(text, {"event": fact.event_id})
        )

    # --- tokens and ownership ----------------------------------------------------------

    def resolve(self, app_id: str, token: str) -> str:
        """A subscription-mode Checkout Session stands for the subscription it created."""
        linked: str | None = self.ws.get(LINKS, app_id, token) if token.startswith("cs_") else None
        return linked or token

    def ensure_customer(self, ctx: Context, app_user_id: str) -> Customer:
        found = self.customer_of(ctx.app_id, app_user_id)
        if found is None:
            found = new_customer(app_user_id, ctx.position, ctx.received_at_ms)
        return seen(found, ctx.received_at_ms)

    def _token(self, position: int, fact: TokenPosted) -> None:
        ctx = Context(fact.app_id, position, fact.received_at_ms, "token", None)
        key = self.resolve(fact.app_id, fact.fetch_token)
        customer = self.ensure_customer(ctx, fact.app_user_id)
        if fact.attributes:
            customer, _ = apply_attributes(customer, fact.attributes, fact.received_at_ms)
        self.save_customer(fact.app_id, customer)
        kind = "subscription" if key.startswith("sub_") else "unknown"
        p = self.purchase(fact.app_id, key) or Purchase(key=key, kind=kind)
        became_known = p.known_at is None
        if became_known:
            p = msgspec.structs.replace(p, known_at=position, known_by="token")
        p, outcome, message = self.take(ctx, p, fact.app_user_id)
        self.save_purchase(fact.app_id, p)
        self.ws.put(
            TOKENS,
            fact.app_id,
            fact.originator_id.hex,
            TokenOutcome(
                position=position,
                app_user_id=fact.app_user_id,
                fetch_token=fact.fetch_token,
                purchase=key,
                outcome=outcome,
                message=message,
            ),
        )
        ids = {"app_user_id": fact.app_user_id, "purchase": key, "token": fact.fetch_token}
        self.record(fact.app_id, [fact.app_user_id, key, fact.fetch_token], ctx.entry(message, ids))
        if became_known:
            self.record_applied(ctx, p)

    def take(self, ctx: Context, p: Purchase, app_user_id: str) -> tuple[Purchase, str, str]:
        """Apply SPEC 7.4 for `app_user_id` claiming `p`: (purchase, outcome, sentence)."""
        app = self.app(ctx.app_id)
        owner = self.customer_of(ctx.app_id, p.owner)
        view = self.subscription_view(p)
        active = bool(view and view.expires_date and view.expires_date * 1000 > ctx.received_at_ms)
        outcome = decide(app_user_id, owner, app.transfer_behavior, purchase_active=active)
        message = outcome_text(outcome, app_user_id, p.key, owner, app.transfer_behavior)
        claimant = self.ensure_customer(ctx, app_user_id)
        if outcome == OWNED:
            self.save_customer(ctx.app_id, with_purchase(claimant, p.key))
            p = msgspec.structs.replace(p, owner=app_user_id)
        elif outcome == ALIASED and owner is not None:
            self.alias(ctx.app_id, owner, claimant)
        elif outcome == TRANSFERRED and owner is not None:
            self.save_customer(ctx.app_id, without_purchase(owner, p.key))
            self.save_customer(ctx.app_id, with_purchase(claimant, p.key))
            p = msgspec.structs.replace(p, owner=app_user_id)
            text = f"{p.key} transferred from {', '.join(owner.ids)} to {', '.join(claimant.ids)}"
            ids = {"purchase": p.key, "from": owner.id, "to": app_user_id}
            self.record(ctx.app_id, [*owner.ids], ctx.entry(text, ids))
        return p, outcome, message

    def alias(self, app_id: str, a: Customer, b: Customer) -> Customer:
        merged = merge(a, b)
        for old in (a, b):
            if old.id != merged.id:
                self.ws.delete(CUSTOMERS, app_id, old.id)
                self.touched.add((app_id, old.id))
        self.save_customer(app_id, merged)
        return merged

    def link_session(self, ctx: Context, session_id: str, subscription_id: str) -> None:
        """A subscription-mode session becomes an alias of its subscription; a token posted
        for the session before we knew this is carried over to the subscription."""
        if self.ws.get(LINKS, ctx.app_id, session_id) is not None:
            return
        self.ws.put(LINKS, ctx.app_id, session_id, subscription_id)
        target = self.purchase(ctx.app_id, subscription_id) or Purchase(key=subscription_id)
        sessions = tuple(sorted({*target.sessions, session_id}))
        target = msgspec.structs.replace(target, sessions=sessions, kind="subscription")
        placeholder = self.purchase(ctx.app_id, session_id)
        if placeholder is not None:
            self.ws.delete(PURCHASES, ctx.app_id, session_id)
            holder = self.customer_of(ctx.app_id, placeholder.owner)
            if holder is not None:
                self.save_customer(ctx.app_id, without_purchase(holder, session_id))
            if placeholder.known_at is not None and target.known_at is None:
                target = msgspec.structs.replace(target, known_at=ctx.position, known_by="token")
                self.record_applied(ctx, target)
            if placeholder.owner is not None:
                target, _, message = self.take(ctx, target, placeholder.owner)
                text = f"checkout session {session_id} is subscription {subscription_id}: {message}"
                ids = {"session": session_id, "purchase": subscription_id}
                self.record(ctx.app_id, [session_id, subscription_id], ctx.entry(text, ids))
        self.save_purchase(ctx.app_id, target)

    # --- attributes, reads, settings ---------------------------------------------------

    def _attributes(self, position: int, fact: AttributesPosted) -> None:
        ctx = Context(fact.app_id, position, fact.received_at_ms, "attributes", None)
        customer = self.ensure_customer(ctx, fact.app_user_id)
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
            self.record(fact.app_id, [fact.subject], ctx.entry(text, ids))
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
            self.record(fact.app_id, [fact.subject], ctx.entry(text, ids))
            return
        self.observe_object(ctx, obj, order_id)

    def _settings(self, position: int, event: apps.AppEvent) -> None:
        app_id = apps.app_id_of(event.originator_id)
        state = self.app(app_id)
        match event:
            case apps.AppCreated(config=c) | apps.AppSettingsChanged(config=c):
                state = msgspec.structs.replace(
                    state,
                    track_new_purchases=c.track_new_purchases,
                    detection=c.app_user_id_detection,
                    metadata_key=c.metadata_key,
                    transfer_behavior=c.transfer_behavior,
                )
            case apps.EntitlementsMapped(entitlements=mapping):
                old = state.entitlements
                state = msgspec.structs.replace(
                    state, entitlements={k: tuple(v) for k, v in mapping.items()}
                )
                self.ws.put(APPS, app_id, "", state)
                self.remap(Context(app_id, position, event.received_at_ms, "settings", None), old)
                return
            case _:
                return
        self.ws.put(APPS, app_id, "", state)

    def remap(self, ctx: Context, old: dict[str, tuple[str, ...]]) -> None:
        """A new entitlement mapping touches every customer holding an affected product."""
        new = self.app(ctx.app_id).entitlements
        changed = {e for e in {*old, *new} if old.get(e) != new.get(e)}
        products = {p for e in changed for p in (*old.get(e, ()), *new.get(e, ()))}
        mapping = "; ".join(f"{e}={','.join(new[e])}" for e in sorted(new)) or "empty"
        for customer_id in self.ws.ids(CUSTOMERS, ctx.app_id):
            customer = self.customer(ctx.app_id, customer_id)
            if customer is None:
                continue
            held = {self.product_of(ctx.app_id, key) for key in customer.purchases}
            if held & products:
                self.touched.add((ctx.app_id, customer.id))
                text = f"entitlement mapping changed ({mapping})"
                self.record(ctx.app_id, [customer.id], ctx.entry(text, {"app": ctx.app_id}))

    def product_of(self, app_id: str, key: str) -> str | None:
        p = self.purchase(app_id, key)
        if p is None:
            return None
        if p.subs:
            return p.subs[-1].product
        return p.session.product if p.session else None


READ_KINDS = ("subscription", "checkout.session", "invoice", "charge")


def outcome_text(
    outcome: str, app_user_id: str, key: str, owner: Customer | None, behavior: str
) -> str:
    """The sentence for a claim, naming the owner as it was before the claim."""
    holder = ", ".join(owner.ids) if owner else "nobody"
    return {
        OWNED: f"{app_user_id} now owns {key}",
        UNCHANGED: f"{key} already belongs to {app_user_id}: no change",
        ALIASED: f"owner {holder} aliased with {app_user_id} (anonymous owner: no transfer)",
        TRANSFERRED: f"{key} transferred to {app_user_id}",
        REFUSED: f"transfer refused by {behavior}: {key} stays with {holder}",
    }[outcome]


def creates_identity(p: Purchase, app: AppState) -> bool:
    """Could this snapshot name the user behind an anonymous, notification-created owner?"""
    return (
        p.known_by == "tracking"
        and p.owner is not None
        and is_anonymous(p.owner)
        and app.detection != "anonymous"
    )


class Context(msgspec.Struct, frozen=True):
    """Where a fact sits in the log: what every history entry it causes carries."""

    app_id: str
    position: int
    received_at_ms: int
    kind: str
    created: int | None
    event_id: str | None = None

    def entry(self, text: str, ids: dict[str, str], changes: tuple[Any, ...] = ()) -> HistoryEntry:
        if self.event_id:
            ids = {"event": self.event_id, **ids}
        return HistoryEntry(
            position=self.position,
            received_at_ms=self.received_at_ms,
            kind=self.kind,
            text=text,
            created=self.created,
            ids=ids,
            changes=changes,
        )


def note(position: int, received_at_ms: int, kind: str, text: str) -> HistoryEntry:
    return HistoryEntry(position=position, received_at_ms=received_at_ms, kind=kind, text=text)


__all__ = ["Context", "Fold", "when"]
