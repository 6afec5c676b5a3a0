"""Read-model states, stored as canonical JSON rows (field order fixed, dict keys sorted)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from projections.views import WebhookEvent

# (Stripe `created` seconds, precedence within that second, event or read id): the merge key.
OrderKey = tuple[int, int, str]


class Row(msgspec.Struct, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """Base of every stored state: frozen so folds return new values, never mutate.

    Snapshot observations are stored as JSON arrays (`array_like`): a purchase keeps every
    snapshot, and field names would double its row size; explain renders them readably."""


# --- purchases --------------------------------------------------------------------------


class SubObs(Row, frozen=True, kw_only=True, array_like=True):
    """One subscription snapshot, reduced to what the customer document needs."""

    order: OrderKey
    position: int
    status: str
    product: str | None = None
    period_start: int | None = None
    period_end: int | None = None
    start_date: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    livemode: bool = False
    customer: str | None = None
    metadata: dict[str, str] = {}
    amount: int | None = None  # the item's price x quantity, minor units (outbound events)
    currency: str | None = None
    cancel_reason: str | None = None  # Stripe's cancellation_details.reason
    # Charts (SPEC 11): every item's list price x quantity, and the billing interval.
    items_amount: int | None = None
    interval: str | None = None
    interval_count: int | None = None


class SessionObs(Row, frozen=True, kw_only=True, array_like=True):
    order: OrderKey
    position: int
    id: str
    mode: str
    payment_status: str
    customer: str | None = None
    subscription: str | None = None
    livemode: bool = False
    created: int | None = None
    product: str | None = None
    payment_intent: str | None = None
    metadata: dict[str, str] = {}
    client_reference_id: str | None = None
    amount_total: int | None = None
    currency: str | None = None


class InvoiceObs(Row, frozen=True, kw_only=True, array_like=True):
    order: OrderKey
    position: int
    id: str
    status: str
    amount_paid: int = 0
    paid_at: int | None = None
    period_start: int | None = None
    period_end: int | None = None
    customer: str | None = None
    payment_intent: str | None = None
    charge: str | None = None
    first_failed_at: int | None = None  # earliest snapshot open with a failed attempt
    currency: str | None = None


class ChargeObs(Row, frozen=True, kw_only=True, array_like=True):
    order: OrderKey
    position: int
    id: str
    amount: int
    amount_refunded: int
    customer: str | None = None
    invoice: str | None = None
    payment_intent: str | None = None
    created: int | None = None
    refunded_at: int | None = None
    currency: str | None = None


class LinkedCharge(Row, frozen=True, kw_only=True):
    """A charge attributed to one of the purchase's invoices, and how it was linked."""

    charge: ChargeObs
    invoice: str
    how: str  # "charge.invoice" | "invoice_payment" | "match"


class Purchase(Row, frozen=True, kw_only=True):
    key: str
    kind: str = "unknown"  # subscription | one_time | unknown (a cs_ token not yet seen)
    known_at: int | None = None
    known_by: str | None = None  # token | tracking
    owner: str | None = None
    subs: tuple[SubObs, ...] = ()
    session: SessionObs | None = None
    invoices: dict[str, InvoiceObs] = {}
    charges: dict[str, LinkedCharge] = {}
    waiting: tuple[int, ...] = ()
    sessions: tuple[str, ...] = ()  # subscription-mode cs_ ids that alias this purchase
    customer: str | None = None  # Stripe customer id
    # A `cs_` token's placeholder: when its owner's token was posted. The claim is judged
    # only once the session names its subscription, but as of this time.
    claimed_at_ms: int | None = None
    offering: str | None = None  # the presented offering its owner's token named


class InvoiceRef(Row, frozen=True, kw_only=True):
    purchase: str
    amount_paid: int = 0
    paid_at: int | None = None
    payment_intent: str | None = None
    charge: str | None = None


class Payments(Row, frozen=True, kw_only=True):
    """Per Stripe customer: invoices and charges, so refunds link to the period they paid."""

    invoices: dict[str, InvoiceRef] = {}
    charges: dict[str, ChargeObs] = {}
    intent_invoice: dict[str, str] = {}  # payment_intent → invoice, from API reads
    # Payment intents of one-time Checkout payments: their charges pay no invoice.
    one_time_intents: tuple[str, ...] = ()


# --- ownership --------------------------------------------------------------------------


