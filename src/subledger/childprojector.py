"""`subledger serve`'s projector as a supervised child process (`subledger project`).

On PostgreSQL the fold's CPU then runs on the second core instead of competing with request
handling for the web process's GIL. The child gets the server's database settings, is
restarted with back-off if it dies, and is stopped with the server.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from subledger.settings import Settings

log = logging.getLogger("subledger.projector")


class ChildProjector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
        env["SUBLEDGER_DATABASE_URL"] = self.settings.database.url
        if self.settings.database.kind == "postgresql":
            env["SUBLEDGER_DATABASE_SCHEMA"] = self.settings.database.schema
        env["SUBLEDGER_LOG_LEVEL"] = self.settings.log_level
        return env

    def run(self, stop: threading.Event) -> None:
        """Keep one `subledger project` running until `stop`."""
        backoff = 0.5
        while not stop.is_set():
            argv = [sys.executable, "-m", "subledger.cli", "project"]
            argv += ["--exit-with-parent", str(os.getpid())]  # noticed even if we die early
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
            )
            while self.process.poll() is None:
                if stop.wait(0.5):
                    self.terminate()
                    return
            log.warning("projector process exited with %s; restarting", self.process.returncode)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

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
