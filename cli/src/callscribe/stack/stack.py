"""``callscribe stack up|down|status|restart``: the whole local stack in one directory (``home``).

``home/stack.json`` records what ``up`` started (PID and start time of each process, and each
service's environment), so ``down`` stops exactly those processes and nothing else, and ``restart``
starts one service again as ``up`` did.

Which home (``locate_home``): ``--home`` > ``$CALLSCRIBE_HOME`` > a ``.stack`` directory in the
current directory or any parent (as git finds ``.git``) > the stack ``up`` started last, recorded in
``$XDG_STATE_HOME/callscribe/last-stack`` (default ``~/.local/state``) and ignored once it is gone >
``./.stack`` (where ``up`` creates one).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callscribe.kit.files import write_json_atomically
from callscribe.stack import servers
from callscribe.stack.procs import SERVER_STOP_S, ManagedProcess, StackError, stop, stop_all
from callscribe.stack.services import (
    HOT_LOCK_GRACE_DAYS,
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
    write_tenants_file,
)
from callscribe.storage.keys import FileKek

log = logging.getLogger(__name__)

HOT_BUCKET = "callscribe-hot"
COLD_BUCKET = "callscribe-cold"
KEYS_BUCKET = "callscribe-keys"  # wrapped data keys (encryption at rest): no versioning, no Object Lock
KEK_FILE = "kek.json"  # the local stack's key-encryption key (a keyring file, mode 0600)
STATE_FILE = "stack.json"


class StackAlreadyRunningError(StackError):
    """``up`` was asked for a home whose stack still runs."""


HOME_ENV = "CALLSCRIBE_HOME"
STACK_DIR = ".stack"
LAST_STACK_FILE = "last-stack"


@dataclass(frozen=True)
class Home:
    """A stack directory and how it was found (for messages: "found from --home", ...)."""

    path: Path
    found_by: str


def last_stack_file() -> Path:
    """``$XDG_STATE_HOME/callscribe/last-stack`` (``~/.local/state`` when unset or not absolute)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "callscribe" / LAST_STACK_FILE


def _last_started() -> Path | None:
    """The home ``up`` recorded last, when a stack still runs there."""
    try:
        text = last_stack_file().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    home = Path(text)
    return home if status(home).get("running") else None


def _record_last_started(home: Path) -> None:
    path = last_stack_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(f"{home}\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        # The stack runs; only finding it from other directories is lost. Say so, and go on.
        log.warning("could not record %s in %s (%s): pass --home %s from other directories", home, path, exc, home)


def locate_home(home: Path | str | None = None, *, for_up: bool = False) -> Home:
    """Which stack directory a command means (see the module's docstring); ``for_up`` skips the last-started
    stack (``up`` starts one here, it does not reuse one that runs elsewhere)."""
    if home is not None:
        return Home(Path(home).absolute(), "--home")
    if os.environ.get(HOME_ENV):
        return Home(Path(os.environ[HOME_ENV]).absolute(), HOME_ENV)
    cwd = Path.cwd()
    for directory in (cwd, *cwd.parents):
        if (directory / STACK_DIR).is_dir():
            return Home(directory / STACK_DIR, f"the {STACK_DIR} directory nearest to {cwd}")
    if not for_up:
        last = _last_started()
        if last is not None:
            return Home(last, f"the stack started last ({last_stack_file()})")
    return Home(cwd / STACK_DIR, f"no {STACK_DIR} in {cwd} or its parents, and no stack started elsewhere runs")


def no_stack_hint(home: Home) -> str:
    """What every "no local stack" message says: where it looked, how to start one, how to point at one."""
    return (
        f"no local stack runs in {home.path} ({home.found_by}): start one with 'callscribe stack up', "
        f"or name its directory with --home DIR or {HOME_ENV}=DIR"
    )


def _home(home: Path | str | None) -> Path:
    return locate_home(home).path


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
    cold_server: bool = False,
) -> dict[str, Any]:
    """Start the local stack in ``home``; returns its state (see ``status``).

    ``services`` defaults to the installed ones; pass ``()`` for the servers only.
    On any failure everything started so far is stopped and the error is raised.
    """
    home = locate_home(home, for_up=True).path
    wanted = available_services() if services is None else tuple(services)
    unknown = sorted(set(wanted) - set(SERVICES))
    if unknown:
        raise StackError(f"unknown services {unknown}; known: {', '.join(SERVICES)}")
    if "worker" in wanted and not {"vad", "asr", "indexer"} <= set(wanted):
        raise StackError("the worker needs the vad, asr and indexer services: start them too, or leave the worker out")
    if "lifecycle" in wanted and "indexer" not in wanted:
        raise StackError("the lifecycle needs the indexer service: start it too, or leave the lifecycle out")
    with _locked(home):
        _refuse_if_running(home)
        state: dict[str, Any] = {
            "home": str(home),
            "started_at": time.time(),
            "processes": {},
        }
        if "lifecycle" in wanted:  # the lifecycle moves recordings in time: hot copies locked hot_days + grace
            state["hot_lock_grace_days"] = HOT_LOCK_GRACE_DAYS
        try:
            _start_servers(home, state, cold_server)
            _start_services(home, state, wanted)
            if prometheus:
                _start_prometheus(home, state)
        except BaseException:
            log.error("stack start failed: stopping what was started")
            _stop_recorded(state)
            raise
        write_json_atomically(home / STATE_FILE, state)
    _record_last_started(home)
    log.info("local stack up in %s", home)
    return _with_liveness(state)