class Attribute(Row, frozen=True, kw_only=True):
    value: str
    updated_at_ms: int


class Customer(Row, frozen=True, kw_only=True):
    id: str  # the canonical (first) App User ID
    ids: tuple[str, ...]  # in log order of first appearance
    since: tuple[int, ...]  # log position where each id first appeared
    purchases: tuple[str, ...] = ()
    owned: tuple[str, ...] = ()  # every purchase it ever held (for explain)
    first_seen_ms: int
    last_seen_ms: int
    attributes: dict[str, Attribute] = {}
    deleted: dict[str, int] = {}  # key → updated_at_ms of the deletion (later writes win)


class TokenOutcome(Row, frozen=True, kw_only=True):
    position: int
    app_user_id: str
    fetch_token: str
    purchase: str
    outcome: str  # owned | unchanged | aliased | transferred | refused
    message: str


class IntegrationState(Row, frozen=True, kw_only=True):
    """An outbound integration as the fold needs it: its filters (SPEC 10). Where it
    posts, and with which Authorization, only the sender reads (from the app's settings)."""

    id: str
    event_types: tuple[str, ...] = ()  # empty: every type
    environment: str = "both"


class AppState(Row, frozen=True, kw_only=True):
    track_new_purchases: bool = False
    detection: str = "anonymous"
    metadata_key: str = "rc_app_user_id"
    transfer_behavior: str = "transfer"
    entitlements: dict[str, tuple[str, ...]] = {}
    integrations: tuple[IntegrationState, ...] = ()


# --- history ----------------------------------------------------------------------------


class Change(Row, frozen=True, kw_only=True):
    field: str
    before: str | None = None
    after: str | None = None


class Transfer(Row, frozen=True, kw_only=True):
    """SPEC 7.4's TRANSFER record: every id of the customer that lost the purchase, and
    every id of the customer that received it, as they were at that fact."""

    transferred_from: tuple[str, ...]
    transferred_to: tuple[str, ...]


class HistoryPart(Row, frozen=True, kw_only=True):
    """One thing a fact did. Which subjects (App User IDs, purchases, Stripe ids) each part
    concerns is kept beside the entry (`HISTORY_SUBJECTS`): a customer's history shows the
    parts about its own subjects."""

    text: str
    ids: dict[str, str] = {}
    changes: tuple[Change, ...] = ()
    transfer: Transfer | None = None


class HistoryEntry(Row, frozen=True, kw_only=True):
    """Everything one fact did (SPEC 9: one entry per fact)."""

    position: int
    received_at_ms: int
    kind: str
    created: int | None = None
    event_id: str | None = None
    parts: tuple[HistoryPart, ...] = ()

    @property
    def text(self) -> str:
        return "; ".join(part.text for part in self.parts)

    @property
    def ids(self) -> dict[str, str]:
        """The ids the parts name (the first part naming a key wins), after the event's."""
        merged = {"event": self.event_id} if self.event_id else {}
        for part in self.parts:
            for key, value in part.ids.items():
                merged.setdefault(key, value)
        return merged

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(change for part in self.parts for change in part.changes)

    @property
    def transfer(self) -> Transfer | None:
        return next((part.transfer for part in self.parts if part.transfer), None)

    def only(self, parts: Iterable[int]) -> HistoryEntry:
        """This entry with only the parts at these indexes (in their order)."""
        wanted = sorted(set(parts))
        if len(wanted) == len(self.parts):
            return self
        return msgspec.structs.replace(self, parts=tuple(self.parts[i] for i in wanted))


class Unprojectable(Row, frozen=True, kw_only=True):
    """A fact the fold could not apply: recorded, skipped and shown (docs/decisions.md, "The
    fold is total")."""

    position: int
    kind: str
    reason: str


# --- outbound notifications (SPEC 10) ---------------------------------------------------


class OutboundEvent(Row, frozen=True, kw_only=True):
    """A derived event some integration receives: what it is about, and what is sent."""

    position: int  # the fact that caused it
    subject: str  # its purchase key (or `integration:…` for TEST): the history it joins
    body: WebhookEvent


class Attempt(Row, frozen=True, kw_only=True, array_like=True):
    """One POST and its outcome, as its `DeliveryAttempted` fact recorded it."""

    attempt: int
    position: int  # of the fact recording it
    at_ms: int  # when it ended
    status: int  # HTTP status, 0 when there was no answer
    duration_ms: int = 0
    error: str = ""


