"""The JSON Schema patterns the OpenAPI document publishes mean what the checks enforce."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from subledger.attributes import RESERVED, AttributeValue, attributes_schema, split_valid
from subledger.identity import BLOCKED, app_user_id_pattern, is_valid_app_user_id

ID = re.compile(app_user_id_pattern())
KEYS = re.compile(attributes_schema()["propertyNames"]["pattern"])
EMAIL = re.compile(
    attributes_schema()["properties"]["$email"]["properties"]["value"]["anyOf"][1]["pattern"]
)

near_blocked = st.sampled_from(sorted(BLOCKED)).flatmap(
    lambda b: st.tuples(
        st.sampled_from(["", " ", "\t", "\u3000", "x"]),
        st.sampled_from([b, b.upper(), b.title(), b.replace("k", "\u212a")]),
        st.sampled_from(["", " ", "\u2028", "y"]),
    ).map("".join)
)
any_text = st.text(st.characters(codec="utf-8"), max_size=110)


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(near_blocked, any_text, st.from_regex(ID, fullmatch=True)))
def test_the_app_user_id_pattern_is_the_check(value: str) -> None:
    assert bool(ID.match(value)) is is_valid_app_user_id(value)


keys = st.one_of(
    st.sampled_from(sorted(RESERVED)),
    st.text(max_size=42),
    st.from_regex(KEYS, fullmatch=True),
    st.text(max_size=3).map(lambda t: "$" + t),
)


@settings(max_examples=300, deadline=None)
@given(key=keys)
def test_the_attribute_key_pattern_is_the_check(key: str) -> None:
    _, problems = split_valid({key: AttributeValue(value=None)})
    assert bool(KEYS.match(key)) is (not problems)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.emails(), any_text, st.from_regex(EMAIL, fullmatch=True)))
def test_the_email_pattern_is_the_check(value: str) -> None:
    if len(value) > 500 or not value:
        return
    _, problems = split_valid({"$email": AttributeValue(value=value)})
    assert bool(EMAIL.match(value)) is (not problems), value
