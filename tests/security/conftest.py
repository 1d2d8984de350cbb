"""The adversarial suite's stack: real ingest and indexer processes (as the local stack starts them) on
the session's SeaweedFS, Redis and Elasticsearch-API servers, with a tenants file holding two tenants
and the pipeline's service account. Each tenant has a token of every role (`role_auth`), and a third tenant,
`oldco`, lists its token the deprecated way (`token_sha256`: an admin)."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf

from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.kit.roles import ROLES
from callscribe.stack.procs import ManagedProcess, stop
from callscribe.stack.services import grpc_address, metrics_url, service_env, start_service
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2_grpc, ingest_pb2, ingest_pb2_grpc

TENANTS = {"acme": TenantSpec("COMPLIANCE", 1825), "globex": TenantSpec("COMPLIANCE", 30)}
PIPELINE_TOKEN = secrets.token_hex(24)
LEGACY_TENANT = "oldco"  # its token is listed under the deprecated "token_sha256"


def wav(seconds: float = 1.0, rate: int = 8000, channels: int = 1) -> bytes:
    """A unique WAV (random noise): every call gives other bytes, hence another recording id."""
    frames = np.random.default_rng(secrets.randbits(64)).uniform(-0.3, 0.3, (int(seconds * rate), channels))
    out = io.BytesIO()
    sf.write(out, frames.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@dataclass
class Guarded:
    minio: Any
    bucket: str
    tokens: dict[str, str]
    envs: dict[str, dict[str, str]]
    procs: dict[str, ManagedProcess]
    role_tokens: dict[str, dict[str, str]]  # tenant -> role -> token
    ingest_channel: grpc.Channel
    indexer_channel: grpc.Channel
    logs: Path

    @property
    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(self.ingest_channel)

    @property
    def indexer(self) -> indexer_pb2_grpc.IndexerServiceStub:
        return indexer_pb2_grpc.IndexerServiceStub(self.indexer_channel)

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[tenant]}"),)

    def role_auth(self, tenant: str, role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.role_tokens[tenant][role]}"),)

    def pipeline_auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {PIPELINE_TOKEN}"), (ACTING_TENANT_HEADER, tenant))

    def upload(
        self, tenant: str, data: bytes | None = None, metadata: tuple[tuple[str, str], ...] | None = None, **meta: Any
    ) -> ingest_pb2.UploadRecordingResponse:
        data = wav() if data is None else data
        fields: dict[str, Any] = {"call_id": f"call-{secrets.token_hex(4)}", "agent_id": "agent-1"} | meta
        first = ingest_pb2.UploadRecordingRequest(metadata=c.RecordingMetadata(**fields))
        messages = iter([first, ingest_pb2.UploadRecordingRequest(chunk=data)])
        return self.ingest.UploadRecording(messages, metadata=metadata or self.auth(tenant), timeout=30)

    def stored(self) -> tuple[set[tuple[str, str]], list[str]]:
        """Every object version under recordings/ and every incomplete multipart upload of the bucket."""
        versions = {
            (o.object_name, o.version_id or "")
            for o in self.minio.list_objects(self.bucket, prefix="recordings/", recursive=True, include_version=True)
        }
        uploads = [u.object_name for u in self.minio._list_multipart_uploads(self.bucket).uploads]
        return versions, uploads

    def metric(self, service: str, name: str, **labels: str) -> float:
        body = urllib.request.urlopen(metrics_url(service, self.envs[service]), timeout=5).read().decode()
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                head = line.split(" ")[0]
                if head == name or head.startswith(name + "{"):
                    total += float(line.split()[-1])
        return total


@pytest.fixture(scope="package")
def guarded(s3_server, redis_server, es_server, minio_client, stack_tmp: Path) -> Iterator[Guarded]:  # type: ignore[no-untyped-def]
    home = stack_tmp / "security"
    tenants = TenantsFile.write(home / "tenants.json", TENANTS, {"pipeline": PIPELINE_TOKEN}, roles=ROLES)
    legacy_token = secrets.token_hex(24)
    document = json.loads(tenants.path.read_text())
    document["tenants"][LEGACY_TENANT] = {
        "token_sha256": [hashlib.sha256(legacy_token.encode()).hexdigest()],
        "retention_mode": "COMPLIANCE",
        "retention_days": 30,
    }
    tenants.path.write_text(json.dumps(document))
    state = {
        "home": str(home),
        "tenants_file": str(tenants.path),
        "s3": {
            "endpoint": s3_server.endpoint,
            "access_key": s3_server.access_key,
            "secret_key": s3_server.secret_key,
            "hot_bucket": s3_server.hot_bucket,
            "cold_bucket": s3_server.cold_bucket,
        },
        "redis": {"url": redis_server.url},
        "elasticsearch": {"url": es_server.url},
    }
    envs = {name: service_env(name, state) for name in ("ingest", "indexer")}
    envs["ingest"].update({"INGEST_MAX_CONCURRENT_UPLOADS": "8", "INGEST_MAX_UPLOADS_PER_TENANT": "4"})
    envs["ingest"]["INGEST_UPLOAD_IDLE_SECONDS"] = "3"
    envs["indexer"]["INDEXER_INDEX_PREFIX"] = "sec"
    envs["indexer"]["INDEXER_NUMBER_OF_REPLICAS"] = "0"
    procs: dict[str, ManagedProcess] = {}
    try:
        for name, env in envs.items():
            procs[name] = start_service(name, env, home / "logs" / f"{name}.log", timeout=120)
        guarded = Guarded(
            minio_client,
            s3_server.hot_bucket,
            {**tenants.tokens, LEGACY_TENANT: legacy_token},
            envs,
            procs,
            tenants.role_tokens,
            grpc.insecure_channel(grpc_address("ingest", envs["ingest"])),
            grpc.insecure_channel(grpc_address("indexer", envs["indexer"])),
            home / "logs",
        )
        yield guarded
        guarded.ingest_channel.close()
        guarded.indexer_channel.close()
    finally:
        for proc in procs.values():
            stop(proc)
