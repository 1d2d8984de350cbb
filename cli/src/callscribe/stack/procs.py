"""Child processes of the local stack: free ports, spawn, readiness polling, safe stop.

A process is identified by its PID *and* its start time (field 22 of
``/proc/<pid>/stat``), so a PID that the kernel has since given to another
program is never signalled.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
# How long a server may take to stop after SIGTERM before it is killed. Servers write their data out
# then: SeaweedFS's volume server took ~3 s per GiB stored here (a bench run's 30 GiB: over 15 s),
# Redis saves its snapshot. The services stop within their gRPC grace period and keep the default.
SERVER_STOP_S = 300.0
LOG_TAIL_LINES = 40
# Ports handed out by this process, so two calls never return the same port.
_handed_out: set[int] = set()


class StackError(RuntimeError):
    """A server of the local stack could not be started, reached or stopped."""


class BinaryMissingError(StackError):
    """A server binary is not installed."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise StackError("no free TCP port found on 127.0.0.1")


def free_port_with_offset(offset: int = 10000) -> int:
    """A free port ``p`` such that ``p + offset`` is free too (SeaweedFS's gRPC ports).

    Chosen below the kernel's ephemeral range (32768+) so outgoing connections
    do not take it between now and the server's start.
    """
    high = 32767 - offset
    for _ in range(500):
        port = random.randint(10000, high)
        if {port, port + offset} & _handed_out:
            continue
        if _bindable(port) and _bindable(port + offset):
            _handed_out.update((port, port + offset))
            return port
    raise StackError(f"no free port pair (p, p+{offset}) found on 127.0.0.1")


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its exit status remains
        _reap(pid)
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its parent reaps it


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid: int
    argv: list[str]
    log_path: str
    start_time: int

    def is_alive(self) -> bool:
        """True when the process that was started (same PID and start time) still runs."""
        return process_start_time(self.pid) == self.start_time

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ManagedProcess:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            argv=[str(a) for a in data["argv"]],
            log_path=str(data["log_path"]),
            start_time=int(data["start_time"]),
        )


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def spawn(name: str, argv: list[str], env: Mapping[str, str], log_path: str | Path) -> ManagedProcess:
    """Start ``argv`` in its own session (so its whole group can be signalled), output to ``log_path``."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    start_time = process_start_time(popen.pid)
    if start_time is None:
        popen.wait()
        raise StackError(f"{name} exited at once (status {popen.returncode}):\n{log_tail(log_path)}")
    log.info("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
    return ManagedProcess(
        name=name,
        pid=popen.pid,
        argv=list(argv),
        log_path=str(log_path),
        start_time=start_time,
    )


def _signal_group(proc: ManagedProcess, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(proc: ManagedProcess) -> bool:
    """Whether signalling ``proc``'s group reaches our processes and no one else's."""
    current = process_start_time(proc.pid)
    if current is not None:
        return current == proc.start_time
    # The leader is gone and its PID unused: a PID is not reused while it names a
    # live process group, so a remaining group holds the leader's orphaned children.
    return _group_exists(proc.pid)


def stop_all(procs: Iterable[ManagedProcess], timeout: float = 15.0) -> list[str]:
    """SIGTERM each process group, wait, SIGKILL what remains after ``timeout``; names of those stopped."""
    targets: list[ManagedProcess] = []
    for proc in procs:
        if _ours(proc):
            targets.append(proc)
        else:
            log.info(
                "%s is not running (or its PID now belongs to another program): not signalled",
                proc.name,
            )
    for proc in targets:
        log.info("stopping %s (pid %d)", proc.name, proc.pid)
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_still_there(p) for p in targets):
        time.sleep(POLL_INTERVAL_S)
    for proc in targets:
        if _still_there(proc):
            log.warning(
                "%s (pid %d) still running %.0f s after SIGTERM: killing it",
                proc.name,
                proc.pid,
                timeout,
            )
            _signal_group(proc, signal.SIGKILL)
    while any(_still_there(p) for p in targets):
        time.sleep(POLL_INTERVAL_S)
    return [p.name for p in targets]


def _still_there(proc: ManagedProcess) -> bool:
    return proc.is_alive() or (process_start_time(proc.pid) is None and _group_exists(proc.pid))


def stop(proc: ManagedProcess, timeout: float = 15.0) -> bool:
    """Stop one process group; False when it was not running (or its PID now belongs to someone else)."""
    return bool(stop_all([proc], timeout))


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    proc: ManagedProcess | None = None,
) -> None:
    """Poll ``predicate`` until it is true; raise StackError (with the log tail) on timeout or death."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if proc is not None and not proc.is_alive():
            raise StackError(f"{proc.name} exited while waiting for {what}; log {proc.log_path}:\n{proc.log_tail()}")
        if time.monotonic() >= deadline:
            tail = f"; log {proc.log_path}:\n{proc.log_tail()}" if proc is not None else ""
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(POLL_INTERVAL_S)
