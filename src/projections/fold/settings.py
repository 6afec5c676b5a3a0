"""App settings as the fold sees them (SPEC 2: a rebuild applies the settings in force at each
fact), and the customers a new entitlement mapping touches."""

from __future__ import annotations

import msgspec

from projections.fold.context import Context
from projections.fold.deliveries import integration_removed
from projections.fold.state import Batch
from projections.model import APPS, CUSTOMERS, IntegrationState
from subledger import apps
from subledger.integrations import Integration


def settings(b: Batch, ctx: Context, event: apps.AppEvent) -> None:
    state = b.app(ctx.app_id)
    match event:
        case apps.AppCreated(config=c) | apps.AppSettingsChanged(config=c):
            state = msgspec.structs.replace(
                state,
                track_new_purchases=c.track_new_purchases,
                detection=c.app_user_id_detection,
                metadata_key=c.metadata_key,
                transfer_behavior=c.transfer_behavior,
            )
            b.rows.put(APPS, ctx.app_id, "", state)
        case apps.EntitlementsMapped(entitlements=mapping):
            old = state.entitlements
            state = msgspec.structs.replace(
                state, entitlements={k: tuple(v) for k, v in mapping.items()}
            )
            b.rows.put(APPS, ctx.app_id, "", state)
            remap(b, ctx, old)
        case apps.IntegrationAdded(integration=added):
            kept = tuple(i for i in state.integrations if i.id != added.id)
            state = msgspec.structs.replace(state, integrations=(*kept, _filters(added)))
            b.rows.put(APPS, ctx.app_id, "", state)
        case apps.IntegrationChanged(integration=changed):
            # Filters apply to events derived from here on; what is queued stays queued.
            kept = tuple(_filters(changed) if i.id == changed.id else i for i in state.integrations)
            b.rows.put(APPS, ctx.app_id, "", msgspec.structs.replace(state, integrations=kept))
        case apps.IntegrationRemoved(integration_id=gone):
            kept = tuple(i for i in state.integrations if i.id != gone)
            b.rows.put(APPS, ctx.app_id, "", msgspec.structs.replace(state, integrations=kept))
            integration_removed(b, ctx, gone)
        case _:
            pass


def _filters(integration: Integration) -> IntegrationState:
    return IntegrationState(
        id=integration.id,
        event_types=integration.event_types,
        environment=integration.environment,
    )


def remap(b: Batch, ctx: Context, old: dict[str, tuple[str, ...]]) -> None:
    """A new entitlement mapping touches every customer holding an affected product."""
    new = b.app(ctx.app_id).entitlements
    changed = {e for e in {*old, *new} if old.get(e) != new.get(e)}
    products = {p for e in changed for p in (*old.get(e, ()), *new.get(e, ()))}
    mapping = "; ".join(f"{e}={','.join(new[e])}" for e in sorted(new)) or "empty"
    for customer_id in b.rows.ids(CUSTOMERS, ctx.app_id):
        customer = b.customer(ctx.app_id, customer_id)
        if customer is None:
            continue
        held = {product_of(b, ctx.app_id, key) for key in customer.purchases}
        if held & products:
            b.touched.add((ctx.app_id, customer.id))
            text = f"entitlement mapping changed ({mapping})"
            b.note([customer.id], text, {"app": ctx.app_id})


def product_of(b: Batch, app_id: str, key: str) -> str | None:
    p = b.purchase(app_id, key)
    if p is None:
        return None
    if p.subs:
        return p.subs[-1].product
    return p.session.product if p.session else None
