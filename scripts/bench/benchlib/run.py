"""What every entry point does around its measurements: say what runs where, measure the
load of everything else, keep the results."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import machine, stores


@dataclass
class Run:
    command: str
    info: dict[str, Any]
    others: machine.OtherLoad


def begin(name: str, argv: list[str], store_names: Iterable[str]) -> Run | str:
    """Print the command, the code and the machine; or why the run cannot start (one line)."""
    if "postgresql" in store_names and (problem := stores.reachable()):
        return f"bench: {problem}"
    command = machine.command(name, argv)
    info = machine.describe()
    print("\n".join(machine.header(command, info)), flush=True)
    return Run(command, info, machine.OtherLoad().start())


def end(run: Run, results: dict[str, Any], json_path: str | None) -> None:
    """Print the other processes' load over the run; write everything to `json_path`."""
    other = run.others.cores()
    print(f"other load: {other:.2f} cores on average (processes outside this benchmark)")
    if json_path:
        payload = {"command": run.command, "machine": run.info, "other_load_cores": other}
        Path(json_path).write_text(json.dumps({**payload, **results}, indent=2) + "\n")
