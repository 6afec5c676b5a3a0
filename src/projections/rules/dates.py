"""Dates as the document and the history write them: UTC, from Unix seconds, for any year.

Every document date and history time is formatted here, a few per fact. Formatting the
day once and the time of day from tables costs far less than strftime per call or an
lru_cache keyed by the second.
"""

from __future__ import annotations

_DAYS: dict[int, str] = {}
_MAX_DAYS = 200_000  # ~550 years of distinct days: bounded, never evicted
_ISO: dict[int, str] = {}
_MAX_ISO = 50_000
_MINUTES = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
_SECONDS = [f"{s:02d}" for s in range(60)]


def day(days: int) -> str:
    """ "2026-11-01" for a count of days since 1970-01-01, UTC."""
    found = _DAYS.get(days)
    if found is None:
        found = civil_day(days)
        if len(_DAYS) < _MAX_DAYS:
            _DAYS[days] = found
    return found


def civil_day(days: int) -> str:
    """The proleptic Gregorian date of a day count, for any integer. `time.gmtime` raises
     for years it cannot represent, and a signed Stripe payload may hold any 64-bit time:
     one such fact made the fold fail on every retry, stopping the projection for good
    . Same text as strftime's "%Y-%m-%d" for years 1000-9999; beyond, the
     year has as many digits as it needs. (H. Hinnant's `civil_from_days`.)"""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    year = f"{y:04d}" if y >= 0 else f"-{-y:04d}"
    return f"{year}-{m:02d}-{d:02d}"


def minute_of_day(seconds: int) -> str:
    """ "2026-11-01 09:00" for Unix seconds, UTC."""
    rest = seconds % 86_400
    return f"{day(seconds // 86_400)} {_MINUTES[rest // 60]}"


def iso(seconds: int | None) -> str | None:
    """ "2026-11-01T09:00:05Z" for Unix seconds (as strftime's "%Y-%m-%dT%H:%M:%SZ").
    Remembered by the second: a document is rendered again after every fact that touched
    its customer, with mostly the same dates (a dict lookup costs a tenth of formatting)."""
    if seconds is None:
        return None
    found = _ISO.get(seconds)
    if found is None:
        rest = seconds % 86_400
        found = f"{day(seconds // 86_400)}T{_MINUTES[rest // 60]}:{_SECONDS[rest % 60]}Z"
        if len(_ISO) >= _MAX_ISO:
            _ISO.clear()  # bounded; starting afresh keeps the recent seconds coming in
        _ISO[seconds] = found
    return found


def when(seconds: int | None) -> str:
    """ "2026-11-01 09:00 UTC" (as strftime's "%Y-%m-%d %H:%M UTC"), or "never"."""
    return "never" if seconds is None else f"{minute_of_day(seconds)} UTC"


def iso_ms(ms: int) -> str:
    """ "2026-11-01T09:00:05.123Z" for Unix milliseconds."""
    return f"{(iso(ms // 1000) or '')[:-1]}.{ms % 1000:03d}Z"
