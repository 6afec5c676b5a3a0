"""The terminal form of `subledger explain`: a paged timeline table."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from projections.documents import iso
from projections.history import iso_ms
from projections.reader import CustomerHistory


def print_timeline(history: CustomerHistory, *, page_size: int) -> None:
    console = Console()
    aliases = ", ".join(history.ids)
    console.print(f"[bold]{history.app_user_id}[/bold]  customer {history.customer_id or '-'}")
    console.print(f"aliases: {aliases}   purchases: {', '.join(history.purchases) or '-'}")
    if not history.entries:
        console.print("no facts touched this customer")
        return
    if not sys.stdout.isatty():
        for e in history.entries:
            created = f" (stripe {iso(e.created)})" if e.created else ""
            sys.stdout.write(f"{e.position:>7}  {iso_ms(e.received_at_ms)}{created}  {e.kind}\n")
            sys.stdout.write(f"         {e.text}\n")
            for c in e.changes:
                sys.stdout.write(f"           {c.field}: {c.before} → {c.after}\n")
        return
    pages = [history.entries[i : i + page_size] for i in range(0, len(history.entries), page_size)]
    use_pager = sys.stdout.isatty() and len(pages) > 1
    with console.pager(styles=True) if use_pager else _nothing():
        for number, page in enumerate(pages, start=1):
            table = Table(title=f"page {number}/{len(pages)}" if len(pages) > 1 else None)
            for column in ("pos", "received", "stripe created", "kind", "what changed"):
                table.add_column(column, overflow="fold")
            for e in page:
                table.add_row(
                    str(e.position),
                    iso_ms(e.received_at_ms),
                    iso(e.created) or "",
                    e.kind,
                    e.text + "".join(f"\n  {c.field}: {c.before} → {c.after}" for c in e.changes),
                )
            console.print(table)


class _nothing:  # noqa: N801 - a null context manager spelled like one
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
