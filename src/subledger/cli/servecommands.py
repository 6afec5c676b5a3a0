"""`subledger serve` (the HTTP service) and `subledger project` (the projector process)."""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

import msgspec
import uvicorn

from projections.reader import Reader
from projections.runner import Projector
from subledger import logs
from subledger.cli.output import add_json_flag, emit, fail
from subledger.delivery.deliverer import Deliverer
from subledger.http.app import create_app
from subledger.ledger import Ledger
from subledger.registry import AppRegistry
from subledger.sealing import Sealer
from subledger.settings import ProjectorChoice, Settings

log = logging.getLogger("subledger.cli")


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to bind (default SUBLEDGER_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SUBLEDGER_PORT or 8000)")
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument(
        "--with-projector",
        dest="projector",
        action="store_const",
        const="with",
        help="serve runs the projector too (default): a thread on SQLite, a child process "
        "on PostgreSQL (SUBLEDGER_PROJECTOR=thread|process forces one)",
    )
    mode.add_argument(
        "--without-projector",
        dest="projector",
        action="store_const",
        const="external",
        help="leave projecting to a separate `subledger project` (PostgreSQL deployments)",
    )
    add_json_flag(serve)
    serve.set_defaults(handler=_serve)

    project = commands.add_parser("project", help="run the projections, following the log")
    project.add_argument("--once", action="store_true", help="catch up, print the position, exit")
    project.add_argument("--batch-size", type=int, default=500, metavar="N")
    # serve's child: the server's pid, passed by the server itself, so a server that dies
    # while the child is still starting is noticed too (os.getppid() would already be 1).
    project.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    add_json_flag(project)
    project.set_defaults(handler=_project)

    deliver = commands.add_parser(
        "deliver",
        help="send outbound webhooks (SPEC 10) in this process; for SUBLEDGER_DELIVERY=external",
    )
    add_json_flag(deliver)
    deliver.set_defaults(handler=_deliver)


def stop_on_signals() -> threading.Event:
    """An event set on SIGINT/SIGTERM. The handler only puts into a SimpleQueue (documented
    as reentrant, safe in signal handlers) and a thread sets the event: calling Event.set()
    in the handler itself deadlocked when a second signal arrived inside the first set()."""
    stop = threading.Event()
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()

    def relay() -> None:
        signals.get()
        stop.set()

    threading.Thread(target=relay, name="signal-relay", daemon=True).start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _: signals.put(received))
    return stop


def _watch_parent(parent: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


def projector_choice(flag: str | None, configured: ProjectorChoice) -> ProjectorChoice:
    """`serve`'s projector: `--without-projector` → external; `--with-projector` overrides
    only SUBLEDGER_PROJECTOR=external (a forced thread or process stays); no flag → the
    environment's choice."""
    if flag == "external":
        return "external"
    if flag == "with":
        return "auto" if configured == "external" else configured
    return configured


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    projector = projector_choice(args.projector, settings.projector)
    settings = msgspec.structs.replace(settings, host=host, port=port, projector=projector)
    logs.configure(settings.log_level)
    try:
        app = create_app(settings)
    except Exception as error:  # noqa: BLE001 - a store that cannot open is one clear line
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    sys.stderr.write(
        f"subledger serving on http://{host}:{port} (store: {settings.database.redacted_url}, "
        f"projector: {settings.projector_mode})\n"
    )
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0


def _project(args: argparse.Namespace, settings: Settings) -> int:
    logs.configure(settings.log_level)
    try:
        ledger = Ledger(settings.database)
        projector = Projector(ledger, batch_size=max(1, args.batch_size))
    except Exception as error:  # noqa: BLE001
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    try:
        if args.once:
            started = time.monotonic()
            applied = projector.catch_up()
            elapsed = time.monotonic() - started
            data = {
                "position": projector.position,
                "applied": applied,
                "seconds": round(elapsed, 3),
            }
            return emit(args, data, f"projected {applied} facts; position {projector.position}")
        stop = stop_on_signals()
        if args.exit_with_parent:  # serve's child: never outlive a killed server
            threading.Thread(
                target=_watch_parent, args=(args.exit_with_parent, stop), daemon=True
            ).start()
        log.info("projector following the log", extra={"store": settings.database.kind})
        projector.run(stop)
        # What this process applied: across projector processes these add up to the log.
        log.info(
            "projector stopped",
            extra={"position": projector.position, "applied": projector.facts},
        )
        return 0
    finally:
        projector.close()
        ledger.close()


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    """Send outbound webhooks until SIGINT/SIGTERM: one sender at a time across processes
    (a lease), so `serve` with SUBLEDGER_DELIVERY=thread may run beside it."""
    logs.configure(settings.log_level)
    try:
        ledger = Ledger(settings.database)
        reader = Reader(settings.database)
    except Exception as error:  # noqa: BLE001
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    stop = stop_on_signals()
    registry = AppRegistry(ledger, Sealer(settings.secrets_key))
    try:
        registry.refresh()
        threading.Thread(target=registry.run, args=(stop,), daemon=True).start()
        deliverer = Deliverer(ledger, reader, registry, settings)
        log.info("delivering outbound webhooks", extra={"store": settings.database.kind})
        deliverer.run(stop)
        log.info("delivery stopped", extra={"attempts": deliverer.attempts})
        return 0
    finally:
        reader.close()
        ledger.close()
