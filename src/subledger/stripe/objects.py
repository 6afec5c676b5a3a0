"""Narrow views of the Stripe objects inside notifications and API reads.

Both payload generations decode: fields that moved in API 2025-03-31 (period on the item,
invoice → subscription under `parent`, charge → invoice removed) are all optional here and
the projections pick whichever is present. Expandable references are ids (we never expand).
"""

from __future__ import annotations

from typing import Any

import msgspec


class Ref(msgspec.Struct, frozen=True, gc=False):
    """An expanded object where an id was expected: only its id matters."""

    id: str


IdOrObject = str | Ref | None


def ref_id(value: IdOrObject) -> str | None:
    return value.id if isinstance(value, Ref) else value


class Recurring(msgspec.Struct, frozen=True, gc=False):
    interval: str | None = None  # day | week | month | year
    interval_count: int | None = None


class Price(msgspec.Struct, frozen=True, gc=False):
    product: IdOrObject = None
    unit_amount: int | None = None  # minor units; null for tiered or custom prices
    currency: str | None = None
    recurring: Recurring | None = None


class SubscriptionItem(msgspec.Struct, frozen=True, gc=False):
    price: Price | None = None
    plan: Price | None = None
    quantity: int | None = None
    current_period_start: int | None = None  # API >= 2025-03-31
    current_period_end: int | None = None


class ItemList(msgspec.Struct, frozen=True, gc=False):
    data: list[SubscriptionItem] = []


class CancellationDetails(msgspec.Struct, frozen=True, gc=False):
    reason: str | None = None  # cancellation_requested | payment_failed | payment_disputed


class Subscription(msgspec.Struct, frozen=True, gc=False):
    id: str
    status: str = ""
    customer: IdOrObject = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    start_date: int | None = None
    livemode: bool = False
    metadata: dict[str, str] | None = None
    current_period_start: int | None = None  # API < 2025-03-31
    current_period_end: int | None = None
    items: ItemList | None = None
    currency: str | None = None
    cancellation_details: CancellationDetails | None = None


class LineItemPrice(msgspec.Struct, frozen=True, gc=False):
    price: Price | None = None


class LineItemList(msgspec.Struct, frozen=True, gc=False):
    data: list[LineItemPrice] = []


class CheckoutSession(msgspec.Struct, frozen=True, gc=False):
    id: str
    mode: str = ""
    status: str | None = None
    payment_status: str = ""
    customer: IdOrObject = None
    subscription: IdOrObject = None
    payment_intent: IdOrObject = None
    invoice: IdOrObject = None
    metadata: dict[str, str] | None = None
    client_reference_id: str | None = None
    livemode: bool = False
    created: int | None = None
    line_items: LineItemList | None = None  # only when expanded (API reads)
    amount_total: int | None = None
    currency: str | None = None


class SubscriptionDetails(msgspec.Struct, frozen=True, gc=False):
    subscription: IdOrObject = None
    metadata: dict[str, str] | None = None


class InvoiceParent(msgspec.Struct, frozen=True, gc=False):
    subscription_details: SubscriptionDetails | None = None


class Period(msgspec.Struct, frozen=True, gc=False):
    start: int | None = None
    end: int | None = None


class InvoiceLine(msgspec.Struct, frozen=True, gc=False):
    period: Period | None = None
    subscription: IdOrObject = None


class InvoiceLines(msgspec.Struct, frozen=True, gc=False):
    data: list[InvoiceLine] = []


class StatusTransitions(msgspec.Struct, frozen=True, gc=False):
    paid_at: int | None = None


class Invoice(msgspec.Struct, frozen=True, gc=False):
    id: str
    status: str | None = None
    customer: IdOrObject = None
    subscription: IdOrObject = None  # API < 2025-03-31
    parent: InvoiceParent | None = None  # API >= 2025-03-31
    payment_intent: IdOrObject = None  # API < 2025-03-31
    charge: IdOrObject = None  # API < 2025-03-31
    amount_paid: int = 0
    currency: str | None = None
    attempted: bool = False
    attempt_count: int = 0
    livemode: bool = False
    lines: InvoiceLines | None = None
    status_transitions: StatusTransitions | None = None


