"""Process-wide settings of subledger's own processes (the CLI, hence serve/project/replay)."""

from __future__ import annotations

import gc
import sys

# Measured with a catch-up of 100,000 facts on PostgreSQL (docs/decisions.md, "Interpreter
# settings in every `subledger` process"):
SWITCH_INTERVAL_S = 0.0005  # default 0.005: ~7.1k facts/s; 0.0005: ~9.9k; 0.0002: ~8.6k
GC_THRESHOLDS = (50_000, 20, 20)  # default (700, 10, 10)


def tune_runtime() -> None:
    """Interpreter settings for subledger's threads and allocation pattern.

    - Switch interval: the projector's writer and reader threads, like the server's commit
      thread, wake from I/O and then wait for the GIL. With CPython's 5 ms default, each of a
      batch's ~20 round trips waited up to 5 ms behind the folding thread (the writer spent
      120 µs per fact instead of 50).
    - Garbage collection: a fold allocates millions of short-lived, acyclic objects; at the
      default threshold the cyclic collector re-scanned the row cache thousands of times per
      rebuild. Row structs are also declared `gc=False`."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
