"""The ingest service's two programs: one environment for both, and the worker's gRPC health endpoint."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import wait_for

from callscribe.ingest.settings import IngestSettings, PipelineSettings, UploadSettings
from callscribe.stack import servers
from callscribe.stack.procs import free_port, spawn, stop


def _environment(tenants: Path, redis_url: str, s3_endpoint: str = "http://127.0.0.1:9") -> dict[str, str]:
    worker_port, metrics_port = free_port(), free_port()
    return {
        "INGEST_S3_ENDPOINT": s3_endpoint,
        "INGEST_S3_ACCESS_KEY": "key",
        "INGEST_S3_SECRET_KEY": "secret",
        "INGEST_REDIS_URL": redis_url,
        "INGEST_TENANTS_FILE": str(tenants),
        "INGEST_VAD_ADDRESS": "127.0.0.1:9",
        "INGEST_ASR_ADDRESS": "127.0.0.1:9",
        "INGEST_INDEXER_ADDRESS": "127.0.0.1:9",
        "INGEST_SERVICE_TOKEN": "pipeline-token",
        "INGEST_WORKER_GRPC_ADDRESS": f"127.0.0.1:{worker_port}",
        "INGEST_WORKER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
    }


def test_both_programs_read_one_environment_with_shared_fields_defined_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text("{}")
    for name, value in _environment(tenants, "redis://127.0.0.1:6390/0").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INGEST_REDIS_TIMEOUT_SECONDS", "3.5")
    upload, pipeline = UploadSettings(), PipelineSettings()
    shared = set(IngestSettings.model_fields)
    assert {"s3_endpoint", "redis_url", "job_stream", "redis_timeout_seconds", "tenants_file"} <= shared
    for field in shared:
        assert getattr(upload, field) == getattr(pipeline, field), field
    assert upload.redis_timeout_seconds == pipeline.redis_timeout_seconds == 3.5
    # Each program adds only its own fields; neither declares a shared one again.
    assert not (set(UploadSettings.model_fields) - shared) & (set(PipelineSettings.model_fields) - shared)
    assert "vad_address" not in UploadSettings.model_fields
    assert "spool_dir" not in PipelineSettings.model_fields
    # Two programs, one environment: they never listen on the same address.
    assert pipeline.worker_grpc_address != upload.grpc_address
    assert pipeline.worker_metrics_address != upload.metrics_address


def _health(address: str) -> int | None:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return None
    return int(reply.status)


def test_worker_health_is_serving_only_once_redis_answers_and_stops_with_it(
    stack_tmp: Path, tmp_path: Path, tenants_file
) -> None:  # type: ignore[no-untyped-def]
    redis_port = free_port()
    env = _environment(tenants_file.path, f"redis://127.0.0.1:{redis_port}/0")
    address = env["INGEST_WORKER_GRPC_ADDRESS"]
    worker = spawn(
        "worker", [sys.executable, "-m", "callscribe.ingest", "worker"], {**os.environ, **env}, tmp_path / "worker.log"
    )
    redis = None
    try:
        # Up, but Redis is not there yet: the probe answers NOT_SERVING (it is not ready for work).
        log = tmp_path / "worker.log"
        wait_for(
            lambda: _health(address) is not None or not worker.is_alive(), 60, "the worker's health endpoint to answer"
        )
        assert worker.is_alive(), log.read_text()[-2000:]
        assert _health(address) == health_pb2.HealthCheckResponse.NOT_SERVING
        redis = servers.start_redis(stack_tmp / "worker-health-redis", port=redis_port)
        wait_for(
            lambda: _health(address) == health_pb2.HealthCheckResponse.SERVING, 30, "the worker to say SERVING"
        )
        os.killpg(worker.pid, signal.SIGTERM)
        wait_for(lambda: not worker.is_alive(), 30, "the worker to stop on SIGTERM")
        assert _health(address) is None
    finally:
        stop(worker)
        if redis is not None:
            stop(redis.process)
