"""Who holds a purchase, step by step in log order: tokens, detection, aliases, transfers
(SPEC 7.3, 7.4). The rules themselves are pure functions in rules/ownership.py."""

from __future__ import annotations

import msgspec

from projections.fold.context import Context
from projections.fold.customers import alias, ensure_customer
from projections.fold.state import Batch
from projections.model import (
    LINKS,
    PURCHASES,
    TOKENS,
    AppState,
    Change,
    Customer,
    Purchase,
    TokenOutcome,
    Transfer,
)
from projections.rules.explain import describe_view_change, view_changes
from projections.rules.ownership import (
    ALIASED,
    OWNED,
    TRANSFERRED,
    apply_attributes,
    decide,
    decide_identify,
    detect_purchase_owner,
    is_placeholder,
    new_customer,
    outcome_text,
    seen,
    with_purchase,
    without_purchase,
)
from subledger.facts import TokenPosted, UserIdentified
from subledger.identity import anonymous_id, is_anonymous


def token(b: Batch, ctx: Context, fact: TokenPosted) -> None:
    """An app backend says `app_user_id` bought `fetch_token` (SPEC 4, 7.4)."""
    key = resolve(b, fact.app_id, fact.fetch_token)
    customer = ensure_customer(b, ctx, fact.app_user_id)
    if fact.attributes:
        customer, _ = apply_attributes(customer, fact.attributes, fact.received_at_ms)
    b.save_customer(fact.app_id, customer)
    p = b.purchase(fact.app_id, key) or Purchase(key=key)
    if p.kind == "unknown" and key.startswith("sub_"):
        # Also when an invoice came first and made the purchase without a kind.
        p = msgspec.structs.replace(p, kind="subscription")
    became_known = p.known_at is None
    if became_known:
        p = msgspec.structs.replace(p, known_at=ctx.position, known_by="token")
    p, outcome, message = take(b, ctx, p, fact.app_user_id)
    if key.startswith("cs_") and p.owner == fact.app_user_id:
        p = msgspec.structs.replace(p, claimed_at_ms=fact.received_at_ms)
    if fact.presented_offering_identifier and p.owner == fact.app_user_id:
        p = msgspec.structs.replace(p, offering=fact.presented_offering_identifier)
    b.save_purchase(fact.app_id, p)
    b.rows.put(
        TOKENS,
        fact.app_id,
        fact.originator_id.hex,
        TokenOutcome(
            position=ctx.position,
            app_user_id=fact.app_user_id,
            fetch_token=fact.fetch_token,
            purchase=key,
            outcome=outcome,
            message=message,
        ),
    )
    ids = {"app_user_id": fact.app_user_id, "purchase": key, "token": fact.fetch_token}
    text = message
    changes: tuple[Change, ...] = ()
    if outcome in (OWNED, TRANSFERRED, ALIASED):
        # What the customer gains: for a purchase whose notifications came first, the
        # token is where access starts.
        gained = b.view(p)
        if gained is not None:
            text += "; " + describe_view_change(key, None, gained, b.app(fact.app_id).entitlements)
            changes = view_changes(None, gained)
    b.note([fact.app_user_id, key, fact.fetch_token], text, ids, changes)
    if became_known:
        record_applied(b, ctx, p)


def user_identified(b: Batch, ctx: Context, fact: UserIdentified) -> None:
    """SPEC 5's identify (RevenueCat's logIn), in log order: alias the two ids, or hand the
    current customer's purchases to the new id; one history part either way."""
    current, new = fact.app_user_id, fact.new_app_user_id
    source = b.customer_of(ctx.app_id, current)
    target = b.customer_of(ctx.app_id, new)
    outcome = decide_identify(current, new, source, target)
    claimant = seen(ensure_customer(b, ctx, new), fact.received_at_ms)
    who = f"anonymous id {current}" if is_anonymous(current) else current
    text = f"{who} identified as {new}: "
    moved: Transfer | None = None
    if outcome == ALIASED:
        giver = source or new_customer(current, ctx.position, fact.received_at_ms)
        text += f"aliased ({', '.join(alias(b, ctx.app_id, giver, claimant).ids)})"
    elif outcome == TRANSFERRED and source is not None:
        said, any_moved = hand_over(b, ctx, source, claimant, new)
        text += said
        if any_moved:
            moved = Transfer(transferred_from=source.ids, transferred_to=claimant.ids)
    else:
        b.save_customer(ctx.app_id, claimant)
        text += "already one customer" if source else f"{current} holds nothing to carry over"
        text += ": no change"
    subjects = [*(source.ids if source else (current,)), *claimant.ids]
    ids = {"app_user_id": current, "new_app_user_id": new}
    b.note(subjects, text, ids, transfer=moved)


