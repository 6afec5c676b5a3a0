"""The dependency rule of STYLE.md, checked on the import statements themselves."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT / "src")
    parts = list(relative.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph(folder: Path) -> dict[str, set[str]]:
    """Module → the modules of the project it imports (absolute imports only)."""
    return {
        module_name(path): {m for m in imports(path) if m.startswith(("subledger", "projections"))}
        for path in modules(folder)
    }


# The service layer may use everything; nothing below it may use the service layer.
SERVICE = (
    "subledger.service",
    "subledger.asof",
    "subledger.refunds",
    "subledger.childprojector",
    "subledger.delivery",
)
ENTRY_POINTS = ("subledger.http", "subledger.cli")
# projections/, bottom to top: each layer imports only the layers before it (and itself).
PROJECTION_LAYERS = (
    ("projections.model", "projections.views"),
    ("projections.rules",),
    ("projections.fold",),
    ("projections.storage",),
    (
        "projections.runner",
        "projections.replay",
        "projections.reader",
        "projections.history",
        "projections.deliveries",
        "projections.charts",
        "projections.drilldown",
        "projections.chartreads",
    ),
)


def layer_of(module: str) -> int:
    for rank, layer in enumerate(PROJECTION_LAYERS):
        if module.startswith(layer):
            return rank
    raise AssertionError(f"{module} is in no layer of projections/")


def test_the_core_never_imports_projections_or_the_service_layer() -> None:
    """facts, apps, stripe, store, ledger, settings …: what the write side records."""
    for module, imported in graph(ROOT / "src" / "subledger").items():
        if module.startswith((*SERVICE, *ENTRY_POINTS)):
            continue
        bad = {m for m in imported if m.startswith(("projections", *SERVICE, *ENTRY_POINTS))}
        assert not bad, f"{module} imports {bad}"


def test_projections_import_only_the_core_and_lower_layers() -> None:
    for module, imported in graph(ROOT / "src" / "projections").items():
        bad = {m for m in imported if m.startswith((*SERVICE, *ENTRY_POINTS))}
        assert not bad, f"{module} imports {bad}"
        for other in (m for m in imported if m.startswith("projections.")):
            assert layer_of(other) <= layer_of(module), f"{module} imports {other} (a layer above)"


def test_nothing_outside_the_entry_points_imports_http_or_cli() -> None:
    for module, imported in graph(ROOT / "src" / "subledger").items():
        if module.startswith(ENTRY_POINTS):
            continue
        bad = {m for m in imported if m.startswith(ENTRY_POINTS)}
        assert not bad, f"{module} imports {bad}"


def test_no_import_circle_in_projections() -> None:
    """Steps of the fold are functions over the batch state, not objects that call back
    into the fold: no module of projections/ reaches itself through its imports."""
    found = graph(ROOT / "src" / "projections")
    edges = {m: {i for i in imported if i in found} for m, imported in found.items()}
    for start, direct in edges.items():
        seen: set[str] = set()
        todo = list(direct)
        while todo:
            module = todo.pop()
            assert module != start, f"{start} imports itself through {sorted(seen)}"
            if module not in seen:
                seen.add(module)
                todo.extend(edges[module])


def reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            return True
    return False


def test_only_the_cli_entry_point_reads_the_environment() -> None:
    """Settings.from_env(environ) is the one parser; `subledger` hands it os.environ. The
    child projector copies the environment for its process (PATH …) without SUBLEDGER_*."""
    allowed = {
        ROOT / "src" / "subledger" / "cli" / "__init__.py",
        ROOT / "src" / "subledger" / "childprojector.py",
    }
    for folder in (ROOT / "src" / "subledger", ROOT / "src" / "projections"):
        for path in modules(folder):
            if path not in allowed:
                assert not reads_environment(path), path.relative_to(ROOT)


def test_folds_have_no_clock_or_randomness() -> None:
    """Every module the fold's output depends on; only the machinery around it (the runner
    measuring lag, replay's progress, connections, the read side) may look at a clock."""
    pure = [
        *modules(ROOT / "src" / "projections" / "rules"),
        *modules(ROOT / "src" / "projections" / "fold"),
        ROOT / "src" / "projections" / "storage" / "workingset.py",
        ROOT / "src" / "projections" / "storage" / "memory.py",
        ROOT / "src" / "projections" / "storage" / "prefetch.py",
    ]
    assert {"dispatch.py", "claims.py", "workingset.py", "settings.py"} <= {p.name for p in pure}
    for path in pure:
        found = imports(path)
        assert not found & {"random", "datetime", "os", "secrets"}, path.name
        text = path.read_text()
        for clock in ("time.time", "monotonic", "perf_counter", "uuid4", "uuid1", "now("):
            assert clock not in text, (path.name, clock)


ROUTES = ("customers", "history", "receipts", "webhooks", "health")


def test_route_modules_share_only_modules_of_their_own() -> None:
    """A route module never imports another's helpers; shared pieces live in guards,
    bodies, answers, customerinfo, openapi or errors."""
    for name in ROUTES:
        path = ROOT / "src" / "subledger" / "http" / f"{name}.py"
        bad = {m for m in imports(path) for other in ROUTES if m == f"subledger.http.{other}"}
        assert not bad, f"{name}.py imports {bad}"


def test_handlers_neither_authenticate_nor_read_the_app_state() -> None:
    """Authentication is a guard, the service a dependency (STYLE 3)."""
    for name in ROUTES:
        text = (ROOT / "src" / "subledger" / "http" / f"{name}.py").read_text()
        for banned in ("app.state", "authenticate(", '.headers.get("authorization'):
            assert banned not in text, (name, banned)


def test_error_codes_are_written_once() -> None:
    """Every code lives in subledger.codes; no other module spells one as a number."""
    from subledger.codes import Code

    spelled = {str(int(code)) for code in Code}
    for folder in (ROOT / "src" / "subledger",):
        for path in modules(folder):
            if path.name == "codes.py":
                continue
            numbers = {
                str(node.value)
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and type(node.value) is int
            }
            assert not numbers & spelled, (path.relative_to(ROOT), numbers & spelled)


def test_docs_list_the_codes_of_the_table() -> None:
    """docs/errors.md has one row per code of subledger.codes, with its HTTP status."""
    import re

    from subledger.codes import CODES

    text = (ROOT / "docs" / "errors.md").read_text()
    rows = {(int(c), int(s)) for c, s in re.findall(r"^\| (\d{4}) \| (\d{3}) \|", text, re.M)}
    assert rows == {(int(code), status) for code, (status, _) in CODES.items()}
