"""Replay progress: a live bar with facts/s and ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Report = Callable[[int, int], None]


@contextlib.contextmanager
def progress_reporter(*, enabled: bool, stream: TextIO | None = None) -> Iterator[Report]:
    """Progress goes to stderr (or `stream`), so stdout keeps only the result."""
    out = stream or sys.stderr
    started = time.monotonic()
    if not enabled:
        yield lambda position, end: None
        return
    if not out.isatty():
        last = [0.0]

        def plain(position: int, end: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 2 or position >= end:
                last[0] = now
                rate = position / max(now - started, 1e-9)
                eta = f"{max(end - position, 0) / rate:,.0f} s left" if rate > 0 else "ETA unknown"
                out.write(f"replay: position {position}/{end} ({rate:,.0f} facts/s, {eta})\n")

        yield plain
        return
    columns = (
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} facts/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False, console=Console(file=out)) as bar:
        task = bar.add_task("replay", total=None, rate="0")

        def fancy(position: int, end: int) -> None:
            rate = position / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=position, total=max(end, 1), rate=f"{rate:,.0f}")

        yield fancy