class Delivery(Row, frozen=True, kw_only=True):
    """One event to one integration: pending until a 200 or until the sender gives up."""

    integration: str
    event: str
    type: str
    subject: str
    position: int  # of the fact that caused the event
    status: str = "pending"  # pending | delivered | failed | canceled
    due_ms: int | None = None  # the next attempt (pending only): its outbox key
    retry: int = 0  # attempts made in the current round (a resend starts a round)
    attempts: tuple[Attempt, ...] = ()


class OutboxEntry(Row, frozen=True, kw_only=True):
    """A pending delivery, keyed `integration/due/event` so a sender reads what is due per
    integration as one range of the primary key."""

    integration: str
    event: str
    attempt: int  # the number the next attempt gets
    retry: int  # attempts made in this round so far (where the retry schedule stands)


# --- charts (SPEC 11) -------------------------------------------------------------------


class Span(Row, frozen=True, kw_only=True, array_like=True):
    """A stretch of a purchase's access: a free trial or a paid subscription, with the MRR
    it contributes (thousandths of a minor unit a month; 0 for trials) and the log
    positions of the facts behind it. `end` None: no end known."""

    kind: str  # trial | paid
    start: int  # Stripe seconds
    end: int | None
    positions: tuple[int, ...]
    mrr: int = 0
    currency: str | None = None
    lapsed: bool = False  # paid access that ended with nothing paid right after (churn)
    resumed: bool = False  # paid access that began after an earlier paid span lapsed
    cancelled: bool = False  # a trial whose subscriber turned auto-renew off


class Txn(Row, frozen=True, kw_only=True, array_like=True):
    """A paid transaction (an invoice, or a one-time Checkout Session) and the refunds of
    its charges, which revenue charges back to the transaction's own period."""

    id: str
    at: int  # when it was paid, Stripe seconds
    amount: int
    currency: str | None
    positions: tuple[int, ...]
    refunded: int = 0
    charges: tuple[str, ...] = ()


class ChartPurchase(Row, frozen=True, kw_only=True):
    """What one purchase adds to the charts: a pure function of the purchase's row."""

    key: str
    spans: tuple[Span, ...] = ()
    txns: tuple[Txn, ...] = ()


class Trial(Row, frozen=True, kw_only=True, array_like=True):
    """A customer's first trial and where it stands (trial conversion's cohort)."""

    purchase: str
    end: int | None  # when the trial ends or ended
    outcome: str  # converted | abandoned | open (pending until `end`, abandoned after)
    positions: tuple[int, ...]


class ChartCustomer(Row, frozen=True, kw_only=True):
    """What one customer (all its aliases) adds to the charts: when it was first seen, and
    its first trial."""

    first_seen_ms: int
    position: int = 0  # where its first App User ID first appeared in the log
    trial: Trial | None = None


class ChartDay(Row, frozen=True, kw_only=True):
    """One UTC day of one app: every series' change on that day (counters sum the
    contributions of every purchase and customer; no zero is kept)."""

    values: dict[str, int] = {}


# --- tables -----------------------------------------------------------------------------

# The tables the fold reads and writes (storage/tables.py gives each its DDL): every state
# table holds rows `(app_id, id) → state`; history holds one entry per fact.
PURCHASES, LINKS, PAYMENTS = "purchases", "purchase_links", "payments"
APPS, USERS, CUSTOMERS, TOKENS = "apps", "users", "customers", "tokens"
DOCUMENTS, UNPROJECTABLE = "documents", "unprojectable"
HISTORY, HISTORY_SUBJECTS = "history_entries", "history_subjects"
OUTBOUND_EVENTS, DELIVERIES, OUTBOX = "outbound_events", "deliveries", "outbox"
CHART_PURCHASES, CHART_CUSTOMERS, CHART_DAYS = "chart_purchases", "chart_customers", "chart_days"
# State as of any moment (SPEC 12): each customer's document and each App User ID's customer
# after every fact that changed them, keyed by log position (append-only).
DOCUMENT_VERSIONS, USER_VERSIONS = "document_versions", "user_versions"
# Tables earlier releases wrote and a rebuild of their projection drops: `history` held one
# row per fact and subject (now one entry per fact, above).
RETIRED = {"history": ("history",)}
