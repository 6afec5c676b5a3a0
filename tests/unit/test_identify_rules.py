"""RevenueCat's logIn merge rules (SPEC 5) as the pure decision the fold applies."""

from __future__ import annotations

import pytest

from projections.model import Customer
from projections.rules.ownership import ALIASED, TRANSFERRED, UNCHANGED, decide_identify

ANON = "$RCAnonymousID:" + "a" * 32
ANON_2 = "$RCAnonymousID:" + "b" * 32


def customer(*ids: str) -> Customer:
    return Customer(
        id=ids[0], ids=ids, since=tuple(range(len(ids))), first_seen_ms=0, last_seen_ms=0
    )


@pytest.mark.parametrize(
    ("current", "new", "source", "target", "expected"),
    [
        # current anonymous, new unknown → alias (also when subledger never saw the current id)
        (ANON, "user", customer(ANON), None, ALIASED),
        (ANON, "user", None, None, ALIASED),
        # current anonymous, new known without an anonymous alias → alias
        (ANON, "user", customer(ANON), customer("user", "other"), ALIASED),
        (ANON, "user", None, customer("user"), ALIASED),
        # current anonymous, new known with an anonymous alias of its own → transfer, no alias
        (ANON, "user", customer(ANON), customer(ANON_2, "user"), TRANSFERRED),
        (ANON, "user", None, customer(ANON_2, "user"), UNCHANGED),  # nothing to hand over
        # current identified → transfer (an anonymous id aliased with a user is identified)
        ("old", "user", customer("old"), None, TRANSFERRED),
        ("old", "user", customer("old"), customer("user"), TRANSFERRED),
        (ANON, "user", customer(ANON, "old"), None, TRANSFERRED),
        ("old", "user", None, None, UNCHANGED),  # an unknown identified id holds nothing
        # already one customer, or the same id
        (ANON, "user", customer(ANON, "user"), customer(ANON, "user"), UNCHANGED),
        ("user", "user", customer("user"), customer("user"), UNCHANGED),
        (ANON, ANON, None, None, UNCHANGED),
    ],
)
def test_identify_follows_revenuecats_login_rules(
    current: str, new: str, source: Customer | None, target: Customer | None, expected: str
) -> None:
    assert decide_identify(current, new, source, target) == expected
