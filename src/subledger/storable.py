"""What the fold and the stores can hold: the one check for every JSON body that becomes a fact.

A fact is kept as it arrived and folded later, on every rebuild, by code that must not fail
(STYLE 2: the fold is total). So a body is refused at the door when it holds something a
store or a decoder cannot take: bytes that are not UTF-8, a NUL anywhere in a string
(PostgreSQL text cannot hold it), a lone UTF-16 surrogate escape (no UTF-8 encoding exists),
an integer outside signed 64 bits (MessagePack and the read models' numbers stop there; a
float whose value is a whole number counts as one, as JSON Schema says), a number beyond a
double, or nesting deeper than MAX_DEPTH (decoders recurse).

Cheap on the webhook path: UTF-8 and syntax are checked in C, depth is read off msgspec's
re-indented copy, and only a body that *might* hold a NUL, a surrogate or a huge number (a
`\\u0000`/`\\uD8…` escape, a run of 19 digits, a 3-digit exponent) is decoded and walked.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_DEPTH = 64  # no value may sit inside more than 64 objects or arrays
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# msgspec.json.format(indent=1) puts a value nested in k containers on a line indented k.
_TOO_DEEP = b"\n" + b" " * (MAX_DEPTH + 1)
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# Every digit becomes 0, E becomes e and signs go: then two substring searches find any
# 19-digit run (an integer that may leave int64) and any exponent of 3 digits or more.
_FOLD_DIGITS = bytes.maketrans(b"123456789E", b"000000000e")
_SIGNS = b"+-"
_LONG_DIGITS = b"0" * 19
# A 2-digit exponent or more: a float whose value may be a whole number past int64 (JSON
# Schema calls 1e19 an integer, so the OpenAPI document's int64 bounds apply to it too).
_BIG_EXPONENT = b"e00"
_any = msgspec.json.Decoder()


class UnstorableJsonError(ValueError):
    """The body is not JSON that every store and decoder of subledger can hold."""


def check_storable_json(body: bytes) -> None:
    """Raise UnstorableJsonError unless `body` is JSON within subledger's limits."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnstorableJsonError(f"body is not valid UTF-8 (byte {error.start})") from None
    try:
        indented = msgspec.json.format(body, indent=1)
    except msgspec.DecodeError as error:
        raise UnstorableJsonError(f"body is not JSON: {error}") from None
    except RecursionError:
        raise UnstorableJsonError(_deep_message()) from None
    if _TOO_DEEP in indented:
        raise UnstorableJsonError(_deep_message())
    if (b"\\u" in body and _SUSPECT_ESCAPE.search(body)) or _may_hold_big_numbers(body):
        _check_values(body)


def _may_hold_big_numbers(body: bytes) -> bool:
    folded = body.translate(_FOLD_DIGITS, _SIGNS)
    return _LONG_DIGITS in folded or _BIG_EXPONENT in folded


def _deep_message() -> str:
    return f"body nests deeper than {MAX_DEPTH} levels of objects and arrays"


def _check_values(body: bytes) -> None:
    """The exact check, for the few bodies the cheap scan could not clear."""
    try:
        tree = _any.decode(body)
    except msgspec.DecodeError as error:  # lone surrogates, numbers beyond a double
        raise UnstorableJsonError(f"body holds what subledger cannot store: {error}") from None
    stack: list[tuple[Any, str]] = [([tree], "")]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and "\x00" in key:
                raise UnstorableJsonError(f"a key in {path} holds a NUL character")
            if isinstance(value, (dict, list)):
                stack.append((value, _member(path, key)))
            elif isinstance(value, str) and "\x00" in value:
                raise UnstorableJsonError(f"the string at {_member(path, key)} holds a NUL")
            elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                raise UnstorableJsonError(
                    f"the integer at {_member(path, key)} is outside signed 64 bits"
                )
            elif isinstance(value, float) and value.is_integer() and not _fits(value):
                raise UnstorableJsonError(
                    f"the whole number at {_member(path, key)} is outside signed 64 bits"
                )


def _fits(number: float) -> bool:
    return INT64_MIN <= number < 2.0**63


def _member(path: str, key: str | int) -> str:
    """`$.a[0]`; the root travels as the one element of a list with the empty path."""
    if not path:
        return "$"
    return f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
