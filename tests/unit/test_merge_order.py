"""SPEC 7.1's merge key `(event.created, precedence, event id)`: ties inside one second."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.model import Purchase
from projections.rules import purchases as rules
from subledger.stripe import objects

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
SECOND = 1_767_225_600


def subscription(event_id: str, created: int = SECOND, **fields: Any) -> Any:
    obj = objects.Subscription(id=SUB, **{"status": "active", **fields})
    order = (created, rules.subscription_precedence(obj), event_id)
    return rules.sub_obs(obj, order, position=0)


def merged(*snapshots: Any) -> list[Purchase]:
    """The purchase after every arrival order of `snapshots` (one result per order)."""
    results = []
    for order in itertools.permutations(snapshots):
        p = Purchase(key=SUB)
        for obs in order:
            p = rules.add_subscription(p, obs)
        results.append(p)
    return results


def winner(*snapshots: Any) -> Any:
    results = merged(*snapshots)
    assert all(p == results[0] for p in results)  # commutative
    return results[0].subs[-1]


def test_a_terminal_state_beats_an_earlier_state_in_the_same_second() -> None:
    canceled = subscription("evt_a", status="canceled")
    active = subscription("evt_z")
    assert winner(active, canceled) is canceled
    expired = subscription("evt_b", status="incomplete_expired")
    assert winner(subscription("evt_y", status="incomplete"), expired) is expired


def test_a_set_ended_at_or_canceled_at_beats_the_same_status_in_the_same_second() -> None:
    ended = subscription("evt_a", ended_at=SECOND)
    plain = subscription("evt_z")
    assert winner(plain, ended) is ended
    cancel_requested = subscription("evt_b", canceled_at=SECOND)
    assert winner(plain, cancel_requested) is cancel_requested
    assert winner(cancel_requested, ended) is ended


def test_the_event_id_breaks_a_full_tie_and_a_later_second_always_wins() -> None:
    first, second = subscription("evt_a"), subscription("evt_b", status="past_due")
    assert winner(first, second) is second
    later = subscription("evt_0", created=SECOND + 1)
    assert winner(subscription("evt_z", status="canceled"), later) is later


def test_the_same_snapshot_twice_is_one_snapshot() -> None:
    once = subscription("evt_a")
    p = rules.add_subscription(Purchase(key=SUB), once)
    assert rules.add_subscription(p, once) is p
    assert len(merged(once, once)[0].subs) == 1


def invoice(event_id: str, status: str) -> Any:
    obj = objects.Invoice(id="in_1", status=status, subscription=SUB)
    return rules.invoice_obs(obj, rules.invoice_order(obj, SECOND, event_id), position=0)


def test_paid_or_void_invoices_beat_open_or_draft_in_the_same_second() -> None:
    for final, earlier in itertools.product(("paid", "void"), ("open", "draft")):
        late = invoice("evt_a", final)  # the smaller event id: precedence decides
        early = invoice("evt_z", earlier)
        for order in ((late, early), (early, late)):
            p = Purchase(key=SUB)
            for obs in order:
                p = rules.add_invoice(p, obs)
            assert p.invoices["in_1"].status == final, (final, earlier, order)


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 3), st.sampled_from("ab")
        ),
        max_size=8,
    )
)
def test_the_latest_invoice_is_what_max_by_period_end_then_order_gives(
    invoices: list[tuple[int | None, int, str]],
) -> None:
    """`_latest_invoice` (a plain loop) keeps `max`'s rule, ties included."""
    from projections.model import InvoiceObs
    from projections.rules.subscriptions import _latest_invoice

    found = {
        f"in_{n}": InvoiceObs(
            order=(created, 0, event), position=n, id=f"in_{n}", status="paid", period_end=end
        )
        for n, (end, created, event) in enumerate(invoices)
    }
    p = Purchase(key=SUB, invoices=found)
    expected = max(found.values(), key=lambda i: (i.period_end or 0, i.order), default=None)
    assert _latest_invoice(p) is expected
