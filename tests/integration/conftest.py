"""Fixtures of the CLI tests (tests/conftest.py has the stores)."""

from __future__ import annotations

import pytest

from tests.integration.test_apps_cli import Cli


@pytest.fixture
def cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    return Cli(database_url, monkeypatch, capsys)