def _refuse_if_running(home: Path) -> None:
    previous = _load(home)
    if previous is None:
        return
    procs = _processes(previous)
    alive = [p.name for p in procs if p.is_alive()]
    if alive:
        message = f"a local stack is already running in {home} ({', '.join(alive)})"
        servers_down = [p.name for p in procs if p.name not in SERVICES and p.name not in alive]
        services_down = [p.name for p in procs if p.name in SERVICES and p.name not in alive]
        if servers_down:
            message += f"; {', '.join(servers_down)} stopped: run 'callscribe stack down', then 'callscribe stack up'"
        elif services_down:
            message += f"; {', '.join(services_down)} stopped: run " + " and ".join(
                f"'callscribe stack restart {name}'" for name in services_down
            )
        else:
            message += ": run 'callscribe stack down' first"
        raise StackAlreadyRunningError(message)
    log.warning("removing stale state %s (none of its processes runs)", home / STATE_FILE)
    (home / STATE_FILE).unlink()


def _start_servers(home: Path, state: dict[str, Any], cold_server: bool = False) -> None:
    data, logs = home / "data", home / "logs"
    s3 = servers.start_seaweedfs(data / "s3", logs / "s3.log")
    _record(state, s3.process)
    servers.create_locked_buckets(s3, (HOT_BUCKET,) if cold_server else (HOT_BUCKET, COLD_BUCKET))
    servers.create_keys_bucket(s3, KEYS_BUCKET)
    state["s3"] = {
        "endpoint": s3.endpoint,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "hot_bucket": HOT_BUCKET,
        "cold_bucket": COLD_BUCKET,
        "keys_bucket": KEYS_BUCKET,
        "metrics": s3.metrics_url,
    }
    kek = home / KEK_FILE
    if not kek.exists():
        FileKek.create(kek)  # recordings are encrypted at rest in the local stack (README "Data protection")
    state["kek_file"] = str(kek)
    if cold_server:  # the cold tier on a second S3, as a capacity cluster beside an SSD one
        cold = servers.start_seaweedfs(data / "s3-cold", logs / "s3-cold.log", name="s3-cold")
        _record(state, cold.process)
        servers.create_locked_buckets(cold, (COLD_BUCKET,))
        state["s3"]["cold"] = {"endpoint": cold.endpoint, "access_key": cold.access_key, "secret_key": cold.secret_key}
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
    state["grpc"], state["metrics"], state["env"] = {}, {}, {}
    for name in names:
        env = service_env(name, state)
        proc = start_service(name, env, home / "logs" / f"{name}.log")
        _record(state, proc)
        state["env"][name] = env  # what `restart` starts it with again
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
    """The recorded state with each process's liveness, or ``{"home": ..., "running": False, "hint": ...}``."""
    located = locate_home(home)
    state = _load(located.path)
    if state is None:
        return {"home": str(located.path), "running": False, "hint": no_stack_hint(located)}
    return _with_liveness(state)


# Redis restarts in place (same port, its append-only file): what survives a restart is what users ask.
RESTARTABLE: tuple[str, ...] = (*SERVICES, "redis")


def _restart_redis(home: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Stop Redis (SIGTERM: it writes its append-only file) and start it on the same port with the same data."""
    old = ManagedProcess.from_dict(state["processes"]["redis"])
    stop(old)
    port = int(state["redis"]["url"].rsplit(":", 1)[1].split("/", 1)[0])
    rds = servers.start_redis(home / "data" / "redis", Path(old.log_path), port=port, durable=True)
    _record(state, rds.process)
    write_json_atomically(home / STATE_FILE, state)
    log.info("restarted redis in %s (pid %d)", home, rds.process.pid)
    return _with_liveness(state)


def restart(home: Path | str | None, name: str) -> dict[str, Any]:
    """Stop service ``name`` of the stack in ``home`` if it runs, start it again with the environment ``up``
    gave it (same addresses, so the worker, Prometheus and the CLI find it where they did), record its new
    PID; returns the state (see ``status``)."""
    if name not in RESTARTABLE:
        raise StackError(f"unknown service {name!r}; known: {', '.join(RESTARTABLE)}")
    located = locate_home(home)
    home = located.path
    with _locked(home):
        state = _load(home)
        if state is None or not _with_liveness(state)["running"]:
            raise StackError(no_stack_hint(located))
        if name == "redis":
            return _restart_redis(home, state)
        entry = state["processes"].get(name)
        env = state.get("env", {}).get(name)
        if entry is None:
            started = ", ".join(n for n in state["processes"] if n in SERVICES) or "no service"
            raise StackError(
                f"{name} is not part of the local stack in {home} (it started {started}): "
                f"'callscribe stack down', then 'callscribe stack up' starts every installed service"
            )
        if env is None:
            raise StackError(
                f"the local stack in {home} was started by an older callscribe that did not record {name}'s "
                "environment: run 'callscribe stack down', then 'callscribe stack up'"
            )
        servers_down = [p.name for p in _processes(state) if p.name not in SERVICES and not p.is_alive()]
        if servers_down:
            raise StackError(
                f"{', '.join(servers_down)} of the local stack in {home} stopped, and {name} needs them: "
                "run 'callscribe stack down', then 'callscribe stack up'"
            )
        old = ManagedProcess.from_dict(entry)
        if stop(old):
            log.info("stopped %s (pid %d)", name, old.pid)
        try:
            proc = start_service(name, env, Path(old.log_path))
        except StackError as exc:
            address = state.get("grpc", {}).get(name, "its address")
            raise StackError(
                f"{name} did not start again on {address}: {exc}\n"
                "(if another program took the port: 'callscribe stack down', then 'callscribe stack up')"
            ) from exc
        _record(state, proc)
        address = grpc_address(name, env)
        if address is not None:
            state["grpc"][name] = address
        write_json_atomically(home / STATE_FILE, state)
    log.info("restarted %s in %s (pid %d)", name, home, proc.pid)
    return _with_liveness(state)
