"""Customer attribute rules (SPEC 5): which posted keys are accepted, and why others are not."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from subledger.facts import AttributeValue
from subledger.identity import SPACE
from subledger.storable import INT64_MAX

MAX_CUSTOM_KEYS = 50
MAX_VALUE_CHARS = 500
_CUSTOM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
_NOT_SPACE_OR_AT = f"[^@{SPACE[1:-1]}]+"
_EMAIL = re.compile(f"^{_NOT_SPACE_OR_AT}@{_NOT_SPACE_OR_AT}\\.{_NOT_SPACE_OR_AT}$")
RESERVED = frozenset(
    {
        "$email",
        "$displayName",
        "$phoneNumber",
        "$apnsTokens",
        "$fcmTokens",
        "$mediaSource",
        "$campaign",
        "$adGroup",
        "$ad",
        "$keyword",
        "$creative",
        "$ip",
        "$idfa",
        "$idfv",
        "$gpsAdId",
        "$androidId",
        "$amazonAdId",
        "$attConsentStatus",
        "$onesignalId",
        "$airshipChannelId",
        "$cleverTapId",
        "$mixpanelDistinctId",
        "$firebaseAppInstanceId",
        "$brazeAliasName",
        "$brazeAliasLabel",
        "$iterableUserId",
        "$iterableCampaignId",
        "$iterableTemplateId",
    }
)


def attributes_schema() -> dict[str, Any]:
    """These rules as JSON Schema keywords for an attributes map (the OpenAPI document).
    The MAX_CUSTOM_KEYS limit counts the customer's stored keys too, so no schema states it."""
    value = {"type": ["string", "null"], "maxLength": MAX_VALUE_CHARS, "pattern": "^[^\\u0000]*$"}
    updated = {"type": ["integer", "null"], "minimum": 0, "maximum": INT64_MAX}
    entry: dict[str, Any] = {
        "type": "object",
        "properties": {"value": value, "updated_at_ms": updated},
    }
    email = {"anyOf": [{"type": "null"}, {"type": "string", "pattern": f"^$|{_EMAIL.pattern}"}]}
    keys = "|".join([_CUSTOM_KEY.pattern[1:-1], *("\\" + key for key in sorted(RESERVED))])
    return {
        "propertyNames": {"pattern": f"^(?:{keys})$"},
        "additionalProperties": entry,
        "properties": {"$email": {**entry, "properties": {**entry["properties"], "value": email}}},
    }


class AttributeProblem(msgspec.Struct, frozen=True):
    """One refused key, as returned in `attribute_errors`."""

    key_name: str
    message: str


def split_valid(
    posted: Mapping[str, AttributeValue], existing_custom_keys: frozenset[str] = frozenset()
) -> tuple[dict[str, AttributeValue], list[AttributeProblem]]:
    """Valid attributes to store, and an error per invalid key (the valid ones still count)."""
    valid: dict[str, AttributeValue] = {}
    errors: list[AttributeProblem] = []
    custom = set(existing_custom_keys)
    for key, attr in sorted(posted.items()):
        problem = _problem(key, attr)
        if problem is None and not key.startswith("$") and attr.value not in (None, ""):
            if key not in custom and len(custom) >= MAX_CUSTOM_KEYS:
                problem = f"more than {MAX_CUSTOM_KEYS} custom attributes"
            custom.add(key)
        if problem is None:
            valid[key] = attr
        else:
            errors.append(AttributeProblem(key_name=key, message=problem))
    return valid, errors


def _problem(key: str, attr: AttributeValue) -> str | None:
    if key.startswith("$"):
        if key not in RESERVED:
            return f"{key} is not a reserved attribute; custom keys must not start with $"
    elif not _CUSTOM_KEY.match(key):
        return "custom keys start with a letter and have at most 40 of A-Z a-z 0-9 _ -"
    if attr.value is not None and len(attr.value) > MAX_VALUE_CHARS:
        return f"values are at most {MAX_VALUE_CHARS} characters"
    if key == "$email" and attr.value and not _EMAIL.match(attr.value):
        return "$email must look like an email address"
    if attr.updated_at_ms is not None and attr.updated_at_ms < 0:
        return "updated_at_ms must be a positive number of milliseconds"
    return None
