"""``callscribe stack up|down|status``: the whole local stack in one directory (``home``).

``home/stack.json`` records what ``up`` started (PID and start time of each process),
so ``down`` stops exactly those processes and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from callscribe.stack import servers
from callscribe.stack.procs import SERVER_STOP_S, ManagedProcess, StackError, stop_all
from callscribe.stack.services import (
    SERVICES,
    available_services,
    grpc_address,
    metrics_url,
    service_env,
    start_service,
)
from callscribe.stack.tenants import (
    LOCAL_TENANTS,
    new_token,
    write_json_atomically,
    write_tenants_file,
)

log = logging.getLogger(__name__)

HOT_BUCKET = "callscribe-hot"
COLD_BUCKET = "callscribe-cold"
STATE_FILE = "stack.json"


class StackAlreadyRunningError(StackError):
    """``up`` was asked for a home whose stack still runs."""


def default_home() -> Path:
    return Path(os.environ.get("CALLSCRIBE_HOME") or ".stack")


def _home(home: Path | str | None) -> Path:
    return Path(home).absolute() if home is not None else default_home().absolute()


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialise up/down/status on one home (two concurrent ``up`` would both start a stack)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load(home: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((home / STATE_FILE).read_text()))
    except FileNotFoundError:
        return None


def _processes(state: dict[str, Any]) -> list[ManagedProcess]:
    return [ManagedProcess.from_dict(p) for p in state.get("processes", {}).values()]


def _with_liveness(state: dict[str, Any]) -> dict[str, Any]:
    result = json.loads(json.dumps(state))
    for entry in result.get("processes", {}).values():
        entry["alive"] = ManagedProcess.from_dict(entry).is_alive()
    result["running"] = any(e["alive"] for e in result.get("processes", {}).values())
    return result


def _record(state: dict[str, Any], proc: ManagedProcess) -> None:
    entry = proc.to_dict()
    entry["log"] = entry["log_path"]
    state["processes"][proc.name] = entry


def up(
    home: Path | str | None = None,
    services: Iterable[str] | None = None,
    prometheus: bool = True,
) -> dict[str, Any]:
    """Start the local stack in ``home``; returns its state (see ``status``).

    ``services`` defaults to the installed ones; pass ``()`` for the servers only.
    On any failure everything started so far is stopped and the error is raised.
    """
    home = _home(home)
    wanted = available_services() if services is None else tuple(services)
    unknown = sorted(set(wanted) - set(SERVICES))
    if unknown:
        raise StackError(f"unknown services {unknown}; known: {', '.join(SERVICES)}")
    if "worker" in wanted and not {"vad", "asr", "indexer"} <= set(wanted):
        raise StackError("the worker needs the vad, asr and indexer services: start them too, or leave the worker out")
    with _locked(home):
        _refuse_if_running(home)
        state: dict[str, Any] = {
            "home": str(home),
            "started_at": time.time(),
            "processes": {},
        }
        try:
            _start_servers(home, state)
            _start_services(home, state, wanted)
            if prometheus:
                _start_prometheus(home, state)
        except BaseException:
            log.error("stack start failed: stopping what was started")
            _stop_recorded(state)
            raise
        write_json_atomically(home / STATE_FILE, state)
    log.info("local stack up in %s", home)
    return _with_liveness(state)


def _refuse_if_running(home: Path) -> None:
    previous = _load(home)
    if previous is None:
        return
    alive = [p.name for p in _processes(previous) if p.is_alive()]
    if alive:
        raise StackAlreadyRunningError(
            f"a local stack is already running in {home} ({', '.join(alive)}): run 'callscribe stack down' first"
        )
    log.warning("removing stale state %s (none of its processes runs)", home / STATE_FILE)
    (home / STATE_FILE).unlink()


def _start_servers(home: Path, state: dict[str, Any]) -> None:
    data, logs = home / "data", home / "logs"
    s3 = servers.start_seaweedfs(data / "s3", logs / "s3.log")
    _record(state, s3.process)
    servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET))
    state["s3"] = {
        "endpoint": s3.endpoint,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "hot_bucket": HOT_BUCKET,
        "cold_bucket": COLD_BUCKET,
        "metrics": s3.metrics_url,
    }
    es = servers.start_elasticsearch(data / "elasticsearch", logs / "elasticsearch.log")
    _record(state, es.process)
    state["elasticsearch"] = {"url": es.url}
    rds = servers.start_redis(data / "redis", logs / "redis.log", durable=True)
    _record(state, rds.process)
    state["redis"] = {"url": rds.url}
    tenants_file = home / "tenants.json"
    state["service_token"] = new_token()
    state["tenants"] = write_tenants_file(tenants_file, LOCAL_TENANTS, {"pipeline": state["service_token"]})
    state["tenants_file"] = str(tenants_file)


def _start_services(home: Path, state: dict[str, Any], names: Iterable[str]) -> None:
    state["grpc"], state["metrics"] = {}, {}
    for name in names:
        env = service_env(name, state)
        proc = start_service(name, env, home / "logs" / f"{name}.log")
        _record(state, proc)
        address = grpc_address(name, env)
        if address is not None:
            state["grpc"][name] = address
        state["metrics"][name] = metrics_url(name, env)


def _start_prometheus(home: Path, state: dict[str, Any]) -> None:
    targets = {**state["metrics"], "seaweedfs": state["s3"]["metrics"]}
    prom = servers.start_prometheus(home / "data" / "prometheus", targets, home / "logs" / "prometheus.log")
    if prom is not None:
        _record(state, prom.process)
        state["prometheus"] = {"url": prom.url}


def _stop_recorded(state: dict[str, Any]) -> list[str]:
    """Services first (they use the servers), then Prometheus and the servers together."""
    procs = _processes(state)
    first = [p for p in procs if p.name in SERVICES]
    rest = [p for p in procs if p.name not in SERVICES]
    return stop_all(reversed(first)) + stop_all(reversed(rest), timeout=SERVER_STOP_S)


def down(home: Path | str | None = None) -> list[str]:
    """Stop what ``up`` recorded in ``home`` (only those PIDs, checked by start time); names stopped."""
    home = _home(home)
    if not (home / STATE_FILE).exists():
        return []
    with _locked(home):
        state = _load(home)
        if state is None:
            return []
        stopped = _stop_recorded(state)
        (home / STATE_FILE).unlink(missing_ok=True)
    log.info("local stack in %s down: stopped %s", home, ", ".join(stopped) or "nothing")
    return stopped


def status(home: Path | str | None = None) -> dict[str, Any]:
    """The recorded state with each process's liveness, or ``{"home": ..., "running": False}``."""
    home = _home(home)
    state = _load(home)
    if state is None:
        return {"home": str(home), "running": False}
    return _with_liveness(state)
