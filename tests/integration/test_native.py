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
import uuid
from pathlib import Path

import msgspec
import pytest

from projections import native
from projections.reader import Reader
from projections.runner import Projector
from projections.tables import PROJECTIONS
from subledger.apps import AppConfig
from subledger.facts import AttributesPosted, AttributeValue, Fact
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.conftest import REPO, unavailable
from tests.samples import notification, session_event, subscription_created, token

sys.path.insert(0, str(REPO / "scripts" / "bench"))
from benchlib.facts import generate


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


def ownership_paths(ledger: Ledger) -> list[Fact]:
    """Facts the generator never makes: tracking, metadata detection (a placeholder owner
    replaced), an anonymous owner aliased by a token, a transfer, attributes."""
    app, _, _ = ledger.create_app(
        "native-owners",
        AppConfig(track_new_purchases=True, app_user_id_detection="metadata", metadata_key="uid"),
        entitlements={"pro": ["prod_TKbE3nVq8YhXcM"]},
    )
    at, period = 1_795_000_000, (1_795_000_000, 1_797_600_000)
    first = subscription_created(event_id="evt_nat_1", created=at, period=period)
    named = session_event(event_id="evt_nat_2", created=at + 1, metadata={"uid": "alice"})
    second = subscription_created(
        event_id="evt_nat_3", created=at + 2, period=period, sub_id="sub_Test0002"
    )
    return [
        notification(app.app_id, first, at * 1000),
        notification(app.app_id, named, at * 1000 + 1),  # alice replaces the placeholder
        notification(app.app_id, second, at * 1000 + 2),  # another anonymous owner
        token(app.app_id, at * 1000 + 3, user="carol", fetch="sub_Test0002"),  # aliased
        token(app.app_id, at * 1000 + 4, user="bob", fetch="sub_Test0001"),  # transfer
        AttributesPosted(
            originator_id=uuid.uuid4(),
            app_id=app.app_id,
            received_at_ms=at * 1000 + 5,
            app_user_id="bob",
            attributes={"plan": AttributeValue(value="gold", updated_at_ms=1)},
        ),
    ]


def test_compiled_and_pure_folds_write_the_same_bytes(database_url: str) -> None:
    """Fold generated facts (tokens, subscriptions, sessions, invoices, renewals, refunds,
    cancellations) and the ownership paths with the compiled fold; a pure-Python replay
    must find every row equal."""
    require_compiled()
    ledger = Ledger(parse_database_url(database_url))
    app, _, _ = ledger.create_app(
        "native", AppConfig(), entitlements={"pro": ["prod_TKbE3nVq8YhXcM"]}
    )
    ledger.record_new(list(generate(app.app_id, 1500, seed=11)))
    owners = ownership_paths(ledger)
    ledger.record_new(owners)
    projector = Projector(ledger, batch_size=400)
    assert projector.catch_up() > 1500
    projector.close()
    reader = Reader(parse_database_url(database_url))
    bob = reader.customer(owners[0].app_id, "bob")
    carol = reader.customer(owners[0].app_id, "carol")
    reader.close()
    assert bob is not None and bob.purchases == ("sub_Test0001",)  # from alice, transferred
    assert carol is not None and len(carol.ids) == 2  # aliased with an anonymous owner
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
