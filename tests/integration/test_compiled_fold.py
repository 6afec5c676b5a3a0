"""The compiled fold: the wheel's mypyc build hook (pyproject.toml) compiles the fold's
modules, and the compiled fold writes the same bytes as the pure-Python one."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec

from tests.conftest import REPO

HOOK = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
    "wheel"
]["hooks"]["mypyc"]
# Folds 3,000 generated facts in memory and prints whether it ran compiled, and a digest of
# every row it wrote.
FOLD = """
import hashlib, json, sys, uuid
sys.path.insert(1, "scripts/bench")
from benchlib.facts import generate
import projections.fold.dispatch as dispatch
from tests.memory import MemoryLog
log = MemoryLog()
app_id = log.new_app(aggregate=uuid.UUID(int=7))
log.append(*generate(app_id, 3000))
rows = log.fold(batch_size=500).rows()
digest = hashlib.sha256(repr(sorted((t, sorted(r.items())) for t, r in rows.items())).encode())
print(json.dumps({"compiled": not dispatch.__file__.endswith(".py"), "rows": digest.hexdigest(),
                  "count": sum(len(r) for r in rows.values())}))
"""


def compiled_modules() -> list[str]:
    """The modules the hook compiles, by name."""
    found = []
    for pattern in HOOK["include"]:
        path = REPO / pattern.lstrip("/")
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        found += [
            ".".join(f.relative_to(REPO / "src").with_suffix("").parts)
            for f in files
            if f.name not in HOOK.get("exclude", [])
        ]
    return found


def test_no_struct_is_defined_in_a_compiled_module() -> None:
    """mypyc drops a msgspec struct's class keywords (`frozen`, `gc`): structs live in
    modules it does not compile, or rows would silently become mutable and GC-tracked."""
    modules = compiled_modules()
    assert "projections.fold.dispatch" in modules and "projections.fold.state" in modules
    for name in modules:
        module = importlib.import_module(name)
        defined = [
            cls.__name__
            for cls in vars(module).values()
            if inspect.isclass(cls)
            and issubclass(cls, msgspec.Struct)
            and cls.__module__ == module.__name__
        ]
        assert defined == [], f"{name} defines {defined}"


def sources_digest() -> str:
    h = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    for path in sorted((REPO / "src").rglob("*.py")):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def build_compiled(into: Path) -> Path:
    """The wheel built with the hook from a copy of the sources (the hook compiles in
    place), installed into `into` (cached per version of the sources)."""
    target = into / sources_digest()
    if (target / "projections").is_dir():
        return target
    shutil.rmtree(into, ignore_errors=True)
    copy = into / "tree"
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, copy / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = {**os.environ, "HATCH_BUILD_HOOK_ENABLE_MYPYC": "1"}
    wheels = into / "wheel"
    subprocess.run(
        [*pip, "wheel", "--no-build-isolation", "--no-deps", "-w", str(wheels), str(copy)],
        env=env,
        check=True,
    )
    [wheel] = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def fold_with(pythonpath: str | None) -> dict[str, object]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, "-c", FOLD], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_compiled_wheel_writes_the_same_rows_as_the_pure_fold() -> None:
    compiled = build_compiled(Path(sys.prefix) / "compiled-fold")
    pure = fold_with(None)
    native = fold_with(str(compiled))
    assert pure["compiled"] is False
    assert native["compiled"] is True
    assert pure["count"] and native["rows"] == pure["rows"]
