"""A private PostgreSQL cluster the fault suite may stop and start (never the shared one):
initdb into a temporary directory, a free port on 127.0.0.1, pg_ctl for the rest."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import unavailable
from tests.processes import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class Cluster:
    """Root may not run PostgreSQL: as root, every command runs as the `postgres` user."""

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            unavailable("POSTGRESQL RESTART TESTS", "initdb is not installed")
        assert binaries is not None
        self.bin = binaries
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = Path(tempfile.mkdtemp(prefix="subledger-pg-"))
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._options = ["-o", options, "-l", str(self.dir / "server.log")]
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *argv: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *argv],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        """Returns once the server accepts connections (pg_ctl -w)."""
        self._run("pg_ctl", "-D", str(self.data), *self._options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a restart."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
