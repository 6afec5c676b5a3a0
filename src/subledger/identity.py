"""App User IDs and anonymous ids (SPEC 1): rules shared by the API and the projections."""

from __future__ import annotations

import hashlib

ANONYMOUS_PREFIX = "$RCAnonymousID:"
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

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_app_user_id(value: object) -> str:
    if not isinstance(value, str) or value == "":
        raise AppUserIdError(7220, "app_user_id is empty")
    if "\x00" in value or "/" in value or len(value) > 100:
        raise AppUserIdError(7256, "app_user_id must be 1-100 characters without '/' or NUL")
    if value.strip().lower() in BLOCKED or not value.strip():
        raise AppUserIdError(7256, f"app_user_id {value!r} is not allowed (a placeholder value)")
    return value


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
