"""The local stack: fixture servers answer, up/status/down lifecycle, PID-reuse safety."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from callscribe.cli.main import main as cli_main
from callscribe.stack import servers, stack
from callscribe.stack.commands import add_stack_parser
from callscribe.stack.procs import ManagedProcess, StackError, spawn, stop, wait_until
from callscribe.stack.servers import http_status
from callscribe.stack.services import service_env, start_service


def test_s3_buckets_have_object_lock(s3_server: Any, minio_client: Minio) -> None:
    for bucket in (s3_server.hot_bucket, s3_server.cold_bucket):
        minio_client.get_object_lock_config(bucket)  # raises when Object Lock is off
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    written = minio_client.put_object(
        s3_server.hot_bucket,
        "locked.txt",
        io.BytesIO(b"x"),
        1,
        retention=Retention(COMPLIANCE, until),
    )
    with pytest.raises(S3Error):
        minio_client.remove_object(s3_server.hot_bucket, "locked.txt", version_id=written.version_id)


def test_redis_answers(redis_server: Any) -> None:
    assert redis.Redis.from_url(redis_server.url).ping()


def test_elasticsearch_answers(es_server: Any) -> None:
    assert http_status(f"{es_server.url}/") == 200


def _cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="callscribe")
    add_stack_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code = args.func(args)
    return code, capsys.readouterr().out


def test_up_status_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    stack.up(home, services=())
    try:
        with pytest.raises(stack.StackAlreadyRunningError, match="already running"):
            stack.up(home, services=())
        code, out = _cli("stack", "status", "--json", "--home", str(home), capsys=capsys)
        assert code == 0
        state = json.loads(out)
        for key in (
            "endpoint",
            "access_key",
            "secret_key",
            "hot_bucket",
            "cold_bucket",
        ):
            assert state["s3"][key]
        assert state["s3"]["hot_bucket"] == "callscribe-hot"
        assert state["s3"]["cold_bucket"] == "callscribe-cold"
        assert state["elasticsearch"]["url"].startswith("http://127.0.0.1:")
        assert state["redis"]["url"].startswith("redis://127.0.0.1:")
        assert state["grpc"] == {} and state["metrics"] == {}
        assert set(state["tenants"]) == {"acme", "globex"}
        assert http_status(state["prometheus"]["url"] + "/-/ready") == 200
        names = {"s3", "elasticsearch", "redis", "prometheus"}
        assert set(state["processes"]) == names
        assert all(p["alive"] and Path(p["log"]).exists() for p in state["processes"].values())
        assert redis.Redis.from_url(state["redis"]["url"]).ping()
        tenants = json.loads(Path(state["tenants_file"]).read_text())["tenants"]
        assert tenants["acme"]["retention_mode"] == "COMPLIANCE"
        assert tenants["acme"]["retention_days"] == 1825
    finally:
        stopped = stack.down(home)
    assert set(stopped) == names
    for proc in state["processes"].values():
        assert not ManagedProcess.from_dict(proc).is_alive()
    assert stack.down(home) == []
    code, out = _cli("stack", "status", "--home", str(home), capsys=capsys)
    assert code == 3 and "no local stack" in out


def test_queue_state_survives_stack_down_and_up(tmp_path: Path) -> None:
    """The local stack's Redis writes an append-only file (fsync every second): dead letters, progress
    and the queue are still there after `stack down` / `stack up`."""
    home = tmp_path / "home"
    state = stack.up(home, services=())
    try:
        client = redis.Redis.from_url(state["redis"]["url"], decode_responses=True)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        client.xadd("callscribe:jobs:dead", {"recording_id": "r1", "reason": "kept across restarts"})
        client.hset("callscribe:state:r1", mapping={"state": "failed", "detail": "asr: kept"})
        time.sleep(1.5)  # past one everysec fsync (what a stop may lose at most is documented as 1 s)
    finally:
        stack.down(home)
    state = stack.up(home, services=())
    try:
        client = redis.Redis.from_url(state["redis"]["url"], decode_responses=True)
        entries = client.xrange("callscribe:jobs:dead")
        assert [fields["reason"] for _, fields in entries] == ["kept across restarts"]
        assert client.hget("callscribe:state:r1", "state") == "failed"
        # `stack restart redis`: the same port, the same data, a new process.
        pid = state["processes"]["redis"]["pid"]
        again = stack.restart(home, "redis")
        assert again["redis"]["url"] == state["redis"]["url"]
        assert again["processes"]["redis"]["pid"] != pid and again["processes"]["redis"]["alive"]
        client = redis.Redis.from_url(again["redis"]["url"], decode_responses=True)
        assert client.hget("callscribe:state:r1", "state") == "failed"
    finally:
        stack.down(home)


def _sleeper(tmp_path: Path) -> ManagedProcess:
    return spawn(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        dict(os.environ),
        tmp_path / "s.log",
    )


def test_reused_pid_is_not_stopped(tmp_path: Path) -> None:
    other = _sleeper(tmp_path)
    try:
        # A record whose PID now belongs to another program: same PID, different start time.
        stale = ManagedProcess("s3", other.pid, ["weed"], str(tmp_path / "s3.log"), other.start_time - 1)
        assert not stale.is_alive()
        assert stop(stale, timeout=1) is False
        home = tmp_path / "home"
        home.mkdir()
        entry = stale.to_dict() | {"log": stale.log_path}
        (home / "stack.json").write_text(json.dumps({"home": str(home), "processes": {"s3": entry}}))
        assert stack.status(home)["running"] is False
        assert stack.down(home) == []
        assert other.is_alive()
    finally:
        assert stop(other, timeout=5)
    assert not other.is_alive()


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    proc = spawn(
        "stubborn",
        [sys.executable, "-c", code],
        dict(os.environ),
        tmp_path / "stubborn.log",
    )
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "stubborn.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    assert stop(proc, timeout=0.5)
    assert not proc.is_alive()
    assert time.monotonic() - started < 5


def test_wait_until_reports_death_with_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('bad config: no port'); sys.exit(2)"
    proc = spawn(
        "broken",
        [sys.executable, "-c", code],
        dict(os.environ),
        tmp_path / "broken.log",
    )
    with pytest.raises(StackError, match="(?s)broken exited.*bad config: no port"):
        wait_until(lambda: False, 10, "readiness", proc)


def test_up_failing_midway_stops_what_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[ManagedProcess] = []

    def recording(real: Callable[..., Any]) -> Callable[..., Any]:
        def start(*args: Any, **kwargs: Any) -> Any:
            server = real(*args, **kwargs)
            started.append(server.process)
            return server

        return start

    def start_prometheus(*args: Any, **kwargs: Any) -> None:
        raise StackError("prometheus refused to start")

    for name in ("start_seaweedfs", "start_elasticsearch", "start_redis"):
        monkeypatch.setattr(servers, name, recording(getattr(servers, name)))
    monkeypatch.setattr(servers, "start_prometheus", start_prometheus)
    home = tmp_path / "home"
    with pytest.raises(StackError, match="prometheus refused"):
        stack.up(home, services=())
    assert [p.name for p in started] == ["s3", "elasticsearch", "redis"]
    assert not any(p.is_alive() for p in started)
    assert not (home / "stack.json").exists()


FAKE_SERVICE = """
import os, signal, sys, threading
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
if os.environ.get("FAKESVC_FAIL"):
    sys.exit("fakesvc: cannot reach S3")
