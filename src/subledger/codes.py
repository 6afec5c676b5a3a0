"""Every error code subledger answers with, its HTTP status and when: the one table.

RevenueCat's 7xxx codes where SPEC section 14 names them; subledger's own refusals in 8xxx.
docs/errors.md lists the same rows (a test compares them), and the OpenAPI document lists
each operation's codes from here.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    PLATFORM_NOT_STRIPE = 7000
    TRANSFER_REFUSED = 7102
    NOT_A_PURCHASE_TOKEN = 7103
    EMPTY_APP_USER_ID = 7220
    INVALID_API_KEY = 7225
    MALFORMED_BODY = 7226
    SECRET_KEY_NEEDED = 7244
    INVALID_APP_USER_ID = 7256
    INVALID_ATTRIBUTES = 7263
    UNKNOWN_APP = 8101
    BODY_TOO_LARGE = 8102
    NO_WEBHOOK_SECRET = 8103
    BAD_SIGNATURE_HEADER = 8104
    SIGNATURE_MISMATCH = 8105
    SIGNATURE_TOO_OLD = 8106
    NOT_A_STRIPE_EVENT = 8107
    UNSUPPORTED_EVENT_TYPE = 8108
    INVALID_AS_OF = 8120  # state as of any moment (SPEC 12)
    AS_OF_NOT_REACHED = 8121
    UNKNOWN_CHART = 8201
    UNKNOWN_BUCKET = 8202
    INVALID_CHART_QUERY = 8203
    NO_SUCH_ROUTE = 8404
    METHOD_NOT_ALLOWED = 8405
    INTERNAL = 8500
    STORE_UNAVAILABLE = 8503
    PROJECTION_LAGGING = 8504


# code → (HTTP status, when)
CODES: dict[Code, tuple[int, str]] = {
    Code.PLATFORM_NOT_STRIPE: (400, "`X-Platform` missing or not `stripe`"),
    Code.TRANSFER_REFUSED: (409, "transfer behaviour refuses to move the purchase"),
    Code.NOT_A_PURCHASE_TOKEN: (400, "`fetch_token` is not a `sub_…` or `cs_…` id"),
    Code.EMPTY_APP_USER_ID: (400, "empty App User ID"),
    Code.INVALID_API_KEY: (401, "API key missing or invalid"),
    Code.MALFORMED_BODY: (400, "malformed request body, or one holding what cannot be stored"),
    Code.SECRET_KEY_NEEDED: (403, "the route needs the app's secret key"),
    Code.INVALID_APP_USER_ID: (400, "invalid App User ID"),
    Code.INVALID_ATTRIBUTES: (400, "invalid customer attributes (`attribute_errors` lists them)"),
    Code.UNKNOWN_APP: (404, "webhook for an unknown `app_id`"),
    Code.BODY_TOO_LARGE: (413, "request body over `SUBLEDGER_MAX_BODY_BYTES`"),
    Code.NO_WEBHOOK_SECRET: (400, "the app has no webhook secret yet"),
    Code.BAD_SIGNATURE_HEADER: (400, "`Stripe-Signature` missing or malformed"),
    Code.SIGNATURE_MISMATCH: (400, "no `v1` signature matches any of the app's secrets"),
    Code.SIGNATURE_TOO_OLD: (400, "signature timestamp older than the app's tolerance"),
    Code.NOT_A_STRIPE_EVENT: (400, "body is not a JSON Stripe event subledger can store"),
    Code.UNSUPPORTED_EVENT_TYPE: (400, "event type outside the six supported ones"),
    Code.INVALID_AS_OF: (
        400,
        "`as_of` is neither a log position nor an ISO 8601 (RFC 3339) time with its offset",
    ),
    Code.AS_OF_NOT_REACHED: (404, "`as_of` is a future time, or a position past the projected log"),
    Code.UNKNOWN_CHART: (404, "no chart of that name (SPEC 11)"),
    Code.UNKNOWN_BUCKET: (404, "no bucket of that label (2026-12-07, 2026-W49 or 2026-12)"),
    Code.INVALID_CHART_QUERY: (400, "a chart's `currency` is not a three-letter code"),
    Code.NO_SUCH_ROUTE: (404, "no such route"),
    Code.METHOD_NOT_ALLOWED: (405, "method not allowed (`Allow` lists the route's methods)"),
    Code.INTERNAL: (500, "internal error"),
    Code.STORE_UNAVAILABLE: (503, "the store is unavailable or locked; retry (`Retry-After`)"),
    Code.PROJECTION_LAGGING: (503, "stored, but the projection did not catch up in time"),
}


def status_of(code: Code) -> int:
    return CODES[code][0]
