"""App User IDs and anonymous ids (SPEC 1): rules shared by the API and the projections."""

from __future__ import annotations

import hashlib

from subledger.codes import Code

ANONYMOUS_PREFIX = "$RCAnonymousID:"
# A token an app backend may post (SPEC 4): a subscription or a Checkout Session id.
PURCHASE_TOKEN = "^(sub|cs)_[A-Za-z0-9_]{4,255}$"  # noqa: S105 - a pattern, no secret
BLOCKED = frozenset(
    {
        "no_user",
        "null",
        "none",
        "nil",
        "(null)",
        "nan",
        "unidentified",
        "undefined",
        "unknown",
        "anonymous",
        "guest",
        "-1",
        "0",
        "[]",
        "{}",
        "[object object]",
    }
)


class AppUserIdError(ValueError):
    """Why an App User ID is refused: code 7220 (empty) or 7256 (invalid)."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_app_user_id(value: object) -> str:
    if not isinstance(value, str) or value == "":
        raise AppUserIdError(Code.EMPTY_APP_USER_ID, "app_user_id is empty")
    if "\x00" in value or "/" in value or len(value) > 100:
        raise AppUserIdError(
            Code.INVALID_APP_USER_ID, "app_user_id must be 1-100 characters without '/' or NUL"
        )
    if value.strip().lower() in BLOCKED or not value.strip():
        raise AppUserIdError(
            Code.INVALID_APP_USER_ID, f"app_user_id {value!r} is not allowed (a placeholder value)"
        )
    return value


# str.strip()'s whitespace (str.isspace), spelled out: the pattern means the same in
# Python and in ECMA-262 (whose \s differs).
SPACE = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"


def _caseless(text: str) -> str:
    """`text` as a pattern matching what lower()s to it (K also as the Kelvin sign)."""
    kelvin = {"k": "\\u212a"}
    return "".join(
        f"[{c.upper()}{c}{kelvin.get(c, '')}]" if c.isalpha() else _SYNTAX.get(c, c) for c in text
    )


# Only the characters regex syntax needs escaped: ECMA's unicode mode refuses `\-` or `\ `.
_SYNTAX = {c: "\\" + c for c in "\\^$.|?*+()[]{}"}


def app_user_id_pattern() -> str:
    """`check_app_user_id` as a JSON Schema pattern (for the OpenAPI document)."""
    blocked = "|".join(_caseless(b) for b in sorted(BLOCKED))
    return f"^(?!{SPACE}*(?:{blocked})?{SPACE}*$)[^/\\x00]{{1,100}}$"


def is_valid_app_user_id(value: object) -> bool:
    try:
        check_app_user_id(value)
    except AppUserIdError:
        return False
    return True


def anonymous_id(app_id: str, purchase_key: str) -> str:
    """Deterministic: a rebuild assigns the same anonymous id to the same purchase."""
    digest = hashlib.sha256(f"{app_id}\x00{purchase_key}".encode()).hexdigest()
    return ANONYMOUS_PREFIX + digest[:32]


def is_anonymous(app_user_id: str) -> bool:
    return app_user_id.startswith(ANONYMOUS_PREFIX)
