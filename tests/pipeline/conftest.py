"""The whole pipeline on real servers: SeaweedFS, Redis, the Elasticsearch-API server, and the
ingest, VAD, ASR and indexer services plus the worker, each a process started by the stack's code.

Redis and Elasticsearch are this module's own (the fault tests stop, flush and restart them);
S3 is the session's. Worker timings are shortened (visibility timeout, backoff, reconciliation)
so crashes are recovered within seconds instead of minutes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
from elasticsearch import Elasticsearch

from callscribe.cli.samples import Turn, synthesize_call
from callscribe.cli.uploads import file_sha256
from callscribe.stack import servers
from callscribe.stack.procs import ManagedProcess, stop
from callscribe.stack.services import grpc_address, service_env, start_service
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET, KEYS_BUCKET
from callscribe.stack.tenants import TenantSpec, new_token, write_tenants_file
from callscribe.storage.keys import FileKek
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2, indexer_pb2_grpc, ingest_pb2, ingest_pb2_grpc

TENANTS = ("acme", "globex")
WORKER_ENV = {
    "INGEST_WORKER_CONCURRENCY": "4",
    "INGEST_WORKER_VISIBILITY_TIMEOUT_SECONDS": "6",
    "INGEST_WORKER_BACKOFF_SECONDS": "1",
    "INGEST_WORKER_BACKOFF_MAX_SECONDS": "3",
    "INGEST_WORKER_MAX_ATTEMPTS": "30",
    "INGEST_WORKER_RECONCILE_INTERVAL_SECONDS": "3",
    "INGEST_VAD_TIMEOUT_SECONDS": "60",
    "INGEST_ASR_TIMEOUT_SECONDS": "300",
    "INGEST_INDEXER_TIMEOUT_SECONDS": "30",
}
BASE_CALLS = {
    "refund": [
        Turn("agent", "Thank you for calling, how can I help you?"),
        Turn("customer", "I would like a refund for my order."),
        Turn("agent", "I will send the refund today."),
    ],
    "address": [
        Turn("agent", "Good morning, this is customer support."),
        Turn("customer", "I need to update the address on my account."),
        Turn("agent", "Your address is updated, have a nice day."),
    ],
}


@dataclass
class PipelineStack:
    home: Path
    state: dict[str, Any]
    envs: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    es: servers.EsServer | None = None
    redis: servers.RedisServer | None = None
    s3: servers.S3Server | None = None

    # -- processes -------------------------------------------------------------------------
    def start(self, name: str, **extra: str) -> None:
        env = self.envs.get(name)
        if env is None:
            env = service_env(name, self.state)
            if name == "asr":
                env.update({"ASR_DEVICES": "cpu", "ASR_THREADS_PER_REPLICA": "2"})
            if name == "worker":
                env.update(WORKER_ENV)
            self.envs[name] = env
        env.update(extra)
        self.procs[name] = start_service(name, env, self.home / "logs" / f"{name}.log", timeout=180)
        address = grpc_address(name, env)
        if address is not None:
            self.state["grpc"][name] = address

    def kill(self, name: str) -> None:
        """SIGKILL, no goodbye: the process group of the service."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop_es(self) -> None:
        assert self.es is not None
        stop(self.es.process)

    def start_es(self) -> None:
        port = int(self.state["elasticsearch"]["url"].rsplit(":", 1)[1])
        self.es = servers.start_elasticsearch(self.home / "es", self.home / "logs" / "es.log", port=port)

    def close(self) -> None:
        for name in ("worker", "ingest", "indexer", "asr", "vad"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop(proc)
        for server in (self.es, self.redis, self.s3):
            if server is not None:
                stop(server.process)

    # -- clients ---------------------------------------------------------------------------
    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.state['tenants'][tenant]}"),)

    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(self.state["grpc"]["ingest"]))

    def indexer(self) -> indexer_pb2_grpc.IndexerServiceStub:
        return indexer_pb2_grpc.IndexerServiceStub(grpc.insecure_channel(self.state["grpc"]["indexer"]))

    def es_client(self) -> Elasticsearch:
        return Elasticsearch(self.state["elasticsearch"]["url"], request_timeout=10)

    def upload(self, path: Path, tenant: str, call_id: str, agent: str = "agent-7") -> str:
        meta = c.RecordingMetadata(
            tenant=tenant,
            call_id=call_id,
            agent_id=agent,
            channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
            language=c.LANGUAGE_EN,
            filename=path.name,
        )
        data = path.read_bytes()

        def messages() -> Iterator[ingest_pb2.UploadRecordingRequest]:
            yield ingest_pb2.UploadRecordingRequest(metadata=meta, sha256=file_sha256(path), size_bytes=len(data))
            yield ingest_pb2.UploadRecordingRequest(chunk=data)

        ack = self.ingest().UploadRecording(messages(), metadata=self.auth(tenant), timeout=60)
        assert ack.enqueued, "the job queue should have taken the job"
        return str(ack.recording_id)

    def state_of(self, tenant: str, rec_id: str) -> ingest_pb2.Recording:
        return self.ingest().GetRecording(
            ingest_pb2.GetRecordingRequest(recording_id=rec_id), metadata=self.auth(tenant), timeout=10
        )

    def indexed(self, tenant: str, ids: list[str]) -> set[str]:
        try:
            reply = self.indexer().FindIndexed(
                indexer_pb2.FindIndexedRequest(recording_ids=ids), metadata=self.auth(tenant), timeout=10
            )
        except grpc.RpcError:
            return set()
        return set(reply.recording_ids)

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.home / 'logs'}")

    def wait_indexed(self, tenant: str, ids: list[str], timeout: float = 300) -> None:
        def all_done() -> bool:
            states = [self.state_of(tenant, rec_id).state for rec_id in ids]
            return all(s == c.PIPELINE_STATE_DONE for s in states) and self.indexed(tenant, ids) == set(ids)

        self.wait_until(f"{len(ids)} recordings indexed", all_done, timeout)


