"""Who holds a purchase: detection (SPEC 7.3), transfer behaviour and aliases (SPEC 7.4)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from projections.model import AppState, Attribute, Customer, Purchase
from subledger.facts import AttributeValue
from subledger.identity import anonymous_id, is_anonymous, is_valid_app_user_id

OWNED, UNCHANGED, ALIASED, TRANSFERRED, REFUSED = (
    "owned",
    "unchanged",
    "aliased",
    "transferred",
    "refused",
)


def detect_owner(
    app: AppState,
    app_id: str,
    key: str,
    *,
    customer: str | None,
    subscription_metadata: Mapping[str, str],
    session_metadata: Mapping[str, str],
) -> tuple[str, str]:
    """(App User ID, how) for a purchase a notification created; guests get anonymous ids."""
    if app.detection == "stripe_customer_id" and customer and is_valid_app_user_id(customer):
        return customer, "the Stripe customer id"
    if app.detection == "metadata":
        for source, metadata in (
            ("subscription", subscription_metadata),
            ("checkout session", session_metadata),
        ):
            found = metadata.get(app.metadata_key)
            if found and is_valid_app_user_id(found):
                return found, f"{source} metadata[{app.metadata_key}]"
    return anonymous_id(app_id, key), "an anonymous id"


def detect_purchase_owner(app: AppState, app_id: str, p: Purchase) -> tuple[str, str]:
    """The owner detection gives purchase `p`. The subscription's metadata is taken from its
    oldest snapshot naming a valid user (not the newest): an update that clears the
    metadata must give the same owner whether it arrived before `created` (and waited)
    or after it."""
    latest = p.subs[-1] if p.subs else None
    session = p.session
    naming = next(
        (o for o in p.subs if is_valid_app_user_id(o.metadata.get(app.metadata_key, ""))),
        latest,
    )
    return detect_owner(
        app,
        app_id,
        p.key,
        customer=(latest.customer if latest else None) or (session.customer if session else None),
        subscription_metadata=naming.metadata if naming else {},
        session_metadata=session.metadata if session else {},
    )


def decide(
    app_user_id: str, owner: Customer | None, behavior: str, *, purchase_active: bool
) -> str:
    """What a token does to ownership, applied in log order."""
    if owner is None:
        return OWNED
    if app_user_id in owner.ids:
        return UNCHANGED
    if all(is_anonymous(i) for i in owner.ids):
        return ALIASED
    if behavior == "transfer" or (behavior == "transfer_if_no_active" and not purchase_active):
        return TRANSFERRED
    return REFUSED


def decide_identify(
    current: str, new: str, source: Customer | None, target: Customer | None
) -> str:
    """What identifying `current` (its customer: `source`) as `new` (its customer:
    `target`) does, by RevenueCat's logIn rules (SPEC 5), applied in log order: an
    anonymous-only current customer is aliased with the new id unless that id already has
    an anonymous alias of its own; otherwise the current customer's purchases move."""
    if current == new or (source is not None and target is not None and source.id == target.id):
        return UNCHANGED
    ids = source.ids if source is not None else (current,)
    if all(is_anonymous(i) for i in ids) and (
        target is None or not any(is_anonymous(i) for i in target.ids)
    ):
        return ALIASED
    return UNCHANGED if source is None else TRANSFERRED


def new_customer(app_user_id: str, position: int, received_at_ms: int) -> Customer:
    return Customer(
        id=app_user_id,
        ids=(app_user_id,),
        since=(position,),
        first_seen_ms=received_at_ms,
        last_seen_ms=received_at_ms,
    )


def merge(a: Customer, b: Customer) -> Customer:
    """One customer from two: ids in log order (the first is canonical), purchases united,
    for each attribute the later `updated_at_ms` wins (ties: the canonical side)."""
    pairs = sorted({*zip(a.since, a.ids, strict=True), *zip(b.since, b.ids, strict=True)})
    first, second = (a, b) if pairs[0][1] in a.ids else (b, a)
    attributes = dict(second.attributes)
    for k, attr in first.attributes.items():
        other = attributes.get(k)
        if other is None or attr.updated_at_ms >= other.updated_at_ms:
            attributes[k] = attr
    deleted = {**second.deleted, **first.deleted}
    for k, at in second.deleted.items():
        deleted[k] = max(at, deleted[k])
    return Customer(
        id=pairs[0][1],
        ids=tuple(i for _, i in pairs),
        since=tuple(p for p, _ in pairs),
        purchases=tuple(sorted({*a.purchases, *b.purchases})),
        owned=tuple(sorted({*a.owned, *b.owned})),
        first_seen_ms=min(a.first_seen_ms, b.first_seen_ms),
        last_seen_ms=max(a.last_seen_ms, b.last_seen_ms),
        attributes={k: v for k, v in attributes.items() if deleted.get(k, -1) < v.updated_at_ms},
        deleted=deleted,
    )


def with_purchase(c: Customer, key: str) -> Customer:
    return msgspec.structs.replace(
        c,
        purchases=tuple(sorted({*c.purchases, key})),
        owned=tuple(sorted({*c.owned, key})),
    )


def without_purchase(c: Customer, key: str) -> Customer:
    return msgspec.structs.replace(c, purchases=tuple(p for p in c.purchases if p != key))


def seen(c: Customer, received_at_ms: int) -> Customer:
    return msgspec.structs.replace(
        c,
        first_seen_ms=min(c.first_seen_ms, received_at_ms),
        last_seen_ms=max(c.last_seen_ms, received_at_ms),
    )


def apply_attributes(
    c: Customer, posted: Mapping[str, AttributeValue], received_at_ms: int
) -> tuple[Customer, list[str]]:
    """Newer-wins per key; `null` or "" deletes; an older `updated_at_ms` is ignored."""
    attributes = dict(c.attributes)
    deleted = dict(c.deleted)
    changed: list[str] = []
    for key, posted_value in sorted(posted.items()):
        at = (
            posted_value.updated_at_ms if posted_value.updated_at_ms is not None else received_at_ms
        )
        current = attributes.get(key)
        newest = max(current.updated_at_ms if current else -1, deleted.get(key, -1))
        if at < newest:
            continue
        if posted_value.value in (None, ""):
            if current is not None or key not in deleted:
                changed.append(key)
            attributes.pop(key, None)
            deleted[key] = at
        else:
            value = posted_value.value
            assert value is not None
            if current is None or current.value != value or current.updated_at_ms != at:
                changed.append(key)
            attributes[key] = Attribute(value=value, updated_at_ms=at)
            deleted.pop(key, None)
    return msgspec.structs.replace(c, attributes=attributes, deleted=deleted), changed


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


def is_placeholder(c: Customer, detected: str, key: str) -> bool:
    """Only the id detection gave `key`'s purchase: no other id, purchase, attribute or
    deletion has made it a customer of its own."""
    return (
        c.ids == (detected,)
        and c.purchases == (key,)
        and c.owned == (key,)
        and not c.attributes
        and not c.deleted
    )


def creates_identity(p: Purchase, app: AppState) -> bool:
    """Could this snapshot name the user behind an anonymous, notification-created owner?"""
    return (
        p.known_by == "tracking"
        and p.owner is not None
        and is_anonymous(p.owner)
        and app.detection != "anonymous"
    )
