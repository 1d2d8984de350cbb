"""The callscribe services as child processes of the local stack."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callscribe.stack.procs import ManagedProcess, free_port, spawn, stop, wait_until

log = logging.getLogger(__name__)

SERVICES: tuple[str, ...] = ("ingest", "vad", "asr", "indexer", "worker", "lifecycle")
# The pipeline worker and the storage lifecycle are the ingest service's second and third programs; they read
# the INGEST_* environment and serve gRPC (health; the lifecycle also LifecycleService) and metrics.
WORKER = "worker"
LIFECYCLE = "lifecycle"
INGEST_PROGRAMS = (WORKER, LIFECYCLE)
_MODULES = {name: f"callscribe.{name}.main" for name in SERVICES} | {
    "ingest": "callscribe.ingest.upload.main",
    WORKER: "callscribe.ingest.pipeline.main",
    LIFECYCLE: "callscribe.ingest.lifecycle.main",
}
# Tiering in the local stack: hot copies locked hot_days (90 by default) + this, the lifecycle moves them.
HOT_LOCK_GRACE_DAYS = "30"
HEALTH_TIMEOUT_S = 60.0
HOST = "127.0.0.1"


def available_services() -> tuple[str, ...]:
    """The services that are installed (later ones are built later)."""
    found = []
    for name in SERVICES:
        try:
            spec = importlib.util.find_spec(_MODULES[name])
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found.append(name)
    return tuple(found)


def service_env(name: str, state: Mapping[str, Any]) -> dict[str, str]:
    """The environment of service ``name``, from the stack state (see ``stack.py``); new ports each call.

    ``state`` needs ``home``, ``tenants_file``, ``s3.*``, ``redis.url`` and ``elasticsearch.url``.
    """
    # Every service gets the hot S3: ingest and the readers of recordings for the audio, the indexer for the
    # access trail it appends exports to (INDEXER_S3_* and INDEXER_HOT_BUCKET).
    prefix = "INGEST" if name in INGEST_PROGRAMS else name.upper()
    spool = Path(state["home"]) / "spool" / name
    spool.mkdir(parents=True, exist_ok=True)
    s3 = state["s3"]
    env = {
        "GRPC_ADDRESS": f"{HOST}:{free_port()}",
        "METRICS_ADDRESS": f"{HOST}:{free_port()}",
        "S3_ENDPOINT": s3["endpoint"],
        "S3_ACCESS_KEY": s3["access_key"],
        "S3_SECRET_KEY": s3["secret_key"],
        "HOT_BUCKET": s3["hot_bucket"],
        "COLD_BUCKET": s3["cold_bucket"],
        "REDIS_URL": state["redis"]["url"],
        "TENANTS_FILE": str(state["tenants_file"]),
        "SPOOL_DIR": str(spool),
        "LOG_LEVEL": "INFO",
    }
    if name == "indexer":
        env["ELASTICSEARCH_URL"] = state["elasticsearch"]["url"]
    cold = s3.get("cold")  # the cold tier on a second S3 (tests): every reader of recordings gets it
    if cold and name in ("ingest", "vad", "asr", WORKER, LIFECYCLE):
        env.update(
            {"COLD_S3_ENDPOINT": cold["endpoint"], "COLD_S3_ACCESS_KEY": cold["access_key"],
             "COLD_S3_SECRET_KEY": cold["secret_key"]}
        )  # fmt: skip
    if name in ("ingest", "vad", "asr", "indexer", WORKER, LIFECYCLE) and state.get("kek_file"):
        env["KEK_FILE"] = str(state["kek_file"])  # encryption at rest: every writer and reader of recordings
        env["KEYS_BUCKET"] = s3["keys_bucket"]
    if name in ("ingest", WORKER, LIFECYCLE) and state.get("hot_lock_grace_days"):
        env["HOT_LOCK_GRACE_DAYS"] = str(state["hot_lock_grace_days"])  # tiering on (the local stack's default)
    if name == WORKER:
        del env["GRPC_ADDRESS"], env["METRICS_ADDRESS"]
        env["WORKER_GRPC_ADDRESS"] = f"{HOST}:{free_port()}"
        env["WORKER_METRICS_ADDRESS"] = f"{HOST}:{free_port()}"
        env["VAD_ADDRESS"] = state["grpc"]["vad"]
        env["ASR_ADDRESS"] = state["grpc"]["asr"]
        env["INDEXER_ADDRESS"] = state["grpc"]["indexer"]
        env["SERVICE_TOKEN"] = state["service_token"]
    if name == LIFECYCLE:
        del env["GRPC_ADDRESS"], env["METRICS_ADDRESS"]
        env["LIFECYCLE_GRPC_ADDRESS"] = f"{HOST}:{free_port()}"
        env["LIFECYCLE_METRICS_ADDRESS"] = f"{HOST}:{free_port()}"
        env["INDEXER_ADDRESS"] = state["grpc"]["indexer"]
        env["SERVICE_TOKEN"] = state["service_token"]
    return {f"{prefix}_{key}": value for key, value in env.items()}


def grpc_address(name: str, env: Mapping[str, str]) -> str | None:
    if name in INGEST_PROGRAMS:
        return env[f"INGEST_{name.upper()}_GRPC_ADDRESS"]
    return env[f"{name.upper()}_GRPC_ADDRESS"]


def metrics_url(name: str, env: Mapping[str, str]) -> str:
    if name in INGEST_PROGRAMS:
        return f"http://{env[f'INGEST_{name.upper()}_METRICS_ADDRESS']}/metrics"
    return f"http://{env[f'{name.upper()}_METRICS_ADDRESS']}/metrics"


def _serving(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def start_service(
    name: str, env: Mapping[str, str], log_path: Path, timeout: float = HEALTH_TIMEOUT_S
) -> ManagedProcess:
    """Run ``python -m callscribe.<name>`` (the worker: ``python -m callscribe.ingest worker``) and wait
    until its gRPC health check says SERVING."""
    argv = (
        [sys.executable, "-m", "callscribe.ingest", name]
        if name in INGEST_PROGRAMS
        else [sys.executable, "-m", f"callscribe.{name}"]
    )
    proc = spawn(name, argv, {**os.environ, **env}, log_path)
    address = grpc_address(name, env)
    assert address is not None
    channel = grpc.insecure_channel(address)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        wait_until(
            lambda: _serving(stub),
            timeout,
            f"{name} gRPC health SERVING at {address}",
            proc,
        )
    except BaseException:
        stop(proc)
        raise
    finally:
        channel.close()
    return proc
