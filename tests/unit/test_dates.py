"""Document dates and history times are formatted from tables; they must equal strftime's."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.rules import dates
from projections.rules.dates import iso, when

# 1900-01-01 .. 9999-12-31T23:59:59Z: every second a Stripe object or a receive time can hold
SECONDS = st.integers(min_value=-2_208_988_800, max_value=253_402_300_799)


@given(SECONDS)
def test_iso_is_strftime(seconds: int) -> None:
    assert iso(seconds) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@given(SECONDS)
def test_when_is_strftime(seconds: int) -> None:
    assert when(seconds) == time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def test_edges_and_none() -> None:
    for seconds in (-1, 0, 59, 60, 86_399, 86_400, 951_782_400, 1_795_000_000, 4_102_444_800):
        assert iso(seconds) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
        assert when(seconds) == time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
    assert iso(None) is None
    assert when(None) == "never"


def test_remembered_seconds_stay_bounded_and_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """iso remembers the seconds it formatted, at most _MAX_ISO of them: a second asked
    again, before or after the memory starts afresh, is the same text."""
    monkeypatch.setattr(dates, "_MAX_ISO", 3)
    seconds = [1_700_000_000 + 3_661 * i for i in range(7)]
    first = [iso(s) for s in seconds]
    assert len(dates._ISO) <= 3
    assert [iso(s) for s in reversed(seconds)] == list(reversed(first))
    assert first == [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s)) for s in seconds]