@pytest.fixture(scope="package")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineStack]:
    home = tmp_path_factory.mktemp("pipeline")
    # Its own S3: the reconciler queues every recording in the bucket, so other suites' uploads (and
    # their tenants, unknown here) must not be in it.
    s3 = servers.start_seaweedfs(home / "s3", home / "logs" / "s3.log")
    servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET))
    servers.create_keys_bucket(s3, KEYS_BUCKET)
    kek = FileKek.create(home / "kek.json")  # the whole pipeline runs with encryption at rest on (issue 19)
    redis_server = servers.start_redis(home / "redis", home / "logs" / "redis.log")
    es = servers.start_elasticsearch(home / "es", home / "logs" / "es.log")
    service_token = new_token()
    tenants_file = home / "tenants.json"
    tokens = write_tenants_file(tenants_file, {t: TenantSpec() for t in TENANTS}, {"pipeline": service_token})
    state: dict[str, Any] = {
        "home": str(home),
        "tenants_file": str(tenants_file),
        "tenants": tokens,
        "service_token": service_token,
        "s3": {
            "endpoint": s3.endpoint,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "hot_bucket": HOT_BUCKET,
            "cold_bucket": COLD_BUCKET,
            "keys_bucket": KEYS_BUCKET,
        },
        "kek_file": str(kek.path),
        "redis": {"url": redis_server.url},
        "elasticsearch": {"url": es.url},
        "grpc": {},
    }
    stack = PipelineStack(home, state, es=es, redis=redis_server, s3=s3)
    try:
        for name in ("vad", "asr", "indexer", "ingest", "worker"):
            stack.start(name)
        yield stack
    finally:
        stack.close()


def _variant(base: Path, out: Path, pad_ms: int) -> None:
    """The same call with `pad_ms` of silence appended: other bytes, other SHA-256, same speech."""
    audio, rate = sf.read(base, dtype="int16", always_2d=True)
    pad = np.zeros((rate * pad_ms // 1000, audio.shape[1]), dtype=np.int16)
    sf.write(out, np.concatenate([audio, pad]), rate, subtype="PCM_16")


@pytest.fixture(scope="package")
def make_calls(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, int], list[Path]]:
    """`make_calls(tag, n)`: n distinct two-channel calls (agent left), unique across the module."""
    directory = tmp_path_factory.mktemp("calls")
    bases = {}
    for name, turns in BASE_CALLS.items():
        path = directory / f"{name}.wav"
        synthesize_call(path, turns, agent_side="left", gap_ms=500)
        bases[name] = path
    used: set[int] = set()

    def make(tag: str, n: int) -> list[Path]:
        paths = []
        for i in range(n):
            pad = 10 * (len(used) + 1)
            used.add(pad)
            base = list(bases.values())[i % len(bases)]
            out = directory / f"{tag}-{i}.wav"
            _variant(base, out, pad)
            paths.append(out)
        return paths

    return make
