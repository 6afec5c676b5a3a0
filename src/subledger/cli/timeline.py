"""The terminal form of `subledger explain`: a paged timeline table."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from projections.reader import CustomerHistory
from projections.rules.dates import iso, iso_ms


def _ids(ids: dict[str, str], sep: str = " ") -> str:
    return sep.join(f"{k}={v}" for k, v in ids.items())


def print_timeline(
    history: CustomerHistory, *, page_size: int, stream: TextIO | None = None, pager: bool = True
) -> None:
    """A table per page (through the pager when there are several) on a terminal; plain
    lines otherwise. Each fact: position, receive time, Stripe created, kind, the ids
    involved and what it changed."""
    out = stream or sys.stdout
    # No markup, emoji codes or highlighting: ids and texts are data ("[red]vip", "a[/]b"
    # and "joe:thumbs_up:" are App User IDs to show as they are).
    console = Console(file=out, markup=False, emoji=False, highlight=False)
    aliases = ", ".join(history.ids)
    head = Text(history.app_user_id, style="bold")
    head.append(f"  customer {history.customer_id or '-'}", style="")
    console.print(head)
    console.print(f"aliases: {aliases}   purchases: {', '.join(history.purchases) or '-'}")
    if not history.entries:
        console.print("no facts touched this customer")
        return
    if not out.isatty():
        for e in history.entries:
            created = f" (stripe {iso(e.created)})" if e.created else ""
            out.write(f"{e.position:>7}  {iso_ms(e.received_at_ms)}{created}  {e.kind}\n")
            out.write(f"         {e.text}\n")
            if e.ids:
                out.write(f"         ids: {_ids(e.ids)}\n")
            for c in e.changes:
                out.write(f"           {c.field}: {c.before} → {c.after}\n")
        return
    pages = [history.entries[i : i + page_size] for i in range(0, len(history.entries), page_size)]
    use_pager = pager and len(pages) > 1
    with console.pager(styles=True) if use_pager else _nothing():
        for number, page in enumerate(pages, start=1):
            table = Table(title=f"page {number}/{len(pages)}" if len(pages) > 1 else None)
            for column in ("pos", "received", "stripe created", "kind", "ids", "what changed"):
                table.add_column(column, overflow="fold")
            for e in page:
                cells = (
                    str(e.position),
                    iso_ms(e.received_at_ms),
                    iso(e.created) or "",
                    e.kind,
                    _ids(e.ids, "\n"),
                    e.text + "".join(f"\n  {c.field}: {c.before} → {c.after}" for c in e.changes),
                )
                table.add_row(*(Text(cell) for cell in cells))  # Text: never parsed as markup
            console.print(table)


class _nothing:  # noqa: N801 - a null context manager spelled like one
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
