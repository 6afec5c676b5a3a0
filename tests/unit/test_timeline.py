"""`subledger explain` in a terminal (a table per page) and in a pipe (plain lines): each fact
with position, receive time, Stripe created, kind, the ids involved and what it changed."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from projections.model import Change, HistoryEntry, HistoryPart
from projections.reader import CustomerHistory
from subledger.cli.timeline import print_timeline
from tests.terminal import Terminal, visible

T = 1_793_000_000


def story(facts: int) -> CustomerHistory:
    entries = [
        HistoryEntry(
            position=10 + n,
            received_at_ms=(T + n) * 1000 + 250,
            kind="stripe:customer.subscription.updated",
            created=T + n - 1,
            event_id=f"evt_{n}",
            parts=(
                HistoryPart(
                    text=f"subscription sub_A{n} active",
                    ids={"purchase": f"sub_A{n}"},
                    changes=(Change(field="status", before="trialing", after="active"),),
                ),
            ),
        )
        for n in range(facts)
    ]
    return CustomerHistory(
        app_user_id="user_123",
        customer_id="user_123",
        ids=["user_123"],
        purchases=["sub_A0"],
        entries=entries,
    )


def test_plain_lines_carry_every_field_of_each_fact() -> None:
    out = io.StringIO()
    print_timeline(story(2), page_size=50, stream=out)
    text = out.getvalue()
    assert "     10  2026-10-26T" in text
    assert ".250Z (stripe 2026-10-26T" in text
    assert "stripe:customer.subscription.updated" in text
    assert "ids: event=evt_1 purchase=sub_A1" in text
    assert "status: trialing → active" in text
    assert text.index("sub_A0 active") < text.index("sub_A1 active")


def test_a_terminal_gets_a_table_with_the_ids_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")  # a wide terminal: no folded cells
    out = Terminal()
    print_timeline(story(2), page_size=50, stream=out)
    text = out.shown()
    for column in ("pos", "received", "stripe created", "kind", "ids", "what changed"):
        assert column in text
    assert "event=evt_1" in text
    assert "page 1/" not in text  # one page: no page titles, no pager


def test_long_histories_are_split_into_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    out = Terminal()
    print_timeline(story(12), page_size=5, stream=out, pager=False)
    text = out.shown()
    assert [int(n) for n in re.findall(r"page (\d)/3", text)] == [1, 2, 3]
    assert text.index("page 2/3") < text.index("sub_A5 active") < text.index("page 3/3")


def test_a_long_history_goes_through_the_system_pager(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a terminal, several pages go to $PAGER (through pydoc, as rich does) and not to
    the stream; the pager gets every page in order."""
    import pydoc
    import sys

    paged = tmp_path / "paged.txt"
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.setenv("PAGER", f"cat > {paged}")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("MANPAGER", raising=False)
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(sys, "stdout", Terminal())
    # pydoc.pager caches its first choice in the module; choose afresh, as a new process does.
    monkeypatch.setattr(pydoc, "pager", pydoc.getpager())
    out = Terminal()
    print_timeline(story(12), page_size=5, stream=out)
    shown = visible(paged.read_text())
    assert [int(n) for n in re.findall(r"page (\d)/3", shown)] == [1, 2, 3]
    assert shown.index("sub_A0 active") < shown.index("sub_A11 active")
    assert "page 1/3" not in out.shown()  # the header only; the pages went to the pager
    assert "user_123" in out.shown()


def test_ids_and_texts_are_shown_as_they_are_not_as_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """App User IDs are data: "a[/]b" made rich raise MarkupError, "[red]vip" lost its
    brackets and "joe:thumbs_up:" became an emoji."""
    monkeypatch.setenv("COLUMNS", "240")
    odd = ["a[/]b", "[red]vip", "joe:thumbs_up:"]
    entries = [
        HistoryEntry(
            position=n,
            received_at_ms=T * 1000,
            kind="token",
            parts=(HistoryPart(text=f"{user} now owns sub_X"),),
        )
        for n, user in enumerate(odd, start=1)
    ]
    history = CustomerHistory(
        app_user_id=odd[0], customer_id=odd[0], ids=odd, purchases=["sub_X"], entries=entries
    )
    out = Terminal()
    print_timeline(history, page_size=50, stream=out, pager=False)
    text = out.shown()
    for user in odd:
        assert f"{user} now owns sub_X" in text
    assert text.startswith("a[/]b  customer a[/]b")
