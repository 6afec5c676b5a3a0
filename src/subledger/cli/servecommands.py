"""`subledger serve` (the HTTP service) and `subledger project` (the projector process)."""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import psycopg
import uvicorn

from projections.reader import Reader
from projections.runner import Projector
from subledger import logs
from subledger.childprojector import Child, ChildProjector, full_environment
from subledger.cli.output import add_json_flag, emit, fail
from subledger.delivery.deliverer import Deliverer
from subledger.http.app import create_app
from subledger.ledger import Ledger
from subledger.registry import AppRegistry
from subledger.sealing import Sealer
from subledger.service import Service
from subledger.settings import ProjectorChoice, Settings
from subledger.store import pg_conninfo

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
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="HTTP worker processes on the one port (default SUBLEDGER_WORKERS, else one per "
        "core on PostgreSQL and 1 on SQLite); with N > 1 the projector and the deliverer run "
        "as one child process each beside them",
    )
    # One of those workers, started by `serve --workers N` itself.
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
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
    deliver.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
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


def exit_with_parent(parent: int | None, gone: Callable[[], None]) -> None:
    """Call `gone` once the process `parent` (which started this one) is no longer our
    parent: it died, even by SIGKILL, and we were handed to init. Polled once a second."""
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("parent process %s is gone; stopping", parent)
        gone()

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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
    workers = settings.workers if args.workers is None else args.workers
    if workers < 0:
        return fail(args, "--workers must be 0 (decided by the store) or more", code=2)
    settings = msgspec.structs.replace(
        settings, host=host, port=port, projector=projector, workers=workers
    )
    logs.configure(settings.log_level)
    if args.worker:
        return _serve_worker(args, settings)
    if settings.worker_count > 1:
        return _serve_workers(args, settings)
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


def reserve_port(host: str, port: int, *, listen: bool = False) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT: the supervisor holds one that does
    not listen (the port is taken and known, even for port 0), and each worker binds and
    listens on its own, so the kernel spreads new connections over the workers."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


# PostgreSQL connections one HTTP worker holds: the ledger's pool (2, up to 10 under load)
# and the read models' (one a reading thread); an idle `serve` measured 15 more a worker
# (docs/operations.md, "How many HTTP workers to run where").
WORKER_CONNECTIONS = 15


def fit_workers(wanted: int, *, explicit: bool, free: int | None) -> tuple[int, str | None]:
    """The worker count to start and what to say about it, given the connections the
    PostgreSQL server has free (None: unknown). A default of one worker a core never asks
    for more connections than the server has room for (a 32-core host would pass the
    default `max_connections = 100`): it is lowered, saying so. A count the operator set
    is kept, with a warning."""
    if free is None or wanted * WORKER_CONNECTIONS <= free:
        return wanted, None
    need = wanted * WORKER_CONNECTIONS
    if explicit:
        return wanted, (
            f"{wanted} workers may hold about {need} PostgreSQL connections and the server "
            f"has {free} free: raise max_connections, put PgBouncer in front, or lower "
            "SUBLEDGER_WORKERS"
        )
    fits = max(1, free // WORKER_CONNECTIONS)
    return fits, (
        f"{fits} HTTP workers instead of one for each of the {wanted} cores: the PostgreSQL "
        f"server has {free} connections free, about {WORKER_CONNECTIONS} a worker "
        "(SUBLEDGER_WORKERS sets the count; docs/operations.md)"
    )


def free_connections(settings: Settings) -> int | None:
    """max_connections minus the superusers' reserve and the connections open now; None
    when the server does not say (the fit is then skipped)."""
    try:
        with psycopg.connect(**pg_conninfo(settings.database), autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity)::int"
            ).fetchone()
    except psycopg.Error:  # only a hint: serve anyway
        log.warning("could not read PostgreSQL's max_connections", exc_info=True)
        return None
    return None if row is None else int(row[0])


def _serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """`serve --workers N`: supervise N HTTP workers on one port, the projector and the
    deliverer (one process each); any of them that dies is started again."""
    if settings.projector == "thread":
        return fail(
            args,
            "a projector thread runs inside the one HTTP process: use --workers 1 "
            "or SUBLEDGER_PROJECTOR=process",
            code=2,
        )
    if settings.projector_mode == "thread":  # auto on SQLite: one child, no process to hold it
        settings = msgspec.structs.replace(settings, projector="process")
    try:
        Ledger(settings.database).close()  # the schema made once, before N processes race
        reserved = reserve_port(settings.host, settings.port)
    except Exception as error:  # noqa: BLE001 - one clear line
        return fail(args, f"cannot serve on {settings.host}:{settings.port}: {error}")
    if settings.database.kind == "postgresql":
        count, said = fit_workers(
            settings.worker_count, explicit=settings.workers > 0, free=free_connections(settings)
        )
        if said:
            log.warning(said)
            sys.stderr.write(f"subledger: {said}\n")
        settings = msgspec.structs.replace(settings, workers=count)
    settings = msgspec.structs.replace(settings, port=reserved.getsockname()[1])
    env = full_environment(settings)
    children = [
        Child(f"worker {n}", ["serve", "--worker"], env)
        for n in range(1, 1 + settings.worker_count)
    ]
    if settings.projector_mode == "process":
        children.append(ChildProjector(settings))
    if settings.delivery == "thread":
        children.append(Child("deliverer", ["deliver"], env))
    stop = stop_on_signals()
    threads = [
        threading.Thread(target=child.run, args=(stop,), name=child.name, daemon=True)
        for child in children
    ]
    for thread in threads:
        thread.start()
    sys.stderr.write(
        f"subledger serving on http://{settings.host}:{settings.port} "
        f"(store: {settings.database.redacted_url}, workers: {settings.worker_count}, "
        f"projector: {settings.projector_mode})\n"
    )
    stop.wait()
    for thread in threads:  # each stops its child: SIGTERM, SIGKILL after 10 s
        thread.join(timeout=20)
    reserved.close()
    return 0


def _serve_worker(args: argparse.Namespace, settings: Settings) -> int:
    """One HTTP worker of `serve --workers N`: its own group committer and reads; no
    projector or deliverer (the parent runs those)."""
    try:
        app = create_app(settings, service=Service(settings, worker=True))
        sock = reserve_port(settings.host, settings.port, listen=True)
    except Exception as error:  # noqa: BLE001
        return fail(args, f"worker cannot serve: {error}")
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))

    def parent_gone() -> None:
        server.should_exit = True  # a clean stop if it comes quickly, else a hard one
        time.sleep(10)
        os._exit(1)

    exit_with_parent(args.exit_with_parent, parent_gone)
    server.run(sockets=[sock])
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
        exit_with_parent(args.exit_with_parent, stop.set)  # serve's child: never outlive it
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
    exit_with_parent(args.exit_with_parent, stop.set)
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