server = grpc.server(futures.ThreadPoolExecutor(2))
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port(os.environ["FAKESVC_GRPC_ADDRESS"])
server.start()
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
server.stop(0)
"""


@pytest.fixture
def fake_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``callscribe.fakesvc``: a gRPC health server, in the ``callscribe`` namespace."""
    package = tmp_path / "fake" / "callscribe" / "fakesvc"
    package.mkdir(parents=True)
    (package / "__main__.py").write_text(FAKE_SERVICE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    return "fakesvc"


def _fake_state(tmp_path: Path) -> dict[str, Any]:
    s3 = {"endpoint": "http://127.0.0.1:1", "access_key": "K", "secret_key": "S"}
    return {
        "home": str(tmp_path),
        "tenants_file": str(tmp_path / "tenants.json"),
        "s3": s3 | {"hot_bucket": "h", "cold_bucket": "c"},
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "elasticsearch": {"url": "http://127.0.0.1:2"},
    }


def test_service_env_names(tmp_path: Path) -> None:
    env = service_env("ingest", _fake_state(tmp_path))
    assert env["INGEST_S3_ENDPOINT"] == "http://127.0.0.1:1"
    assert env["INGEST_GRPC_ADDRESS"].startswith("127.0.0.1:")
    assert Path(env["INGEST_SPOOL_DIR"]).is_dir()
    assert "INGEST_ELASTICSEARCH_URL" not in env
    assert service_env("indexer", _fake_state(tmp_path))["INDEXER_ELASTICSEARCH_URL"]


def test_start_service_waits_for_health(tmp_path: Path, fake_service: str) -> None:
    env = service_env(fake_service, _fake_state(tmp_path))
    proc = start_service(fake_service, env, tmp_path / "fakesvc.log")
    assert proc.is_alive()
    assert stop(proc)


def test_start_service_failure_shows_log(tmp_path: Path, fake_service: str) -> None:
    env = service_env(fake_service, _fake_state(tmp_path)) | {"FAKESVC_FAIL": "1"}
    with pytest.raises(StackError, match="cannot reach S3"):
        start_service(fake_service, env, tmp_path / "fakesvc.log")


# -- finding the stack from anywhere, restarting one service -------------------------------------------------------


@pytest.fixture
def no_home_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $CALLSCRIBE_HOME, and a state directory of this test's own (for last-stack)."""
    monkeypatch.delenv("CALLSCRIBE_HOME", raising=False)
    state_home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    return state_home


def test_home_is_flag_then_env_then_nearest_dot_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_home_env: Path
) -> None:
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    (project / ".stack").mkdir()
    monkeypatch.chdir(deep)
    found = stack.locate_home()
    assert found.path == project / ".stack" and ".stack directory nearest" in found.found_by
    monkeypatch.setenv("CALLSCRIBE_HOME", str(tmp_path / "from-env"))
    assert stack.locate_home().path == tmp_path / "from-env"
    assert stack.locate_home(tmp_path / "flag").path == tmp_path / "flag"
    monkeypatch.delenv("CALLSCRIBE_HOME")
    monkeypatch.chdir(tmp_path)  # no .stack here or above, no stack started: ./.stack, where `up` would create one
    assert stack.locate_home().path == tmp_path / ".stack"
    hint = stack.status()["hint"]
    assert "--home DIR" in hint and "CALLSCRIBE_HOME" in hint and "callscribe stack up" in hint


