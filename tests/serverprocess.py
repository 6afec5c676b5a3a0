"""A server process on a free port: what the e2e tests and the benchmarks start and stop.

Standard library only, so `scripts/bench` can import it with the repository root on
`sys.path` (`from tests.serverprocess import ...`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it has not exited within `timeout_s`."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start(
    argv: Sequence[str],
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_path: str = "/health",
    timeout_s: float = 60,
) -> Server:
    """Run `argv` (which listens on `port`), its output to `log`; back once `ready_path`
    answers 200, or RuntimeError with the log when it exits or does not answer in time."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
        )
    server, what = Server(process, port, log), " ".join(argv[1:]) + f" (port {port})"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{server.logs()}")
        try:
            with urllib.request.urlopen(f"{server.url}{ready_path}", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{what} did not answer {ready_path} in {timeout_s:g} s:\n{server.logs()}")


def serve_argv(*argv: str) -> list[str]:
    """`subledger serve` run by this interpreter."""
    return [sys.executable, "-m", "subledger.cli", "serve", *argv]


def start_server(database_url: str, tmp_path: Path, *argv: str, **env: str) -> Server:
    """`subledger serve ARGV` on a free port of 127.0.0.1, with this process's environment
    plus `env`; its log in `tmp_path`."""
    port = free_port()
    environ = {
        **os.environ,
        "SUBLEDGER_DATABASE_URL": database_url,
        "SUBLEDGER_PORT": str(port),
        "SUBLEDGER_HOST": "127.0.0.1",
        **env,
    }
    return start(serve_argv(*argv), port, tmp_path / f"server-{port}.log", env=environ)


def stop_server(server: Server) -> None:
    server.stop()


def children(pid: int) -> dict[int, str]:
    """Live child processes of `pid` and their command lines (zombies count as gone)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = argv
    return found


def kill_service(server: Server) -> None:
    """SIGKILL `server` and every process under it at once (its HTTP workers, projector and
    deliverer): what a crash of the machine or container does. Killing only the parent
    leaves `serve --workers N`'s workers answering until they notice, within a second."""
    family, todo = [server.process.pid], [server.process.pid]
    while todo:
        found = list(children(todo.pop()))
        family += found
        todo += found
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
