"""Replay progress: a bar with facts/s and ETA on a terminal, plain lines otherwise; never
on stdout, which carries the result (checksums, JSON)."""

from __future__ import annotations

import io
import re

import pytest

from subledger.cli.progress import progress_reporter
from tests.terminal import Terminal


def test_plain_lines_with_rate_and_time_left_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    with progress_reporter(enabled=True, stream=stream) as report:
        report(50, 100)
        report(100, 100)
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"replay: position 50/100 \(\S+ facts/s, \S+ s left\)", lines[0])
    assert lines[-1].startswith("replay: position 100/100 (")
    assert lines[-1].endswith(", 0 s left)")
    assert capsys.readouterr().out == ""


def test_a_bar_with_rate_and_eta_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Terminal()
    with progress_reporter(enabled=True, stream=stream) as report:
        report(40, 100)
        report(100, 100)
    shown = stream.shown()
    assert "replay" in shown
    assert "100/100" in shown
    assert "facts/s" in shown
    assert re.search(r"\d+:\d\d:\d\d", shown)  # elapsed and remaining time
    assert "\x1b[" in stream.getvalue()  # drawn as a live bar, not lines
    assert capsys.readouterr().out == ""


def test_nothing_when_disabled() -> None:
    stream = Terminal()
    with progress_reporter(enabled=False, stream=stream) as report:
        report(1, 2)
    assert stream.getvalue() == ""
