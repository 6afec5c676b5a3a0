"""A Stripe snapshot merged into its purchase: known purchases change, unknown ones keep it
and wait for a token (SPEC 7.1, 7.2)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from projections.fold.claims import claim_by_detection, identify_from_snapshot
from projections.fold.context import Context
from projections.fold.state import Batch
from projections.model import Purchase
from projections.rules.explain import describe_view_change, view_changes
from projections.rules.ownership import creates_identity

Merge = Callable[[Purchase], Purchase]


def observe(b: Batch, ctx: Context, key: str, merge: Merge, *, creates: bool) -> Purchase:
    """Merge a snapshot into purchase `key` (`merge` is a pure rule); `creates`: the
    notification may make an unknown purchase known under `track_new_purchases`."""
    p = b.purchase(ctx.app_id, key) or Purchase(key=key)
    before = b.view(p)
    changed = merge(p)
    app = b.app(ctx.app_id)
    ids = {"purchase": key}
    if changed.known_at is None:
        if not (creates and app.track_new_purchases):
            changed = msgspec.structs.replace(changed, waiting=(*changed.waiting, ctx.position))
            b.save_purchase(ctx.app_id, changed)
            b.note([key], f"{key} is not known yet: waits for a token", ids)
            return changed
        changed = claim_by_detection(b, ctx, changed, app)
    elif creates_identity(changed, app):
        changed = identify_from_snapshot(b, ctx, changed, app)
    elif changed == p:
        b.note([key], f"{key}: older or repeated snapshot, state unchanged", ids)
        return p
    b.save_purchase(ctx.app_id, changed)
    after = b.view(changed)
    text = describe_view_change(key, before, after, app.entitlements)
    b.note([key], text, ids, view_changes(before, after))
    return changed