def hand_over(
    b: Batch, ctx: Context, source: Customer, claimant: Customer, new: str
) -> tuple[str, bool]:
    """Move `source`'s purchases to `new`'s customer: all of them from an anonymous-only
    customer, else as `transfer_behavior` allows (SPEC 7.4); (what moved, whether any)."""
    behavior = b.app(ctx.app_id).transfer_behavior
    anonymous = all(is_anonymous(i) for i in source.ids)
    giver = source
    moved: list[Purchase] = []
    kept: list[str] = []
    for key in source.purchases:
        p = b.purchase(ctx.app_id, key)
        view = b.subscription_view(p) if p is not None else None
        active = bool(view and view.expires_date and view.expires_date * 1000 > ctx.received_at_ms)
        allowed = anonymous or decide(new, source, behavior, purchase_active=active) == TRANSFERRED
        if p is None or not allowed:
            kept.append(key)
            continue
        moved.append(p)
        giver, claimant = without_purchase(giver, key), with_purchase(claimant, key)
    b.save_customer(ctx.app_id, giver)
    b.save_customer(ctx.app_id, claimant)
    for p in moved:
        b.save_purchase(ctx.app_id, msgspec.structs.replace(p, owner=new))
    keys = ", ".join(p.key for p in moved) or "no purchase"
    text = f"{keys} transferred from {', '.join(source.ids)} to {', '.join(claimant.ids)}"
    return text + (f"; {', '.join(kept)} kept by {behavior}" if kept else ""), bool(moved)


def resolve(b: Batch, app_id: str, token: str) -> str:
    """A subscription-mode Checkout Session stands for the subscription it created."""
    if not token.startswith("cs_"):
        return token
    return b.linked(app_id, token) or token


def take(
    b: Batch, ctx: Context, p: Purchase, app_user_id: str, claimed_at_ms: int | None = None
) -> tuple[Purchase, str, str]:
    """Apply SPEC 7.4 for `app_user_id` claiming `p` (at `claimed_at_ms`, by default when
    this fact was received): (purchase, outcome, sentence)."""
    app = b.app(ctx.app_id)
    owner = b.customer_of(ctx.app_id, p.owner)
    view = b.subscription_view(p)
    at_ms = ctx.received_at_ms if claimed_at_ms is None else claimed_at_ms
    active = bool(view and view.expires_date and view.expires_date * 1000 > at_ms)
    outcome = decide(app_user_id, owner, app.transfer_behavior, purchase_active=active)
    message = outcome_text(outcome, app_user_id, p.key, owner, app.transfer_behavior)
    claimant = ensure_customer(b, ctx, app_user_id)
    if outcome == OWNED:
        b.save_customer(ctx.app_id, with_purchase(claimant, p.key))
        p = msgspec.structs.replace(p, owner=app_user_id)
    elif outcome == ALIASED and owner is not None:
        alias(b, ctx.app_id, owner, claimant)
    elif outcome == TRANSFERRED and owner is not None:
        b.save_customer(ctx.app_id, without_purchase(owner, p.key))
        b.save_customer(ctx.app_id, with_purchase(claimant, p.key))
        p = msgspec.structs.replace(p, owner=app_user_id)
        text = f"{p.key} transferred from {', '.join(owner.ids)} to {', '.join(claimant.ids)}"
        ids = {"purchase": p.key, "from": owner.id, "to": app_user_id}
        moved = Transfer(transferred_from=owner.ids, transferred_to=claimant.ids)
        b.note([*owner.ids, *claimant.ids], text, ids, transfer=moved)
    return p, outcome, message


def claim_by_detection(b: Batch, ctx: Context, p: Purchase, app: AppState) -> Purchase:
    """A notification made a purchase known (`track_new_purchases`): detection names its
    owner (SPEC 7.3)."""
    owner, how = detect_purchase_owner(app, ctx.app_id, p)
    p = msgspec.structs.replace(p, known_at=ctx.position, known_by="tracking")
    p, _, _ = take(b, ctx, p, owner)
    text = f"{p.key} tracked from a notification; owner {owner} detected from {how}"
    b.note([p.key, owner], text, {"purchase": p.key, "owner": owner})
    record_applied(b, ctx, p)
    return p


