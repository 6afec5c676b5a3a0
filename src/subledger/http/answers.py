"""Response bodies as msgspec structs; stored documents travel as `msgspec.Raw`.

The `*Schema` structs only describe, for the OpenAPI document, what a `Raw` field holds.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from projections.model import Unprojectable
from projections.views import AttributeEntry, Subscriber
from subledger.attributes import AttributeProblem


class ErrorBody(msgspec.Struct, frozen=True):
    """Every refusal: a code of docs/errors.md and a human message."""

    code: int
    message: str
    attribute_errors: list[AttributeProblem] | UnsetType = UNSET  # with 7263 only


class CustomerInfoAnswer(msgspec.Struct, frozen=True):
    """RevenueCat's CustomerInfoAnswer (SPEC 8): the stored document inside the request's time."""

    request_date: str
    request_date_ms: int
    subscriber: msgspec.Raw


# The stored document's shape (projections.views.Subscriber) with `subscriber_attributes`
# left out unless the caller holds the secret key.
PublicSubscriber = msgspec.defstruct(
    "PublicSubscriber",
    [
        (f.name, dict[str, Any] if f.name == "other_purchases" else f.type)
        for f in msgspec.structs.fields(Subscriber)
        if f.name != "subscriber_attributes"
    ],
    frozen=True,
)
SubscriberSchema = msgspec.defstruct(
    "Subscriber",
    [("subscriber_attributes", dict[str, AttributeEntry] | UnsetType, UNSET)],
    bases=(PublicSubscriber,),
    frozen=True,
)


class CustomerInfo(msgspec.Struct, frozen=True):
    request_date: str
    request_date_ms: int
    subscriber: SubscriberSchema  # type: ignore[valid-type]


class WebhookAnswer(msgspec.Struct, frozen=True):
    received: bool
    id: str
    duplicate: bool


class Health(msgspec.Struct, frozen=True):
    status: str


class ProjectionState(msgspec.Struct, frozen=True):
    """Where the projection stands: this process's projector, or the one it reads about."""

    position: int
    mode: str
    lag_ms_p50: int | None = None
    lag_ms_p99: int | None = None
    lag_samples: int = 0
    facts: int | UnsetType = UNSET  # an in-process projector counts what it applied
    unprojectable: int = 0  # facts the fold could not apply (docs/decisions.md)
    latest_unprojectable: Unprojectable | None = None


class DeliveryBacklog(msgspec.Struct, frozen=True):
    """Outbound deliveries not yet delivered, given up or canceled (SPEC 10)."""

    pending: int  # every pending delivery, those waiting for a retry included
    due: int  # pending and due now: waiting only for the sender
    oldest_pending_age_ms: int  # how long the longest-waiting due one has waited; 0: none


class Ready(msgspec.Struct, frozen=True):
    status: str
    store: str
    position: int
    projection: ProjectionState
    deliveries: DeliveryBacklog


class HistoryCustomer(msgspec.Struct, frozen=True):
    original_app_user_id: str | None
    aliases: list[str]
    purchases: list[str]


class HistoryChange(msgspec.Struct, frozen=True):
    field: str
    before: str | None
    after: str | None


class HistoryTransfer(msgspec.Struct, frozen=True):
    transferred_from: list[str]
    transferred_to: list[str]


class HistoryPart(msgspec.Struct, frozen=True):
    """One thing the fact did that concerns this customer."""

    what_changed: str
    ids: dict[str, str]
    changes: list[HistoryChange]
    transfer: HistoryTransfer | None


class HistoryItem(msgspec.Struct, frozen=True):
    """One fact (SPEC 9: once per fact): its parts, and their sentences, ids and changes
    joined (`what_changed`, `ids`, `changes`, the first `transfer`)."""

    position: int
    received_at: str
    stripe_created: str | None
    kind: str
    ids: dict[str, str]
    what_changed: str
    changes: list[HistoryChange]
    transfer: HistoryTransfer | None
    parts: list[HistoryPart]


class HistoryDocument(msgspec.Struct, frozen=True):
    """SPEC 9: every fact that touched the customer, in log order."""

    app_user_id: str
    customer: HistoryCustomer
    history: list[HistoryItem]
