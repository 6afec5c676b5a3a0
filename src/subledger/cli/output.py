"""Human output by default, one JSON document with --json; errors are one line on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def emit(args: argparse.Namespace, data: Any, human: str) -> int:
    if getattr(args, "json", False):
        sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
    else:
        sys.stdout.write(human.rstrip("\n") + "\n")
    return 0


def fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    if getattr(args, "json", False):
        sys.stdout.write(msgspec.json.encode({"error": message}).decode() + "\n")
    sys.stderr.write(f"subledger: {message}\n")
    return code
