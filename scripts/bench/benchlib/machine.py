"""The machine a benchmark runs on, CPU time from /proc, and the load of everything else."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchlib import source


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def command(name: str, argv: list[str]) -> str:
    """The command line as a reader would type it again."""
    return shlex.join([f"scripts/bench/{name}", *argv])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].split(" Copyright")[0] if text else wrk


def fold() -> str:
    """Which fold `subledger` runs in this environment (children inherit it)."""
    from benchlib.catchup import compiled

    return "compiled fold (mypyc)" if compiled() else "pure-Python fold"


def describe(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "wrk": wrk_version(),
        "fold": fold(),
        "source": source.state(),
    }
    info.update(extra or {})
    return info


def header(command_line: str, info: Mapping[str, Any]) -> list[str]:
    """The lines every benchmark prints first: the command, the code and the machine."""
    lines = [
        f"command: {command_line}",
        f"source: {info['source']}, {info['fold']}",
        f"machine: {info['nproc']} cores, {info['cpu_model']}, {info['memory_gib']} GiB, "
        f"Python {info['python']}, kernel {info['kernel']}"
        + (f", {info['wrk']}" if info.get("wrk") else "")
        + f"; load average at start {' '.join(info['loadavg_at_start'])}",
    ]
    if "postgresql" in info:
        pairs = ", ".join(f"{k}={v}" for k, v in info["postgresql"].items())
        lines.append(f"postgresql: {pairs} (same host, loopback)")
    return lines


# --- CPU time from /proc ---------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cpu_of(pid: int, *, user_only: bool = False, exited: bool = False) -> float:
    """`exited`: also the CPU of its children that have exited and been reaped."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = int(fields[11]) + (0 if user_only else int(fields[12]))
    reaped = int(fields[13]) + (0 if user_only else int(fields[14])) if exited else 0
    return (own + reaped) / ticks


def tree_cpu(pid: int, *, user_only: bool = False) -> float:
    """CPU seconds (user+system, or user only) of a process and its descendants."""
    total = _cpu_of(pid, user_only=user_only)
    for child in _children(pid):
        total += tree_cpu(child, user_only=user_only)
    return total


def _role(pid: int) -> str:
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    words = {w.decode(errors="replace") for w in argv}
    if "--worker" in words or any("multiprocessing" in w for w in words):
        return "workers"
    if "project" in words:
        return "projector"
    if "deliver" in words:
        return "deliverer"
    return "children"


def role_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a server process ("main": the only process of a one-process server,
    or the supervisor of several) and of its children by role: HTTP workers, projector,
    deliverer (`subledger serve --workers N`, uvicorn --workers N)."""
    roles = {"main": _cpu_of(pid)}
    for child in _children(pid):
        role = _role(child)
        roles[role] = roles.get(role, 0.0) + tree_cpu(child)
    return roles


def role_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU per role between two `role_cpu` readings (a restarted child counts from 0)."""
    return {k: round(max(v - before.get(k, 0.0), 0.0), 3) for k, v in after.items()}


def postgres_cpu(*, user_only: bool = False, exited: bool = False) -> float:
    """CPU seconds of every local process named postgres (the server and all backends).
    `exited`: also backends that have exited since the server started (the postmaster
    accumulates its reaped children's time), for measurements across which connections
    close. The server may serve other work too: its CPU is all counted as the benchmark's."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += _cpu_of(int(entry.name), user_only=user_only, exited=exited)
        except OSError:
            continue
    return total


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        spent[tid] = (int(fields[11]) + int(fields[12])) / tick
    return spent


def run_queue_s() -> float:
    """Seconds the calling thread has spent runnable but waiting for a core."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def machine_busy(*, user_only: bool = False) -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot, from /proc/stat;
    user_only: user-space time only (kernel work done for the benchmark itself, such as
    fsync journaling or loopback networking, is system time and belongs to no process)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    busy = user + nice if user_only else user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait_s: float, *, window_s: float = 2.0, cores: float = 0.15) -> bool:
    """Wait (at most max_wait_s) until the machine is nearly idle: other work (tests, other
    benchmarks) would take CPU from the code under test. True when it became quiet."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy(user_only=True)
        time.sleep(window_s)
        if machine_busy(user_only=True) - before < cores * window_s:
            return True
        if time.monotonic() >= deadline:
            return False


class OtherLoad:
    """User CPU of processes that are not the benchmark's between start() and stop(): this
    process and its reaped children (child runs, wrk), PostgreSQL, and `also` (a running
    server's tree). What is left is other work competing for the cores."""

    def __init__(self, also: Callable[[], float] | None = None) -> None:
        self.also = also

    def _mine(self) -> float:
        me = os.times()
        also = self.also() if self.also else 0.0
        return also + postgres_cpu(user_only=True, exited=True) + me.user + me.children_user

    def start(self) -> OtherLoad:
        self.machine0, self.mine0, self.wall0 = (
            machine_busy(user_only=True),
            self._mine(),
            time.monotonic(),
        )
        return self

    def stop(self) -> float:
        """CPU seconds other processes spent since start()."""
        machine = machine_busy(user_only=True) - self.machine0
        return max(0.0, machine - (self._mine() - self.mine0))

    def cores(self) -> float:
        """The same, as cores busy on average since start()."""
        return self.stop() / max(time.monotonic() - self.wall0, 1e-9)
