"""App settings as the fold sees them, and what a new entitlement mapping touches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections.context import Context
from projections.tables import APPS, CUSTOMERS
from subledger import apps

if TYPE_CHECKING:
    from projections.fold import Fold


class SettingsStep:
    __deletable__ = ("fold",)  # mypyc: Fold.close() deletes it

    def __init__(self, fold: Fold) -> None:
        self.fold = fold  # Fold.close() breaks this cycle

    def apply(self, position: int, event: apps.AppEvent) -> None:
        app_id = apps.app_id_of(event.originator_id)
        state = self.fold.app(app_id)
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
                self.fold.ws.put(APPS, app_id, "", state)
                self.remap(Context(app_id, position, event.received_at_ms, "settings", None), old)
                return
            case _:
                return
        self.fold.ws.put(APPS, app_id, "", state)

    def remap(self, ctx: Context, old: dict[str, tuple[str, ...]]) -> None:
        """A new entitlement mapping touches every customer holding an affected product."""
        new = self.fold.app(ctx.app_id).entitlements
        changed = {e for e in {*old, *new} if old.get(e) != new.get(e)}
        products = {p for e in changed for p in (*old.get(e, ()), *new.get(e, ()))}
        mapping = "; ".join(f"{e}={','.join(new[e])}" for e in sorted(new)) or "empty"
        for customer_id in self.fold.ws.ids(CUSTOMERS, ctx.app_id):
            customer = self.fold.customer(ctx.app_id, customer_id)
            if customer is None:
                continue
            held = {self.product_of(ctx.app_id, key) for key in customer.purchases}
            if held & products:
                self.fold.touched.add((ctx.app_id, customer.id))
                text = f"entitlement mapping changed ({mapping})"
                self.fold.record(ctx.app_id, [customer.id], ctx.entry(text, {"app": ctx.app_id}))

    def product_of(self, app_id: str, key: str) -> str | None:
        p = self.fold.purchase(app_id, key)
        if p is None:
            return None
        if p.subs:
            return p.subs[-1].product
        return p.session.product if p.session else None


READ_KINDS = ("subscription", "checkout.session", "invoice", "charge")
