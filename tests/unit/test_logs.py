"""Log configuration: JSON lines on stderr, and no library debug output with customer data."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from subledger import logs


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_debug_logging_never_includes_stripe_api_responses(restored: None) -> None:
    """stripe-python logs each API response body (emails, names) at DEBUG."""
    logs.configure("DEBUG")
    assert logging.getLogger("subledger").isEnabledFor(logging.DEBUG)
    stripe_log = logging.getLogger("stripe")
    assert not stripe_log.isEnabledFor(logging.DEBUG)
    assert not stripe_log.isEnabledFor(logging.INFO)
    assert stripe_log.isEnabledFor(logging.WARNING)
    logs.configure("ERROR")  # a stricter level stays stricter
    assert not stripe_log.isEnabledFor(logging.WARNING)
