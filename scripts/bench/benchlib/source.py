"""Which code a benchmark runs: the working tree, or a revision exported from git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Where children import subledger from: empty = the working tree (the venv's editable
# install); use_source() fills it with an exported commit so concurrent edits cannot change it.
SOURCE_PATHS: list[str] = []


def git(*argv: str) -> str:
    out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def state() -> str:
    """The commit benchmarked and whether src/ or projections/ had uncommitted changes."""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src").splitlines()
    return f"commit {commit}" + (f" + uncommitted changes in {len(dirty)} file(s)" if dirty else "")


def export(rev: str, target: Path) -> None:
    """Git revision `rev`'s tree, extracted into `target`."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)


def use(rev: str, tmp: Path) -> str:
    """Benchmark `rev` ("worktree" or a git revision); a description of the code."""
    if rev == "worktree":
        return state()
    target = tmp / "source"
    export(rev, target)
    SOURCE_PATHS[:] = [str(target / "src"), str(target)]
    sys.path[:0] = SOURCE_PATHS
    commit = git("rev-parse", "--short", rev)
    return f"commit {commit} ({rev}), exported to a temp dir (working tree not used)"


def workdir() -> Path:
    """Where to start `python -m ...` children: it imports from its working directory first."""
    return Path(SOURCE_PATHS[1]) if SOURCE_PATHS else ROOT


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without SUBLEDGER_* (so a developer's shell cannot leak
    in) but for SUBLEDGER_NATIVE*, which choose the fold; PYTHONPATH points at the exported
    source when use() chose a commit."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SUBLEDGER_") or k.startswith("SUBLEDGER_NATIVE")
    }
    if SOURCE_PATHS:
        env["PYTHONPATH"] = os.pathsep.join([*SOURCE_PATHS, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    env.update(extra)
    return env
