"""What each console page shows, read from the live read models (blocking: run through
`Service.read`). Every read names the signed-in app: another app's rows are never found."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from projections.deliveries import DeliveryReader
from projections.history import history_document
from projections.model import Purchase
from projections.reader import Reader
from projections.rules.dates import iso, iso_ms

PAGE_SIZE = 250  # timeline entries per page


class Hit(msgspec.Struct, frozen=True):
    kind: str  # customer | purchase
    id: str
    note: str


def search(reader: Reader, app_id: str, query: str) -> list[Hit]:
    """Customers and purchases an id names: an App User ID or alias, a purchase's `sub_`
    or `cs_` id, or any Stripe id (`cus_`, `in_`, `ch_`, …) a fact noted."""
    query = query.strip()
    if not query:
        return []
    hits: dict[tuple[str, str], Hit] = {}
    if reader.customer_id(app_id, query) is not None:
        hits["customer", query] = Hit(kind="customer", id=query, note="App User ID or alias")
    subjects = [reader.linked_purchase(app_id, query)]
    subjects += reader.purchases_mentioning(app_id, query)
    for subject in dict.fromkeys(subjects):
        purchase = reader.purchase(app_id, subject)
        if purchase is not None:
            hits["purchase", purchase.key] = Hit(
                kind="purchase", id=purchase.key, note=f"{purchase.kind} purchase"
            )
            if purchase.owner:
                hits.setdefault(
                    ("customer", purchase.owner),
                    Hit(kind="customer", id=purchase.owner, note=f"owner of {purchase.key}"),
                )
        elif reader.customer_id(app_id, subject) is not None:
            hits.setdefault(
                ("customer", subject), Hit(kind="customer", id=subject, note=f"mentions {query}")
            )
    return list(hits.values())


def _pretty(raw: str | None) -> str | None:
    return None if raw is None else json.dumps(json.loads(raw), indent=2, sort_keys=True)


def customer_page(reader: Reader, app_id: str, app_user_id: str, page: int) -> dict[str, Any]:
    """The document now and one page of the timeline (SPEC 9), or {} for no such customer."""
    customer = reader.customer(app_id, app_user_id)
    if customer is None:
        return {}
    history = history_document(reader.customer_history(app_id, app_user_id))
    entries = history["history"]
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    return {
        "customer": history["customer"],
        "document": _pretty(reader.document(app_id, app_user_id)),
        "entries": entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "positions": [e["position"] for e in entries],
        "count": len(entries),
        "page": page,
        "pages": pages,
    }


def _snapshot(obs: Any) -> dict[str, Any]:
    shown = msgspec.to_builtins(msgspec.structs.asdict(obs))
    created, precedence, event = obs.order
    return {
        "created": iso(created),
        "precedence": precedence,
        "event": event,
        "position": obs.position,
        "fields": {k: v for k, v in shown.items() if k not in ("order", "position")},
    }


def purchase_page(reader: Reader, app_id: str, key: str) -> dict[str, Any]:
    """Snapshots in merge order with the winner (the last: SPEC 7.1), the facts that wait
    for a token, and the owners over time from the purchase's history."""
    purchase: Purchase | None = reader.purchase(app_id, reader.linked_purchase(app_id, key))
    if purchase is None:
        return {}
    entries = reader.history(app_id, [purchase.key, *purchase.sessions])
    owners = [
        {"position": e.position, "at": iso_ms(e.received_at_ms), "text": part.text}
        for e in entries
        for part in e.parts
        if part.transfer is not None or any(c.field == "owner" for c in part.changes)
    ]
    return {
        "purchase": purchase,
        "known_at": iso(purchase.known_at),
        "snapshots": [_snapshot(obs) for obs in purchase.subs],
        "session": None if purchase.session is None else _snapshot(purchase.session),
        "invoices": [_snapshot(obs) for obs in purchase.invoices.values()],
        "waiting": list(purchase.waiting),
        "owners": owners,
        "entries": entries,
    }


def delivery_rows(reader: Reader, app_id: str, status: str | None) -> list[dict[str, Any]]:
    """Deliveries, newest event first, each with its attempts (SPEC 10)."""
    found = [d for _, d in DeliveryReader(reader).deliveries(app_id, status=status, limit=200)]
    return [
        {
            "delivery": d,
            "due": iso_ms(d.due_ms) if d.due_ms is not None else None,
            "attempts": [{"attempt": a, "at": iso_ms(a.at_ms)} for a in d.attempts],
        }
        for d in found
    ]


def delivery_exists(reader: Reader, app_id: str, integration_id: str, event_id: str) -> bool:
    return DeliveryReader(reader).delivery(app_id, integration_id, event_id) is not None
