"""The boundary check (subledger.storable) against a slow, obviously right oracle."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subledger.storable import MAX_DEPTH, UnstorableJsonError, check_storable_json
from tests.samples import scenario_bodies


def oracle(body: bytes) -> bool:
    """Storable: UTF-8 JSON, no NUL or lone surrogate in any key or string, integers (and
    floats whose value is a whole number, which JSON Schema calls integers) in signed 64
    bits, finite numbers, no value inside more than MAX_DEPTH containers."""
    try:
        tree = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH or not scalar_ok(value):
            return False
        if isinstance(value, dict):
            if not all(storable_text(k) for k in value):
                return False
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
    return True


def scalar_ok(value: Any) -> bool:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        whole = math.isfinite(value) and value.is_integer()
        return math.isfinite(value) and (not whole or -(2**63) <= value < 2**63)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return True


def storable_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def accepted(body: bytes) -> bool:
    try:
        check_storable_json(body)
    except UnstorableJsonError:
        return False
    return True


EDGES = [
    (b'{"a": "\\u0000"}', False),
    (b'{"\\u0000": 1}', False),
    (b'{"a": "\\\\u0000"}', True),  # an escaped backslash, then the text u0000
    (b'{"a": "\\ud800"}', False),
    (b'{"a": "\\udc00\\ud800"}', False),
    (b'{"a": "\\ud83d\\ude00"}', True),  # a surrogate pair is one character
    (b'{"a": "\xff"}', False),
    (b'{"a": "\xed\xa0\x80"}', False),  # a surrogate encoded as UTF-8
    (b'{"a": 9223372036854775807, "b": -9223372036854775808}', True),
    (b'{"a": 9223372036854775808}', False),
    (b'{"a": -9223372036854775809}', False),
    (b'{"a": "12345678901234567890123"}', True),  # digits in a string are text
    (b'{"a": 1.5, "b": 1e-400}', True),
    (b'{"a": 9.2e18, "b": 1e18}', True),
    (b'{"a": 1e308}', False),  # a whole number past int64, as JSON Schema reads it
    (b'{"a": 9.3e18}', False),
    (b'{"a": 1e400}', False),
    (b'{"a": -1E+999}', False),
    (b'{"a": 1, "a": 2}', True),  # duplicate keys: the last wins, as in every decoder here
    (b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH, True),
    (b"[" * (MAX_DEPTH + 1) + b"1" + b"]" * (MAX_DEPTH + 1), False),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), True),  # the innermost is at 64
    (b"[" * 100_000 + b"]" * 100_000, False),
    (b'{"a": 1', False),
    (b"", False),
    (b'"a\x00b"', False),
    (b"10000000000000000000000", False),
]


@pytest.mark.parametrize(("body", "storable"), EDGES)
def test_edges(body: bytes, storable: bool) -> None:
    assert accepted(body) is storable
    if len(body) < 1000:
        assert oracle(body) is storable


def test_stripe_samples_are_storable() -> None:
    for body in scenario_bodies():
        check_storable_json(body)


leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


def deep(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


@settings(max_examples=400, deadline=None)
@given(value=values, levels=st.integers(0, MAX_DEPTH + 2), escaped=st.booleans())
def test_agrees_with_the_oracle(value: Any, levels: int, escaped: bool) -> None:
    """json.dumps writes lone surrogates, NUL and huge integers; `escaped` decides whether
    non-ASCII text travels as \\u escapes or as raw UTF-8 (surrogates then as errors)."""
    text = json.dumps(deep(value, levels), ensure_ascii=escaped)
    body = text.encode("utf-8", errors="surrogatepass")
    assert accepted(body) is oracle(body), body[:200]


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40))
def test_agrees_with_the_oracle_on_any_bytes(body: bytes) -> None:
    assert accepted(body) is oracle(body)


def test_a_created_written_as_a_whole_float_is_that_integer_for_ingest_and_the_fold() -> None:
    """JSON Schema calls 1760000000.0 an integer; ingest stores it as one, and the fold
    still reads the event's object (its strict envelope refused it before)."""
    import json

    from subledger.stripe.objects import Subscription, decode_event_object
    from subledger.stripe.payloads import PayloadError, decode_envelope
    from tests.samples import subscription_created

    event = json.loads(subscription_created(event_id="evt_f", created=1, period=(1, 2)))
    whole = json.dumps({**event, "created": 1760000000.0}).encode()
    assert decode_envelope(whole).created == 1760000000
    assert isinstance(decode_event_object(event["type"], whole), Subscription)
    with pytest.raises(PayloadError):
        decode_envelope(json.dumps({**event, "created": 1760000000.5}).encode())