class Refund(msgspec.Struct, frozen=True, gc=False):
    created: int | None = None
    status: str | None = None


class RefundList(msgspec.Struct, frozen=True, gc=False):
    data: list[Refund] = []


class Charge(msgspec.Struct, frozen=True, gc=False):
    id: str
    amount: int = 0
    amount_refunded: int = 0
    customer: IdOrObject = None
    invoice: IdOrObject = None  # absent in current API versions
    payment_intent: IdOrObject = None
    created: int | None = None
    livemode: bool = False
    refunds: RefundList | None = None
    currency: str | None = None


class InvoicePaymentRef(msgspec.Struct, frozen=True, gc=False):
    payment_intent: IdOrObject = None
    charge: IdOrObject = None


class InvoicePayment(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    invoice: IdOrObject = None
    status: str | None = None
    payment: InvoicePaymentRef | None = None
    amount_paid: int | None = None


class InvoicePaymentList(msgspec.Struct, frozen=True, gc=False):
    data: list[InvoicePayment] = []


class SubscriptionEvent(msgspec.Struct, frozen=True, gc=False):
    object: Subscription


class CheckoutSessionEvent(msgspec.Struct, frozen=True, gc=False):
    object: CheckoutSession


class InvoiceEvent(msgspec.Struct, frozen=True, gc=False):
    object: Invoice


class ChargeEvent(msgspec.Struct, frozen=True, gc=False):
    object: Charge


class Envelope(msgspec.Struct, frozen=True, gc=False):
    id: str
    created: int | float  # ingest accepts whole seconds written 1760000000.0 (payloads.py)
    data: Any


_DATA_TYPES: dict[str, type[Any]] = {
    "customer.subscription.created": SubscriptionEvent,
    "customer.subscription.updated": SubscriptionEvent,
    "customer.subscription.deleted": SubscriptionEvent,
    "checkout.session.completed": CheckoutSessionEvent,
    "invoice.updated": InvoiceEvent,
    "charge.refunded": ChargeEvent,
}
_EVENT_DECODERS = {
    event_type: msgspec.json.Decoder(
        msgspec.defstruct(f"Envelope_{event_type}", [("data", data_type)], bases=(Envelope,))
    )
    for event_type, data_type in _DATA_TYPES.items()
}
_OBJECT_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "subscription": msgspec.json.Decoder(Subscription),
    "checkout.session": msgspec.json.Decoder(CheckoutSession),
    "invoice": msgspec.json.Decoder(Invoice),
    "charge": msgspec.json.Decoder(Charge),
    "list": msgspec.json.Decoder(InvoicePaymentList),
}

StripeObject = Subscription | CheckoutSession | Invoice | Charge


def decode_event_object(event_type: str, body: bytes) -> StripeObject | None:
    """The typed `data.object` of a stored notification (None for an unknown type)."""
    decoder = _EVENT_DECODERS.get(event_type)
    if decoder is None:
        return None
    envelope: Any = decoder.decode(body)
    obj: StripeObject = envelope.data.object
    return obj


def decode_api_object(kind: str, body: bytes) -> Any:
    """A Stripe API answer by its `object` kind ("subscription", "list", ...)."""
    return _OBJECT_DECODERS[kind].decode(body)


class _Kind(msgspec.Struct, frozen=True, gc=False):
    object: str = ""


_kind = msgspec.json.Decoder(_Kind)


def object_kind(body: bytes) -> str:
    try:
        return _kind.decode(body).object
    except msgspec.DecodeError:
        return ""


class _Named(msgspec.Struct, frozen=True, gc=False):
    id: str = ""


class _NamedData(msgspec.Struct, frozen=True, gc=False):
    object: _Named = _Named()


class _NamedEvent(msgspec.Struct, frozen=True, gc=False):
    data: _NamedData = _NamedData()


_named_event = msgspec.json.Decoder(_NamedEvent)


def lenient_object_id(body: bytes) -> str:
    """`data.object.id` of an event body, or "" when the body does not have one."""
    try:
        return _named_event.decode(body).data.object.id
    except (msgspec.DecodeError, UnicodeDecodeError):
        return ""