def test_restart_a_service_and_use_the_stack_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_home_env: Path
) -> None:
    home = tmp_path / "project" / ".stack"
    deep = tmp_path / "project" / "src" / "deep"
    elsewhere = tmp_path / "elsewhere"
    deep.mkdir(parents=True)
    elsewhere.mkdir()
    state = stack.up(home, services=("ingest",), prometheus=False)
    try:
        assert (no_home_env / "callscribe" / "last-stack").read_text().strip() == str(home)
        address, first = state["grpc"]["ingest"], ManagedProcess.from_dict(state["processes"]["ingest"])

        monkeypatch.chdir(deep)  # below the project: its .stack is found as git finds .git
        assert cli_main(["list", "--tenant", "acme"]) == 0
        monkeypatch.chdir(elsewhere)  # outside it: the stack started last
        found = stack.locate_home()
        assert found.path == home and "started last" in found.found_by
        assert cli_main(["list", "--tenant", "acme"]) == 0
        capsys.readouterr()

        os.killpg(first.pid, signal.SIGKILL)  # ingest crashes
        wait_until(lambda: not first.is_alive(), 10, "ingest gone")
        code, out = _cli("stack", "status", capsys=capsys)
        assert code == 0 and "ingest is not running: 'callscribe stack restart ingest'" in out
        assert cli_main(["list", "--tenant", "acme"]) == 2
        assert "'callscribe stack restart ingest'" in capsys.readouterr().err
        refusal = r"ingest stopped: run 'callscribe stack restart ingest'"
        with pytest.raises(stack.StackAlreadyRunningError, match=refusal):
            stack.up(home, services=("ingest",), prometheus=False)

        code, out = _cli("stack", "restart", "ingest", capsys=capsys)
        assert code == 0, out
        after = stack.status(home)
        second = ManagedProcess.from_dict(after["processes"]["ingest"])
        assert second.pid != first.pid and second.is_alive()
        assert after["grpc"]["ingest"] == address  # same environment, same address: nothing else has to change
        assert f"restarted ingest in {home}: pid {second.pid}, grpc {address}" in out
        assert cli_main(["list", "--tenant", "acme"]) == 0

        code, _ = _cli("stack", "restart", "ingest", "--home", str(home), capsys=capsys)  # while it runs
        assert code == 0
        third = ManagedProcess.from_dict(stack.status(home)["processes"]["ingest"])
        assert not second.is_alive() and third.is_alive() and third.pid != second.pid
        with pytest.raises(StackError, match="vad is not part of the local stack"):
            stack.restart(home, "vad")
    finally:
        stack.down(home)
    # The stack started last is gone: ignored; from elsewhere there is no stack, and the hint says how to name one.
    assert stack.locate_home().path == elsewhere / ".stack"
    assert cli_main(["list", "--tenant", "acme"]) == 2
    err = capsys.readouterr().err
    assert "no local stack runs in" in err and "--home DIR" in err and "CALLSCRIBE_HOME" in err