def identify_from_snapshot(b: Batch, ctx: Context, p: Purchase, app: AppState) -> Purchase:
    """A tracked purchase fell back to an anonymous owner; a later snapshot names the user
    (e.g. the Checkout Session's metadata).

    If that anonymous owner is only the placeholder detection made for this purchase, the
    user replaces it: the result is what the opposite arrival order gives, where the naming
    snapshot came first. Otherwise (the anonymous customer has become more than a
    placeholder) they are aliased, as a token would."""
    detected, how = detect_purchase_owner(app, ctx.app_id, p)
    owner = b.customer_of(ctx.app_id, p.owner)
    if is_anonymous(detected) or (owner is not None and detected in owner.ids):
        return p
    text = f"{detected} detected from {how}: "
    ids = {"purchase": p.key, "owner": detected}
    subjects = [p.key, detected]
    unowned = drop_placeholder(b, ctx, p, anonymous_id(ctx.app_id, p.key))
    if unowned is not None:  # so the detected user simply owns it
        p, dropped = unowned, anonymous_id(ctx.app_id, p.key)
        text += f"replaces the placeholder owner {dropped}; "
        ids["placeholder"] = dropped
        subjects.append(dropped)
    p, _, message = take(b, ctx, p, detected)
    b.note(subjects, text + message, ids)
    return p


def record_applied(b: Batch, ctx: Context, p: Purchase) -> None:
    """The facts that waited for this purchase to become known apply now (SPEC 7.2)."""
    for waited in p.waiting:
        text = f"waited since position {waited} for a token, applied at position {ctx.position}"
        b.note([p.key], text, {"purchase": p.key, "waited": str(waited)})


def link_session(b: Batch, ctx: Context, session_id: str, subscription_id: str) -> None:
    """A subscription-mode session becomes an alias of its subscription; a token posted
    for the session before we knew this is carried over to the subscription."""
    if b.linked(ctx.app_id, session_id) is not None:
        return
    b.rows.put(LINKS, ctx.app_id, session_id, subscription_id)
    target = b.purchase(ctx.app_id, subscription_id) or Purchase(key=subscription_id)
    sessions = tuple(sorted({*target.sessions, session_id}))
    target = msgspec.structs.replace(target, sessions=sessions, kind="subscription")
    placeholder = b.purchase(ctx.app_id, session_id)
    if placeholder is not None:
        b.rows.put(PURCHASES, ctx.app_id, session_id, None)
        holder = b.customer_of(ctx.app_id, placeholder.owner)
        if holder is not None:
            b.save_customer(ctx.app_id, without_purchase(holder, session_id))
        if placeholder.known_at is not None and target.known_at is None:
            target = msgspec.structs.replace(target, known_at=ctx.position, known_by="token")
            record_applied(b, ctx, target)
        if placeholder.owner is not None:
            target = _claim_for_session(b, ctx, target, placeholder, session_id)
    b.save_purchase(ctx.app_id, target)


def _claim_for_session(
    b: Batch, ctx: Context, target: Purchase, placeholder: Purchase, session_id: str
) -> Purchase:
    """The `cs_` token's user claims the subscription, as of when the token was posted."""
    assert placeholder.owner is not None
    text = f"checkout session {session_id} is subscription {target.key}: "
    ids = {"session": session_id, "purchase": target.key}
    subjects = [session_id, target.key]
    dropped = target.owner
    unowned = undo_later_detection(b, ctx, target, placeholder)
    if unowned is not None and dropped is not None:
        target = unowned
        text += f"the token came first, so it replaces detection's owner {dropped}; "
        ids["replaced"] = dropped
        subjects.append(dropped)
    target, _, message = take(b, ctx, target, placeholder.owner, placeholder.claimed_at_ms)
    b.note(subjects, text + message, ids)
    return target


def undo_later_detection(
    b: Batch, ctx: Context, target: Purchase, placeholder: Purchase
) -> Purchase | None:
    """A `cs_` token came before its subscription was tracked from a notification, but the
    session that links the two arrived after: detection gave the subscription an owner the
    opposite order never creates. If that owner is still nothing but detection's
    placeholder for this purchase, it goes, and the token's user claims as if first:
    `target` without an owner, or None."""
    if target.known_by != "tracking" or target.owner is None:
        return None
    if placeholder.known_at is None or target.known_at is None:
        return None
    if placeholder.known_at >= target.known_at:
        return None
    return drop_placeholder(b, ctx, target, target.owner)


def drop_placeholder(b: Batch, ctx: Context, p: Purchase, detected: str) -> Purchase | None:
    """If `p`'s owner is only the customer detection made of `detected` for it, delete that
    customer (and its document) and return `p` without an owner; else None."""
    owner = b.customer_of(ctx.app_id, p.owner)
    if owner is None or not is_placeholder(owner, detected, p.key):
        return None
    b.drop_customer(ctx.app_id, owner.id, user_too=True)
    return msgspec.structs.replace(p, owner=None)
