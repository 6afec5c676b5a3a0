"""Identify interleaved with tokens, in any log order: the fold stays consistent and a
rebuild from empty writes exactly the live rows (batches of three, rows cached between)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.replay import Replay
from subledger.facts import Fact, UserIdentified
from subledger.settings import Database
from tests.harness import FoldStore
from tests.samples import notification, subscription_event, token

T0 = 1_795_000_000_000
IDS = ["$RCAnonymousID:" + c * 32 for c in "ab"] + ["user_1", "user_2", "user_3"]
SUBS = ["sub_Prop0001", "sub_Prop0002", "sub_Prop0003"]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("token"), st.sampled_from(IDS), st.sampled_from(SUBS)),
        st.tuples(st.just("identify"), st.sampled_from(IDS), st.sampled_from(IDS)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def store(database: Database) -> Iterator[FoldStore]:
    running = FoldStore(database)
    yield running
    running.close()


def facts_of(app_id: str, plan: list[tuple[str, str, str]]) -> list[Fact]:
    facts: list[Fact] = []
    for k, sub in enumerate(SUBS):  # the second one ended before the facts below
        period = (1_790_000_000, 1_790_000_100 if k == 1 else 1_900_000_000)
        body = subscription_event(
            event_id=f"evt_p{k}", created=period[0], sub_id=sub, period=period, product=f"prod_P{k}"
        )
        facts.append(notification(app_id, body, T0))
    for k, (kind, first, second) in enumerate(plan, start=1):
        if kind == "token":
            facts.append(token(app_id, T0 + k, user=first, fetch=second))
        else:
            facts.append(
                UserIdentified(
                    originator_id=uuid.uuid4(),
                    app_id=app_id,
                    received_at_ms=T0 + k,
                    app_user_id=first,
                    new_app_user_id=second,
                )
            )
    return facts


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=steps,
    behavior=st.sampled_from(["transfer", "transfer_if_no_active", "keep_with_original"]),
)
def test_owners_and_customers_agree_and_a_rebuild_matches(
    store: FoldStore, plan: list[tuple[str, str, str]], behavior: str
) -> None:
    app_id = store.run(lambda app: facts_of(app, plan), transfer_behavior=behavior)
    for sub in SUBS:
        purchase = store.reader.purchase(app_id, sub)
        assert purchase is not None
        if purchase.owner is None:
            continue
        owner = store.reader.customer(app_id, purchase.owner)
        assert owner is not None and sub in owner.purchases, (sub, purchase.owner)
    for user in IDS:
        customer = store.reader.customer(app_id, user)
        if customer is None:
            continue
        assert user in customer.ids
        for key in customer.purchases:
            held = store.reader.purchase(app_id, key)
            assert held is not None and held.owner in customer.ids, (user, key)
    identified = [second for kind, _, second in plan if kind == "identify"]
    for user in identified:  # identify always leaves the new id known
        assert store.reader.customer(app_id, user) is not None
    result = Replay(store.ledger).run(verify=True)
    assert result.verified is True, result.differences
