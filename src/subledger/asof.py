"""State as of any moment (SPEC 12): an `as_of` value read as a log position or a time,
and the customer document the projection held then, dated then.

Shared by `GET /v1/subscribers/{id}?as_of=` and `subledger explain --as-of`. A position is
the fact's place in the log (`subledger events` lists them); a time means the last fact
received at or before it. The document's `request_date` is the moment asked about (for a
position: that fact's receive time), so "active" is judged then, never by today's clock.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import msgspec

from projections.reader import Reader
from projections.rules.dates import iso
from projections.rules.documents import empty_subscriber
from subledger.ledger import Ledger

_DIGITS = re.compile(r"[1-9][0-9]{0,18}")
# RFC 3339's date-time (OpenAPI's `format: date-time`): its offset is required.
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1)
_LOOK_BACK = 64  # positions searched backwards for a fact's time (PostgreSQL leaves gaps)


class AsOfError(ValueError):
    """An `as_of` that is neither a log position nor an RFC 3339 time (400/8120)."""


class AsOfNotReachedError(AsOfError):
    """A moment the projected log has not reached: a later position, a future time
    (404/8121)."""


class AsOf(msgspec.Struct, frozen=True):
    """A moment of the log: a position, or a time (Unix ms); `at_ms` dates the document."""

    position: int | None
    time_ms: int | None
    at_ms: int


def parse(text: str) -> tuple[int | None, int | None]:
    """(position, None) for a positive integer, (None, Unix ms) for an RFC 3339 time."""
    if _DIGITS.fullmatch(text):
        return int(text), None
    found = _TIME.fullmatch(text)
    if found is None:
        raise AsOfError(
            f"as_of {text[:40]!r} is neither a log position (1 or more) nor an ISO 8601 "
            "time with its offset (e.g. 2026-10-01T00:00:00Z)"
        )
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    try:  # a leap second (:60) is the second before the next minute
        wall = datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError as error:
        raise AsOfError(f"as_of {text[:40]!r} is no date: {error}") from None
    fraction = int((found.group(7) or ".0")[1:4].ljust(3, "0"))
    offset_min = 0
    if found.group(9):
        hours, minutes = int(found.group(10)), int(found.group(11))
        if hours > 23 or minutes > 59:
            raise AsOfError(f"as_of {text[:40]!r} has no such UTC offset")
        offset_min = (hours * 60 + minutes) * (1 if found.group(9) == "+" else -1)
    local_ms = (wall - _EPOCH) // timedelta(milliseconds=1) + fraction
    return None, local_ms - offset_min * 60_000


def resolve(text: str, ledger: Ledger, reader: Reader, now_ms: int | None = None) -> AsOf:
    """The moment `text` names, refused when the projection has not reached it."""
    position, time_ms = parse(text)
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if time_ms is not None:
        if time_ms > now_ms:
            raise AsOfNotReachedError(f"as_of {text} is in the future")
        return AsOf(position=None, time_ms=time_ms, at_ms=time_ms)
    assert position is not None
    projected = reader.position()
    if position > projected:
        raise AsOfNotReachedError(
            f"as_of position {position} is past the projected log (at {projected})"
        )
    return AsOf(position=position, time_ms=None, at_ms=received_at(ledger, position))


def received_at(ledger: Ledger, position: int) -> int:
    """When the fact at `position` (or the last one before a gap) was received."""
    found = 0
    for start in (position, max(1, position - _LOOK_BACK)):
        for _, record in ledger.records(start, stop=position):
            found = getattr(record, "received_at_ms", found)
        if found:
            return found
    return found


def document(reader: Reader, app_id: str, app_user_id: str, at: AsOf) -> tuple[str, int, bytes]:
    """(request_date, request_date_ms, subscriber JSON) as of `at`: an id nobody held then
    gets the empty document, as an unknown id does today (SPEC 5)."""
    stored = reader.document_as_of(app_id, app_user_id, position=at.position, time_ms=at.time_ms)
    request_date = iso(at.at_ms // 1000) or ""
    raw = (
        stored.encode()
        if stored is not None
        else msgspec.json.encode(empty_subscriber(app_user_id, request_date))
    )
    return request_date, at.at_ms, raw
