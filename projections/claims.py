"""Who holds a purchase, step by step in log order: tokens, detection, aliases, transfers
(SPEC 7.3, 7.4). The rules themselves are pure functions in ownership.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections.context import Context
from projections.explain import describe_view_change, view_changes
from projections.model import AppState, Change, Customer, Purchase, TokenOutcome, Transfer
from projections.ownership import (
    ALIASED,
    OWNED,
    REFUSED,
    TRANSFERRED,
    UNCHANGED,
    apply_attributes,
    decide,
    decide_identify,
    detect_owner,
    merge,
    new_customer,
    seen,
    with_purchase,
    without_purchase,
)
from projections.tables import CUSTOMERS, LINKS, PURCHASES, TOKENS, USERS
from subledger.facts import TokenPosted, UserIdentified
from subledger.identity import anonymous_id, is_anonymous, is_valid_app_user_id

if TYPE_CHECKING:
    from projections.fold import Fold

API_KINDS = ("token", "attributes")  # facts a client posted, as opposed to Stripe's


class Claims:
    __deletable__ = ("fold",)  # mypyc: Fold.close() deletes it

    def __init__(self, fold: Fold) -> None:
        self.fold = fold  # Fold.close() breaks this cycle

    def claim_by_detection(self, ctx: Context, p: Purchase, app: AppState) -> Purchase:
        owner, how = self.detect(ctx, p, app)
        p = msgspec.structs.replace(p, known_at=ctx.position, known_by="tracking")
        p, _, _ = self.take(ctx, p, owner)
        text = f"{p.key} tracked from a notification; owner {owner} detected from {how}"
        self.fold.record(
            ctx.app_id, [p.key, owner], ctx.entry(text, {"purchase": p.key, "owner": owner})
        )
        self.record_applied(ctx, p)
        return p

    def detect(self, ctx: Context, p: Purchase, app: AppState) -> tuple[str, str]:
        """The owner detection gives `p`. The subscription's metadata is taken from its
        oldest snapshot naming a valid user (not the newest): an update that clears the
        metadata must give the same owner whether it arrived before `created` (and waited)
        or after it (decision 45)."""
        latest = p.subs[-1] if p.subs else None
        session = p.session
        naming = next(
            (o for o in p.subs if is_valid_app_user_id(o.metadata.get(app.metadata_key, ""))),
            latest,
        )
        return detect_owner(
            app,
            ctx.app_id,
            p.key,
            customer=(latest.customer if latest else None)
            or (session.customer if session else None),
            subscription_metadata=naming.metadata if naming else {},
            session_metadata=session.metadata if session else {},
        )

    def identify(self, ctx: Context, p: Purchase, app: AppState) -> Purchase:
        """A tracked purchase fell back to an anonymous owner; a later snapshot names the
        user (e.g. the Checkout Session's metadata).

        If that anonymous owner is only the placeholder detection made for this purchase,
        the user replaces it: the result is what the opposite arrival order gives, where
        the naming snapshot came first (decision 44). Otherwise (the anonymous customer has
        become more than a placeholder) they are aliased, as a token would."""
        detected, how = self.detect(ctx, p, app)
        owner = self.fold.customer_of(ctx.app_id, p.owner)
        if is_anonymous(detected) or (owner is not None and detected in owner.ids):
            return p
        text = f"{detected} detected from {how}: "
        ids = {"purchase": p.key, "owner": detected}
        subjects = [p.key, detected]
        unowned = self.drop_placeholder(ctx, p, anonymous_id(ctx.app_id, p.key))
        if unowned is not None:  # so the detected user simply owns it
            p, dropped = unowned, anonymous_id(ctx.app_id, p.key)
            text += f"replaces the placeholder owner {dropped}; "
            ids["placeholder"] = dropped
            subjects.append(dropped)
        p, _, message = self.take(ctx, p, detected)
        self.fold.record(ctx.app_id, subjects, ctx.entry(text + message, ids))
        return p

    def record_applied(self, ctx: Context, p: Purchase) -> None:
        for waited in p.waiting:
            text = f"waited since position {waited} for a token, applied at position {ctx.position}"
            self.fold.record(
                ctx.app_id, [p.key], ctx.entry(text, {"purchase": p.key, "waited": str(waited)})
            )

    def resolve(self, app_id: str, token: str) -> str:
        """A subscription-mode Checkout Session stands for the subscription it created."""
        if not token.startswith("cs_"):
            return token
        linked: str | None = self.fold.ws.get(LINKS, app_id, token)
        return linked or token

    def ensure_customer(self, ctx: Context, app_user_id: str) -> Customer:
        """The customer of `app_user_id`, created if new. Only the API's own facts (tokens,
        attribute posts) make an existing customer "seen" (decision 18): a notification's
        receive time would make `last_seen` depend on Stripe's delivery order."""
        found = self.fold.customer_of(ctx.app_id, app_user_id)
        if found is None:
            return new_customer(app_user_id, ctx.position, ctx.received_at_ms)
        return seen(found, ctx.received_at_ms) if ctx.kind in API_KINDS else found

    def token(self, position: int, fact: TokenPosted) -> None:
        ctx = Context(fact.app_id, position, fact.received_at_ms, "token", None)
        key = self.resolve(fact.app_id, fact.fetch_token)
        customer = self.ensure_customer(ctx, fact.app_user_id)
        if fact.attributes:
            customer, _ = apply_attributes(customer, fact.attributes, fact.received_at_ms)
        self.fold.save_customer(fact.app_id, customer)
        p = self.fold.purchase(fact.app_id, key) or Purchase(key=key)
        if p.kind == "unknown" and key.startswith("sub_"):
            # Also when an invoice came first and made the purchase without a kind.
            p = msgspec.structs.replace(p, kind="subscription")
        became_known = p.known_at is None
        if became_known:
            p = msgspec.structs.replace(p, known_at=position, known_by="token")
        p, outcome, message = self.take(ctx, p, fact.app_user_id)
        if key.startswith("cs_") and p.owner == fact.app_user_id:
            p = msgspec.structs.replace(p, claimed_at_ms=fact.received_at_ms)
        self.fold.save_purchase(fact.app_id, p)
        self.fold.ws.put(
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
        text = message
        changes: tuple[Change, ...] = ()
        if outcome in (OWNED, TRANSFERRED, ALIASED):
            # What the customer gains: for a purchase whose notifications came first, the
            # token is where access starts (decision 45).
            gained = self.fold.view(p)
            if gained is not None:
                app = self.fold.app(fact.app_id)
                text += "; " + describe_view_change(key, None, gained, app.entitlements)
                changes = view_changes(None, gained)
        self.fold.record(
            fact.app_id, [fact.app_user_id, key, fact.fetch_token], ctx.entry(text, ids, changes)
        )
        if became_known:
            self.record_applied(ctx, p)

    def user_identified(self, position: int, fact: UserIdentified) -> None:
        """SPEC 5's identify (RevenueCat's logIn), in log order: alias the two ids, or hand
        the current customer's purchases to the new id; one history entry either way."""
        ctx = Context(fact.app_id, position, fact.received_at_ms, "identify", None)
        current, new = fact.app_user_id, fact.new_app_user_id
        source = self.fold.customer_of(ctx.app_id, current)
        target = self.fold.customer_of(ctx.app_id, new)
        outcome = decide_identify(current, new, source, target)
        claimant = seen(self.ensure_customer(ctx, new), fact.received_at_ms)
        who = f"anonymous id {current}" if is_anonymous(current) else current
        text = f"{who} identified as {new}: "
        moved: Transfer | None = None
        if outcome == ALIASED:
            giver = source or new_customer(current, position, fact.received_at_ms)
            text += f"aliased ({', '.join(self.alias(ctx.app_id, giver, claimant).ids)})"
        elif outcome == TRANSFERRED and source is not None:
            said, any_moved = self.hand_over(ctx, source, claimant, new)
            text += said
            if any_moved:
                moved = Transfer(transferred_from=source.ids, transferred_to=claimant.ids)
        else:
            self.fold.save_customer(ctx.app_id, claimant)
            text += "already one customer" if source else f"{current} holds nothing to carry over"
            text += ": no change"
        entry = ctx.entry(text, {"app_user_id": current, "new_app_user_id": new})
        ids = [*(source.ids if source else (current,)), *claimant.ids]
        self.fold.record(ctx.app_id, ids, msgspec.structs.replace(entry, transfer=moved))

    def hand_over(
        self, ctx: Context, source: Customer, claimant: Customer, new: str
    ) -> tuple[str, bool]:
        """Move `source`'s purchases to `new`'s customer: all of them from an anonymous-only
        customer, else as `transfer_behavior` allows (SPEC 7.4); (what moved, whether any)."""
        behavior = self.fold.app(ctx.app_id).transfer_behavior
        anonymous = all(is_anonymous(i) for i in source.ids)
        giver = source
        moved: list[Purchase] = []
        kept: list[str] = []
        for key in source.purchases:
            p = self.fold.purchase(ctx.app_id, key)
            view = self.fold.subscription_view(p) if p is not None else None
            active = bool(
                view and view.expires_date and view.expires_date * 1000 > ctx.received_at_ms
            )
            allowed = (
                anonymous or decide(new, source, behavior, purchase_active=active) == TRANSFERRED
            )
            if p is None or not allowed:
                kept.append(key)
                continue
            moved.append(p)
            giver, claimant = without_purchase(giver, key), with_purchase(claimant, key)
        self.fold.save_customer(ctx.app_id, giver)
        self.fold.save_customer(ctx.app_id, claimant)
        for p in moved:
            self.fold.save_purchase(ctx.app_id, msgspec.structs.replace(p, owner=new))
        keys = ", ".join(p.key for p in moved) or "no purchase"
        text = f"{keys} transferred from {', '.join(source.ids)} to {', '.join(claimant.ids)}"
        return text + (f"; {', '.join(kept)} kept by {behavior}" if kept else ""), bool(moved)

    def take(
        self, ctx: Context, p: Purchase, app_user_id: str, claimed_at_ms: int | None = None
    ) -> tuple[Purchase, str, str]:
        """Apply SPEC 7.4 for `app_user_id` claiming `p` (at `claimed_at_ms`, by default
        when this fact was received): (purchase, outcome, sentence)."""
        app = self.fold.app(ctx.app_id)
        owner = self.fold.customer_of(ctx.app_id, p.owner)
        view = self.fold.subscription_view(p)
        at_ms = ctx.received_at_ms if claimed_at_ms is None else claimed_at_ms
        active = bool(view and view.expires_date and view.expires_date * 1000 > at_ms)
        outcome = decide(app_user_id, owner, app.transfer_behavior, purchase_active=active)
        message = outcome_text(outcome, app_user_id, p.key, owner, app.transfer_behavior)
        claimant = self.ensure_customer(ctx, app_user_id)
        if outcome == OWNED:
            self.fold.save_customer(ctx.app_id, with_purchase(claimant, p.key))
            p = msgspec.structs.replace(p, owner=app_user_id)
        elif outcome == ALIASED and owner is not None:
            self.alias(ctx.app_id, owner, claimant)
        elif outcome == TRANSFERRED and owner is not None:
            self.fold.save_customer(ctx.app_id, without_purchase(owner, p.key))
            self.fold.save_customer(ctx.app_id, with_purchase(claimant, p.key))
            p = msgspec.structs.replace(p, owner=app_user_id)
            text = f"{p.key} transferred from {', '.join(owner.ids)} to {', '.join(claimant.ids)}"
            ids = {"purchase": p.key, "from": owner.id, "to": app_user_id}
            moved = Transfer(transferred_from=owner.ids, transferred_to=claimant.ids)
            entry = msgspec.structs.replace(ctx.entry(text, ids), transfer=moved)
            self.fold.record(ctx.app_id, [*owner.ids, *claimant.ids], entry)
        return p, outcome, message

    def alias(self, app_id: str, a: Customer, b: Customer) -> Customer:
        merged = merge(a, b)
        for old in (a, b):
            if old.id != merged.id:
                self.fold.ws.delete(CUSTOMERS, app_id, old.id)
                self.fold.touched.add((app_id, old.id))
        self.fold.save_customer(app_id, merged)
        return merged

    def link_session(self, ctx: Context, session_id: str, subscription_id: str) -> None:
        """A subscription-mode session becomes an alias of its subscription; a token posted
        for the session before we knew this is carried over to the subscription."""
        if self.fold.ws.get(LINKS, ctx.app_id, session_id) is not None:
            return
        self.fold.ws.put(LINKS, ctx.app_id, session_id, subscription_id)
        target = self.fold.purchase(ctx.app_id, subscription_id) or Purchase(key=subscription_id)
        sessions = tuple(sorted({*target.sessions, session_id}))
        target = msgspec.structs.replace(target, sessions=sessions, kind="subscription")
        placeholder = self.fold.purchase(ctx.app_id, session_id)
        if placeholder is not None:
            self.fold.ws.delete(PURCHASES, ctx.app_id, session_id)
            holder = self.fold.customer_of(ctx.app_id, placeholder.owner)
            if holder is not None:
                self.fold.save_customer(ctx.app_id, without_purchase(holder, session_id))
            if placeholder.known_at is not None and target.known_at is None:
                target = msgspec.structs.replace(target, known_at=ctx.position, known_by="token")
                self.record_applied(ctx, target)
            if placeholder.owner is not None:
                text = f"checkout session {session_id} is subscription {subscription_id}: "
                ids = {"session": session_id, "purchase": subscription_id}
                subjects = [session_id, subscription_id]
                dropped = target.owner
                unowned = self.undo_later_detection(ctx, target, placeholder)
                if unowned is not None and dropped is not None:
                    target = unowned
                    text += f"the token came first, so it replaces detection's owner {dropped}; "
                    ids["replaced"] = dropped
                    subjects.append(dropped)
                target, _, message = self.take(
                    ctx, target, placeholder.owner, placeholder.claimed_at_ms
                )
                self.fold.record(ctx.app_id, subjects, ctx.entry(text + message, ids))
        self.fold.save_purchase(ctx.app_id, target)

    def undo_later_detection(
        self, ctx: Context, target: Purchase, placeholder: Purchase
    ) -> Purchase | None:
        """A `cs_` token came before its subscription was tracked from a notification, but
        the session that links the two arrived after: detection gave the subscription an
        owner the opposite order never creates. If that owner is still nothing but
        detection's placeholder for this purchase, it goes, and the token's user claims as
        if first (decision 45): `target` without an owner, or None."""
        if target.known_by != "tracking" or target.owner is None:
            return None
        if placeholder.known_at is None or target.known_at is None:
            return None
        if placeholder.known_at >= target.known_at:
            return None
        return self.drop_placeholder(ctx, target, target.owner)

    def drop_placeholder(self, ctx: Context, p: Purchase, detected: str) -> Purchase | None:
        """If `p`'s owner is only the customer detection made of `detected` for it, delete
        that customer (and its document) and return `p` without an owner; else None."""
        owner = self.fold.customer_of(ctx.app_id, p.owner)
        if owner is None or not is_placeholder(owner, detected, p.key):
            return None
        self.fold.ws.delete(CUSTOMERS, ctx.app_id, owner.id)
        self.fold.ws.delete(USERS, ctx.app_id, owner.id)
        self.fold.touched.add((ctx.app_id, owner.id))
        return msgspec.structs.replace(p, owner=None)


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
