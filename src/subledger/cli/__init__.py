"""`subledger …`: thin commands over the ledger; `--json` for machines; exit 0 / 1 / 2 (usage)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from subledger.cli import (
    appcommands,
    auditcommands,
    chartcommands,
    integrationcommands,
    output,
    servecommands,
)
from subledger.runtime import tune_runtime
from subledger.settings import Settings, SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="subledger",
        description="Event-sourced ledger for Stripe subscriptions. "
        "Configuration comes from SUBLEDGER_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    servecommands.register(commands)
    apps = appcommands.register(commands)
    auditcommands.register(commands)
    integrationcommands.register(commands, apps)
    chartcommands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_runtime()
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        return output.fail(args, f"configuration: {error}")
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
