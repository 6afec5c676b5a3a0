"""`subledger serve`'s child processes, supervised: the projector (`subledger project`) and,
with several HTTP workers (`serve --workers N`), the workers and the deliverer.

On PostgreSQL the fold's CPU then runs on the second core instead of competing with request
handling for the web process's GIL. Each child gets the server's settings, is told the
server's pid so that it exits when the server dies (even by SIGKILL), is restarted with
back-off if it dies, and is stopped with the server.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

from subledger.settings import Settings

log = logging.getLogger("subledger.projector")
RESTART_BACKOFF_S = (0.5, 10.0)  # first pause before a restart, and the longest


def child_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a child: this process's without SUBLEDGER_*, then the server's
    database and log level (and `extra`). The projector needs nothing more."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    env["SUBLEDGER_DATABASE_URL"] = settings.database.url
    if settings.database.kind == "postgresql":
        env["SUBLEDGER_DATABASE_SCHEMA"] = settings.database.schema
    env["SUBLEDGER_LOG_LEVEL"] = settings.log_level
    return env | extra


def full_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """Every SUBLEDGER_* setting of this process (secrets key, CORS, delivery …), with the
    server's resolved database, host, port and projector mode over them: for HTTP workers
    and the deliverer, which need all of them."""
    env = dict(os.environ) | child_environment(settings)
    env["SUBLEDGER_HOST"] = settings.host
    env["SUBLEDGER_PORT"] = str(settings.port)
    env["SUBLEDGER_PROJECTOR"] = settings.projector
    return env | extra


class Child:
    """Keep one process of `subledger COMMAND …` running until `stop`."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        on_start: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.on_start = on_start

    def run(self, stop: threading.Event) -> None:
        backoff = RESTART_BACKOFF_S[0]
        while not stop.is_set():
            argv = [sys.executable, "-m", "subledger.cli", *self.command]
            argv += ["--exit-with-parent", str(os.getpid())]  # noticed even if we die early
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv, env=self.env, stdin=subprocess.DEVNULL
            )
            self.starts += 1
            if self.on_start is not None:
                self.on_start.set()
            while self.process.poll() is None:
                if stop.wait(0.5):
                    self.terminate()
                    return
            log.warning("%s process exited with %s; restarting", self.name, self.process.returncode)
            stop.wait(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_S[1])

    def signal_stop(self) -> None:
        """SIGTERM without waiting (stop several children at once, then `terminate`)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()

    def terminate(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class ChildProjector(Child):
    """`subledger project` beside the server."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("projector", ["project"], child_environment(settings))
        self.settings = settings
