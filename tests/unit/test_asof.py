"""`as_of` values (SPEC 12): a positive log position, or an RFC 3339 time with its offset."""

from __future__ import annotations

import pytest

from subledger.asof import AsOfError, parse


def test_as_of_times_are_rfc_3339_with_any_offset_and_positions_positive() -> None:
    assert parse("17") == (17, None)
    assert parse("2026-10-01T00:00:00Z") == (None, 1_790_812_800_000)
    assert parse("2026-10-01t02:00:00.5+02:00") == (None, 1_790_812_800_500)
    assert parse("2026-09-30T23:30:00.123456-00:30") == (None, 1_790_812_800_123)
    assert parse("2016-12-31T23:59:60Z") == (None, 1_483_228_799_000)  # a leap second
    assert parse("0001-01-01T00:00:00+23:59")[1] == -62_135_596_800_000 - 1439 * 60_000


@pytest.mark.parametrize(
    "bad",
    [
        "0",
        "01",
        "",
        " 1",
        "-1",
        "2026-10-01",
        "2026-10-01T00:00:00",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-10-01T00:00:00+24:00",
        "2026-10-01T24:00:00Z",
    ],
)
def test_what_names_no_moment_is_refused(bad: str) -> None:
    with pytest.raises(AsOfError):
        parse(bad)
