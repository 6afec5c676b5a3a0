"""Is one version of the projector faster than another? Catch-up A/B on one data set.

Usage: scripts/bench/compare [--store postgresql|sqlite] [--facts N] [--repeat N]
                             [--callgrind] REV [REV ...]

Each REV is a git revision (its `src/` and `projections/` are exported to a temp dir) or
`worktree`, run with the pure-Python fold; `REV+compiled` runs REV's fold compiled with
mypyc (built first into the temp dir; only for revisions that have projections/native.py),
e.g. `compare worktree worktree+compiled`. One store is generated with FACTS facts (scripts/bench/factgen.py); then, REPEAT
times and alternating the order of the revisions, each catches up from position 0 in a
fresh child process (`Projector(batch_size=2000).catch_up()`), reporting facts/s and the
process's CPU time per fact. This VM's speed drifts by ±20 % between identical runs, so
only interleaved medians say anything.

`--callgrind` counts instructions instead (valgrind; FACTS defaults to 5,000 there): the
child runs once with and once without the catch-up and the difference, per fact, is
repeatable to ~0.3 % whatever else the machine does. Instructions are not time: Python's
memory stalls (walking row objects scattered in memory) do not show, so a change must win
on facts/s as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Revisions are compared as pure Python (only the current sources can have a compiled
# build, which would make any comparison with an older revision unfair).
os.environ.setdefault("SUBLEDGER_NATIVE", "0")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE)]

import replay_bench  # noqa: E402
from benchlib import export_source  # noqa: E402


def export(rev: str, tmp: Path) -> Path:
    """The source tree of `rev` (the working tree itself for "worktree"); for
    `rev+compiled`, also a compiled fold of it in `SUBLEDGER_NATIVE_DIR`."""
    name, _, flavour = rev.partition("+")
    if name == "worktree":
        target = ROOT
    else:
        target = tmp / _safe(name)
        if not target.exists():
            export_source(name, target)
    if flavour == "compiled":
        build = "import sys; sys.path[:0] = sys.argv[1:]; from projections import native; native.build()"
        env = dict(os.environ, SUBLEDGER_NATIVE_DIR=str(native_dir(rev, tmp)))
        subprocess.run(
            [sys.executable, "-c", build, str(target / "src"), str(target)], env=env, check=True
        )
    elif flavour:
        raise SystemExit(f"unknown flavour {flavour!r} in {rev!r} (only +compiled)")
    return target


def _safe(name: str) -> str:
    """A revision name as a directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def native_dir(rev: str, tmp: Path) -> Path:
    """Each revision's compiled fold in a directory of its own: a build deletes the other
    builds in its directory, so a shared one left only the last revision compiled."""
    return tmp / "native" / _safe(rev.partition("+")[0])


def select_fold(rev: str, tmp: Path) -> None:
    """The next child runs `rev`'s fold compiled (`+compiled`) or pure."""
    os.environ["SUBLEDGER_NATIVE"] = "1" if rev.endswith("+compiled") else "0"
    os.environ["SUBLEDGER_NATIVE_DIR"] = str(native_dir(rev, tmp))


def fold_in_use() -> str:
    """Which fold this child runs; a child asked for a compiled fold that it cannot load
    fails instead of measuring the pure one under the compiled name."""
    try:
        from projections import native
    except ImportError:  # a revision from before the compiled fold
        active = False
    else:
        active = native.active()
    if os.environ.get("SUBLEDGER_NATIVE") == "1" and not active:
        raise SystemExit("asked for the compiled fold, but it is not in use")
    return "compiled" if active else "pure"


def child(source: str, url: str, mode: str) -> None:
    """Runs in a fresh process: catch up with `source`'s code (or only set up, `setup`)."""
    sys.path[:0] = [str(Path(source) / "src"), source]
    from subledger.runtime import tune_runtime

    tune_runtime()  # as in every `subledger` process
    fold = fold_in_use()
    replay_bench.reset(url)
    if mode == "setup":
        return
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = replay_bench.caught_up(url)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["fold"] = fold
    print(json.dumps(result))


def instructions(source: Path, url: str, mode: str) -> int:
    callgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [*callgrind, sys.executable, __file__, "--child", str(source), url, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--child", nargs=3, metavar=("SOURCE", "URL", "MODE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--facts", type=int)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("revs", nargs="*", default=["HEAD", "worktree"])
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    facts = args.facts or (5_000 if args.callgrind else 100_000)
    print(f"machine: {replay_bench.machine(fold=False)} (each REV says which fold it runs)")
    print(f"command: scripts/bench/compare {' '.join(sys.argv[1:])}")
    with tempfile.TemporaryDirectory(prefix="subledger-compare-") as tmp:
        sources = {rev: export(rev, Path(tmp)) for rev in args.revs}
        url = replay_bench.fresh_url(args.store, Path(tmp))
        try:
            replay_bench.generate(url, facts)
            if args.callgrind:
                for rev, source in sources.items():
                    select_fold(rev, Path(tmp))
                    work = instructions(source, url, "run") - instructions(source, url, "setup")
                    print(f"{rev:<18} {work / facts:,.0f} instructions per fact (callgrind)")
                return
            results: dict[str, list[dict[str, Any]]] = {rev: [] for rev in sources}
            for turn in range(args.repeat):
                order = list(sources) if turn % 2 == 0 else list(reversed(sources))
                for rev in order:
                    select_fold(rev, Path(tmp))
                    result = replay_bench.child(str(sources[rev]), url, "run", script=__file__)
                    results[rev].append(result)
                    print(
                        f"  {rev:<18} {result['rate']:8,.0f} facts/s  "
                        f"{result['cpu_s'] / result['facts'] * 1e6:6.1f} µs CPU per fact "
                        f"({result['fold']} fold)",
                        flush=True,
                    )
        finally:
            replay_bench.drop(url)
    for rev, runs in results.items():
        rate = statistics.median(r["rate"] for r in runs)
        cpu = statistics.median(r["cpu_s"] / r["facts"] * 1e6 for r in runs)
        print(
            f"{rev:<18} median {rate:8,.0f} facts/s, {cpu:6.1f} µs CPU per fact ({len(runs)} runs)"
        )


if __name__ == "__main__":
    main()
