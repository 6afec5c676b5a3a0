"""Is one version of the fold faster than another? Catch-up A/B of revisions on one data set.

Each REV is a git revision (exported to a temp dir) or `worktree`, run with the
pure-Python fold; `REV+compiled` runs REV's fold compiled with mypyc: a wheel built with
the build hook (HATCH_BUILD_HOOK_ENABLE_MYPYC=1) from a copy of the tree, installed into a
directory of its own (revisions from before the hook: projections/native.py's build). Every turn runs the
read+decode baseline and then each revision from position 0, in a fresh child process,
alternating the revisions' order; a VM's speed drifts by ±20 % between identical runs, so
only interleaved medians say anything. With `callgrind`, instructions a fact instead
(valgrind; repeatable to ~0.3 % whatever else runs, but instructions are not time: memory
stalls do not show, so a change must win on facts/s as well).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchlib import catchup, source, stores


def _safe(name: str) -> str:
    """A revision name as a directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def native_dir(rev: str, tmp: Path) -> Path:
    return tmp / "native" / _safe(rev.partition("+")[0])


def export(rev: str, tmp: Path) -> Path:
    """The source tree to run for `rev` (the working tree itself for "worktree"); for
    `rev+compiled`, a directory whose `src/` holds its compiled build."""
    name, _, flavour = rev.partition("+")
    target = source.ROOT if name == "worktree" else tmp / _safe(name)
    if not target.exists():
        source.export(name, target)
    if flavour == "compiled":
        return compile_fold(target, native_dir(rev, tmp))
    if flavour:
        raise SystemExit(f"unknown flavour {flavour!r} in {rev!r} (only +compiled)")
    return target


def compile_fold(code: Path, into: Path) -> Path:
    """`code` built as a compiled wheel and installed into `into/src` (returns `into`); a
    revision with projections/native.py builds that way instead (returns `code`)."""
    if (code / "projections" / "native.py").exists():
        build = "import sys; sys.path[:0] = sys.argv[1:]; from projections import native; native.build()"
        env = dict(os.environ, SUBLEDGER_NATIVE_DIR=str(into))
        subprocess.run(
            [sys.executable, "-c", build, str(code / "src"), str(code)], env=env, check=True
        )
        return code
    copy = into / "tree"  # the hook builds in place: never in the working tree
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(code / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(code / name, copy / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = dict(os.environ, HATCH_BUILD_HOOK_ENABLE_MYPYC="1")
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(into / "wheel"), str(copy)], env=env, check=True
    )
    [wheel] = (into / "wheel").glob("*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(into / "src"), str(wheel)], check=True
    )
    return into


DEFAULT_FOLD = {name: os.environ.get(name) for name in ("SUBLEDGER_NATIVE", "SUBLEDGER_NATIVE_DIR")}


def select_fold(rev: str | None, tmp: Path) -> None:
    """The next child runs `rev`'s fold compiled (`+compiled`) or pure; None: as the
    benchmark was started (the baseline's decoding is the fold's own). The SUBLEDGER_NATIVE
    variables choose the fold of revisions from before the build hook."""
    chosen: dict[str, str | None] = dict(DEFAULT_FOLD)
    chosen["SUBLEDGER_BENCH_COMPILED"] = None
    if rev is not None:
        on = rev.endswith("+compiled")
        chosen = {
            "SUBLEDGER_NATIVE": "1" if on else "0",
            "SUBLEDGER_NATIVE_DIR": str(native_dir(rev, tmp)),
            "SUBLEDGER_BENCH_COMPILED": "1" if on else "0",
        }
    for name, value in chosen.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def instructions(code: Path, url: str, kind: str, out: str = "/dev/null") -> int:
    """Instructions of one child run under callgrind; `out`: where callgrind writes its
    profile (SUBLEDGER_BENCH_CALLGRIND_DIR keeps them, for `callgrind_annotate`)."""
    callgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    done = subprocess.run(
        [*callgrind, *catchup.child_argv(kind, url, str(code))],
        env=catchup.child_env(),
        cwd=source.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def count_instructions(revs: list[str], url: str, facts: int, tmp: Path) -> list[str]:
    """Instructions a fact of each revision's catch-up: a child that resets and catches up,
    minus one that only resets (start-up and imports)."""
    lines = []
    for rev in revs:
        code = export(rev, tmp)
        select_fold(rev, tmp)
        keep = os.environ.get("SUBLEDGER_BENCH_CALLGRIND_DIR")
        out = os.path.join(keep, f"{_safe(rev)}.callgrind") if keep else "/dev/null"
        work = instructions(code, url, "fresh-catchup", out) - instructions(code, url, "reset")
        lines.append(f"{rev:<18} {work / facts:,.0f} instructions a fact (callgrind)")
        print(lines[-1], flush=True)
    return lines


def run(revs: list[str], url: str, repeat: int, tmp: Path) -> dict[str, Any]:
    """`repeat` turns of baseline + every revision (order alternating); per-run lines as
    they come, then each revision's medians and its ratio to the baseline's median."""
    codes = {rev: export(rev, tmp) for rev in revs}
    runs: dict[str, list[dict[str, Any]]] = {rev: [] for rev in ["baseline", *revs]}
    for turn in range(repeat):
        select_fold(None, tmp)
        stores.quiet(url)
        runs["baseline"].append(catchup.child("baseline", url))
        print(f"  {'baseline':<18} {runs['baseline'][-1]['rate']:8,.0f} facts/s", flush=True)
        for rev in revs if turn % 2 == 0 else list(reversed(revs)):
            select_fold(rev, tmp)
            stores.quiet(url)
            result = catchup.child("fresh-catchup", url, str(codes[rev]))
            runs[rev].append(result)
            print(
                f"  {rev:<18} {result['rate']:8,.0f} facts/s  "
                f"{result['cpu_s'] / result['facts'] * 1e6:6.1f} µs CPU a fact "
                f"({result['fold']} fold)",
                flush=True,
            )
    base = statistics.median(r["rate"] for r in runs["baseline"])
    summary = {}
    for rev in revs:
        rate = statistics.median(r["rate"] for r in runs[rev])
        cpu = statistics.median(r["cpu_s"] / r["facts"] * 1e6 for r in runs[rev])
        summary[rev] = {
            "rate": round(rate),
            "cpu_us_a_fact": round(cpu, 1),
            "ratio": round(rate / base, 3),
        }
        print(
            f"{rev:<18} median {rate:8,.0f} facts/s, {cpu:6.1f} µs CPU a fact, "
            f"ratio {rate / base:.2f} to the baseline's median {base:,.0f} facts/s ({repeat} turns)"
        )
    return {"baseline_rate": round(base), "revisions": summary, "runs": runs}
