"""The compiled fold (projections/native.py) writes the same bytes as the pure-Python one,
is used only for the sources it was built from, and is what the test suite runs."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from projections import native
from projections.runner import Projector
from projections.tables import PROJECTIONS
from subledger.apps import AppConfig
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.conftest import REPO, unavailable

sys.path.insert(0, str(REPO / "scripts" / "bench"))
from factgen import generate


def require_compiled() -> None:
    if not native.active():
        problem = f"the compiled fold is not built for these sources ({native.root()})"
        unavailable("COMPILED-FOLD CHECKS", f"{problem}; run scripts/native build")


def test_the_fold_runs_compiled_in_the_test_suite() -> None:
    require_compiled()
    for name in native.COMPILED:
        module = importlib.import_module(f"projections.{name}")
        assert module.__file__ is not None
        assert not module.__file__.endswith(".py"), module.__file__
        assert module.__file__.startswith(str(native.root())), module.__file__


def test_no_struct_is_defined_in_a_compiled_module() -> None:
    """mypyc drops a msgspec struct's class keywords (`frozen`, `gc`): structs must live in
    modules it does not compile, or rows would silently become mutable and GC-tracked."""
    for name in native.COMPILED:
        module = importlib.import_module(f"projections.{name}")
        defined = [
            cls.__name__
            for cls in vars(module).values()
            if inspect.isclass(cls)
            and issubclass(cls, msgspec.Struct)
            and cls.__module__ == module.__name__
        ]
        assert defined == [], f"projections/{name}.py defines {defined}"


def test_a_build_is_used_only_for_the_sources_it_was_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "src" / "projections"
    shutil.copytree(native.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(native, "PACKAGE_DIR", package)
    monkeypatch.setenv("SUBLEDGER_NATIVE_DIR", str(tmp_path / "builds"))
    monkeypatch.setenv("SUBLEDGER_NATIVE", "1")  # whatever this run's own setting is
    before = native.digest()
    (tmp_path / "builds" / before / "projections").mkdir(parents=True)
    path: list[str] = [str(package)]
    assert native.enable(path)
    assert path[0] == str(tmp_path / "builds" / before / "projections")
    fold = package / "fold.py"
    fold.write_text(fold.read_text() + "\n# edited\n")
    assert native.digest() != before
    path = [str(package)]
    assert not native.enable(path)  # an edited checkout runs its own source
    assert path == [str(package)]
    monkeypatch.setenv("SUBLEDGER_NATIVE", "0")
    fold.write_text(fold.read_text().removesuffix("\n# edited\n"))
    assert native.digest() == before
    assert not native.enable(path)  # switched off


def test_compiled_and_pure_folds_write_the_same_bytes(database_url: str) -> None:
    """Fold generated facts (tokens, subscriptions, sessions, invoices, renewals, refunds,
    cancellations) with the compiled fold; a pure-Python replay must find every row equal."""
    require_compiled()
    ledger = Ledger(parse_database_url(database_url))
    app, _, _ = ledger.create_app(
        "native", AppConfig(), entitlements={"pro": ["prod_TKbE3nVq8YhXcM"]}
    )
    ledger.record_new(list(generate(app.app_id, 1500, seed=11)))
    projector = Projector(ledger, batch_size=400)
    assert projector.catch_up() > 1500
    projector.close()
    ledger.close()
    script = (
        "import sys\n"
        "from projections import native\n"
        "assert native.active() is (sys.argv[1] == '1'), native.active()\n"
        "from subledger.cli import main\n"
        "sys.exit(main(['replay', '--verify', '--json']))\n"
    )
    for compiled in ("0", "1"):
        env = dict(os.environ, SUBLEDGER_DATABASE_URL=database_url, SUBLEDGER_NATIVE=compiled)
        done = subprocess.run(
            [sys.executable, "-c", script, compiled],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout)
        assert result["verified"] is True
        assert [c["projection"] for c in result["checksums"]] == list(PROJECTIONS)


def test_the_child_projector_runs_the_same_fold_as_its_parent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`serve` passes the child projector its database settings only, but the compiled-fold
    switches too: SUBLEDGER_NATIVE=0 must turn the compiled fold off in both processes."""
    from subledger.childprojector import ChildProjector
    from subledger.settings import Settings

    monkeypatch.setenv("SUBLEDGER_NATIVE", "0")
    monkeypatch.setenv("SUBLEDGER_NATIVE_DIR", str(tmp_path))
    monkeypatch.setenv("SUBLEDGER_PORT", "9999")
    settings = Settings(database=parse_database_url(f"sqlite:///{tmp_path / 'x.db'}"))
    env = ChildProjector(settings)._environment()
    assert env["SUBLEDGER_NATIVE"] == "0"
    assert env["SUBLEDGER_NATIVE_DIR"] == str(tmp_path)
    assert "SUBLEDGER_PORT" not in env
