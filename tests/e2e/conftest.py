"""A real `subledger serve` process on a free port (tests/serverprocess.py, shared with the
benchmarks); the names stay importable from here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverprocess import Server, free_port, start_server, stop_server

__all__ = ["Server", "free_port", "server", "start_server", "stop_server"]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    running = start_server(database_url, tmp_path)
    yield running
    stop_server(running)
