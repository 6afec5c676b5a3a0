"""The compiled fold: the projection modules the fold runs through, built with mypyc.

A speed-up only (docs/decisions.md, 40): the same source compiled to C catches up 20 to 35 %
faster, and the pure-Python modules stay the reference. A build lives outside the
source tree, in `<prefix>/subledger-native/<digest>/` (`SUBLEDGER_NATIVE_DIR` overrides
the parent), where the digest covers every source file of `projections` and `subledger`
and the interpreter: a build is used only for exactly the sources it was made from, so an
edited checkout never runs stale compiled code, it falls back to the pure modules until the
next build. `SUBLEDGER_NATIVE=0` turns the compiled fold off.

Build: `scripts/native build` (scripts/_venv runs it; it needs a C compiler, and mypy and
setuptools, the `native` extra). Check: `scripts/native status`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The fold's own modules. Structs stay in modules mypyc does not compile (model.py,
# shapes.py, context.py): it drops the class keywords (`frozen`, `gc`) of msgspec structs.
COMPILED = (
    "appsettings",
    "claims",
    "documents",
    "explain",
    "fold",
    "history",
    "linking",
    "ownership",
    "payments",
    "prefetch",
    "purchases",
    "subscriptions",
    "workingset",
)
SWITCH = "SUBLEDGER_NATIVE"  # "0": run the pure-Python fold
DIRECTORY = "SUBLEDGER_NATIVE_DIR"  # where builds live (default: <sys.prefix>/subledger-native)
GROUP = "subledger_fold"  # name of mypyc's shared runtime module: subledger_fold__mypyc
FORMAT = "1"  # bump when the build recipe changes
PACKAGE_DIR = Path(__file__).resolve().parent


def _source_dirs() -> list[Path]:
    dirs = [PACKAGE_DIR]
    spec = importlib.util.find_spec("subledger")
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(location) for location in spec.submodule_search_locations]
    return dirs


def digest() -> str:
    """Names and bytes of every source the compiled modules were built from, and the
    interpreter they were built for."""
    h = hashlib.sha256(f"{FORMAT} {sys.implementation.cache_tag} {sys.platform}".encode())
    for directory in _source_dirs():
        for path in sorted(directory.rglob("*.py")):
            h.update(path.relative_to(directory).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def root() -> Path:
    return Path(os.environ.get(DIRECTORY) or Path(sys.prefix) / "subledger-native")


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def enable(package_path: list[str]) -> bool:
    """Put a build of exactly these sources ahead of them on the package's path (called by
    `projections/__init__.py` before any submodule is imported); False when there is none."""
    if not enabled():
        return False
    build = root() / digest()
    if not (build / "projections").is_dir():
        return False
    if str(build) not in sys.path:
        sys.path.append(str(build))  # mypyc's shared runtime module lies at the top
    package_path.insert(0, str(build / "projections"))
    return True


def active() -> bool:
    """Whether the fold itself runs compiled in this process."""
    spec = importlib.util.find_spec("projections.fold")
    return bool(spec and spec.origin and not spec.origin.endswith(".py"))


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
c_dir, build_lib, build_temp, *paths = sys.argv[1:]
setup(
    name="subledger-fold",
    ext_modules=mypycify(paths, group_name=%r, opt_level="3", target_dir=c_dir),
    script_args=["build_ext", "--build-lib", build_lib, "--build-temp", build_temp],
)
"""


def build(*, force: bool = False) -> Path:
    """Compile the fold's modules for the current sources (no-op when built); raises
    RuntimeError with the compiler's output when the build fails."""
    target = root() / digest()
    if target.is_dir() and not force:
        return target
    paths = [f"projections/{name}.py" for name in COMPILED]
    env = {**os.environ, SWITCH: "0"}
    root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root(), prefix=".build-") as tmp:
        # A copy of exactly the digested sources, `projections` and `subledger` side by side,
        # whether they come from a checkout (src/ layout) or an installed site-packages
        # (which mypy refuses to treat as sources).
        sources = Path(tmp) / "src"
        skip = shutil.ignore_patterns("__pycache__", "*.so")
        shutil.copytree(PACKAGE_DIR, sources / "projections", ignore=skip)
        for directory in _source_dirs()[1:]:
            shutil.copytree(directory, sources / "subledger", ignore=skip, dirs_exist_ok=True)
        out = Path(tmp) / "out"
        command = [
            sys.executable,
            "-c",
            _SETUP % GROUP,
            str(Path(tmp) / "c"),
            str(out),
            str(Path(tmp) / "obj"),
            *paths,
        ]
        done = subprocess.run(  # noqa: S603 - our interpreter, our own paths
            command, cwd=sources, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or not (out / "projections").is_dir():
            raise RuntimeError(f"mypyc build failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        shutil.rmtree(target, ignore_errors=True)
        try:
            out.rename(target)  # whole or not at all: enable() never sees half a build
        except OSError:
            if not target.is_dir():  # else a concurrent build of the same sources won
                raise
    for old in root().iterdir():  # builds of older sources are never used again
        if old != target and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return target


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        try:
            target = build(force="--force" in argv)
        except (RuntimeError, OSError) as error:
            print(f"compiled fold not built: {error}", file=sys.stderr)
            return 1
        print(f"compiled fold: {target}")
        return 0
    if command == "status":
        print(f"compiled fold {'active' if active() else 'not active'} ({root() / digest()})")
        return 0 if active() else 1
    print("usage: scripts/native [build [--force] | status]", file=sys.stderr)
    return 2
