"""Settings of the ingest service's two programs, from INGEST_* environment variables, validated at start.

`IngestSettings` holds what both programs share (S3, Redis, the job stream, tenants, TLS, logging),
defined once; `UploadSettings` (the upload API) and `PipelineSettings` (the pipeline worker) add what
only one of them reads. Both read the same environment, so one ConfigMap serves both.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from callscribe.kit.settings import ServiceSettings, check_host_port
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import Endpoint, check_endpoint_url
from callscribe.storage.location import Tier
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.protection import EncryptionSettings
from callscribe.storage.tiers import ColdTierSettings, bucket_clients


class IngestSettings(ServiceSettings, ColdTierSettings, EncryptionSettings):
    """What the upload API, the pipeline worker and the lifecycle share."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    grpc_address: str = "0.0.0.0:50051"  # the upload API's; the worker listens on worker_grpc_address
    metrics_address: str = "0.0.0.0:9101"
    s3_endpoint: str = Field(..., description="S3 URL, e.g. http://minio:9000 (https:// for TLS)")
    s3_access_key: SecretStr
    s3_secret_key: SecretStr
    s3_region: str = "us-east-1"
    hot_bucket: str = "callscribe-hot"
    cold_bucket: str = "callscribe-cold"
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_stream: str = "callscribe:jobs"
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Redis connect and reply timeout, both programs (the worker's blocking reads wait 0.5 s)"
    )
    hot_lock_grace_days: float | None = Field(
        None,
        gt=0,
        description="tiering: hot copies are locked for the tenant's hot_days plus this, and the lifecycle moves "
        "them to the cold tier (locked for the whole retention) before then; unset: hot copies are locked for the "
        "whole retention (no lifecycle needed). Set it only where the lifecycle runs (README, 'Storage lifecycle')",
    )

    @field_validator("s3_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_endpoint_url(value)

    @property
    def hot_endpoint(self) -> Endpoint:
        return Endpoint(
            self.s3_endpoint,
            self.s3_access_key.get_secret_value(),
            self.s3_secret_key.get_secret_value(),
            self.s3_region,
        )

    def s3_clients(self, pool_size: int, read_timeout: float = 120.0) -> tuple[S3Client, LockedBucket]:
        """The hot tier's client, and the cold tier's bucket (on its own S3 when one is configured)."""
        hot = self.hot_endpoint
        cold = self.cold_endpoint(hot)
        client, by_bucket = bucket_clients(hot, self.hot_bucket, cold, self.cold_bucket, pool_size, read_timeout)
        return client, LockedBucket(by_bucket[self.cold_bucket], self.cold_bucket, Tier.COLD)


class UploadSettings(IngestSettings):
    """The upload API (`python -m callscribe.ingest`)."""

    s3_part_size_mb: int = Field(8, ge=5, le=512, description="multipart part size")
    s3_parallel_parts: int = Field(2, ge=1, le=16, description="parts of one upload in flight to S3 at once")
    s3_max_part_uploads: int = Field(16, ge=1, description="part uploads in flight to S3 at once, all uploads")
    s3_stream_min_mb: int = Field(
        0,
        ge=0,
        description="a byte-exact WAV upload declaring its size and SHA-256 and at least this big goes as one PUT "
        "that starts while it arrives, at the client's pace (http S3 only); raise it for an S3 or proxy that drops "
        "requests whose body pauses",
    )
    spool_dir: Path = Field(Path(tempfile.gettempdir()) / "callscribe-ingest-spool")
    memory_upload_mb: int = Field(
        16, ge=0, description="uploads up to this size are held in memory (no spool file); 0: always spool"
    )
    max_upload_mb: int = Field(2048, ge=1, description="largest accepted recording")
    max_concurrent_uploads: int = Field(64, ge=1, description="uploads in flight; more get RESOURCE_EXHAUSTED")
    max_uploads_per_tenant: int = Field(
        0, ge=0, description="uploads in flight of one tenant; 0: three quarters of max_concurrent_uploads, rounded up"
    )
    upload_idle_seconds: float = Field(
        60.0, ge=0, description="an upload that sends nothing for this long ends (DEADLINE_EXCEEDED); 0: never"
    )
    stream_window_kb: int = Field(
        8192,
        ge=64,
        le=65536,
        description="bytes gRPC receives ahead of what an upload has consumed (its HTTP/2 flow-control window)",
    )

    @property
    def tenant_upload_limit(self) -> int:
        return self.max_uploads_per_tenant or -(-self.max_concurrent_uploads * 3 // 4)  # 3/4, rounded up

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


class PipelineSettings(IngestSettings):
    """The pipeline worker (`python -m callscribe.ingest worker`): its own listen addresses, so both
    programs can read one environment."""

    worker_grpc_address: str = Field("0.0.0.0:50055", description="gRPC health (and reflection) HOST:PORT")
    worker_metrics_address: str = "0.0.0.0:9105"
    vad_address: str = Field(..., description="VadService HOST:PORT")
    asr_address: str = Field(..., description="AsrService HOST:PORT")
    indexer_address: str = Field(..., description="IndexerService HOST:PORT")
    service_token: SecretStr = Field(..., description="bearer token of the pipeline's service account")
    services_ca_file: Path | None = Field(None, description="PEM CA bundle: call the services over TLS")
    worker_group: str = "callscribe-workers"
    worker_consumer: str = Field("", description="consumer name in the group; default HOSTNAME-PID")
    worker_concurrency: int = Field(8, ge=1, le=256, description="recordings processed at once by this worker")
    worker_max_attempts: int = Field(5, ge=1, description="attempts before a job goes to the dead-letter stream")
    worker_backoff_seconds: float = Field(5.0, gt=0, description="first retry delay; doubles per attempt")
    worker_backoff_max_seconds: float = Field(600.0, gt=0)
    worker_pressure_backoff_seconds: float = Field(
        1.0, gt=0, description="first wait after a service said busy/restarting; doubles while it lasts (not counted)"
    )
    worker_pressure_backoff_max_seconds: float = Field(30.0, gt=0)
    worker_grace_seconds: float = Field(
        10.0, ge=0, description="on SIGTERM, jobs in flight get this long to finish; then they go back to the queue"
    )
    asr_chunk_seconds: float = Field(
        60.0, gt=0, description="speech per ASR request: a long call goes as a sequence of such chunks"
    )
    asr_chunk_segments: int = Field(16, ge=1, le=256, description="segments per ASR request at most")
    worker_visibility_timeout_seconds: float = Field(
        120.0, ge=5, description="a job whose worker stopped renewing it for this long is reclaimed by another"
    )
    worker_reconcile_interval_seconds: float = Field(
        120.0,
        ge=0,
        description="how often archived recordings without an indexed call and without a live job are queued "
        "(0: never)",
    )
    vad_timeout_seconds: float = Field(600.0, gt=0)
    asr_timeout_seconds: float = Field(1800.0, gt=0)
    indexer_timeout_seconds: float = Field(120.0, gt=0)

    @field_validator("vad_address", "asr_address", "indexer_address", "worker_grpc_address", "worker_metrics_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)

    @property
    def consumer(self) -> str:
        return self.worker_consumer or f"{socket.gethostname()}-{os.getpid()}"


class LifecycleSettings(IngestSettings):
    """The storage lifecycle (`python -m callscribe.ingest lifecycle`): tiering, integrity audit, retention
    expiry. Its own Deployment (any number of replicas: leases keep them off each other's recordings), reading
    the same INGEST_* environment as the other two programs plus INGEST_LIFECYCLE_* of its own."""

    lifecycle_grpc_address: str = Field("0.0.0.0:50056", description="LifecycleService, health and reflection")
    lifecycle_metrics_address: str = "0.0.0.0:9106"
    indexer_address: str = Field(..., description="IndexerService HOST:PORT (moves, audit findings, expiry)")
    service_token: SecretStr = Field(..., description="bearer token of the pipeline's service account")
    services_ca_file: Path | None = Field(None, description="PEM CA bundle: call the indexer over TLS")
    lifecycle_interval_seconds: float = Field(
        3600.0,
        ge=0,
        description="how often the scheduled passes (tiering, expiry, an audit slice) run; 0: only on request",
    )
    lifecycle_extend_before_days: float = Field(
        14.0, gt=0, description="a recording not moved yet whose hot lock ends sooner than this gets it extended"
    )
    lifecycle_extend_days: float = Field(30.0, gt=0, description="a hot lock is extended to this far from now")
    lifecycle_alert_days: float = Field(
        21.0, gt=0, description="hot locks of unmoved recordings ending within this are counted for the alert"
    )
    lifecycle_lease_seconds: float = Field(900.0, ge=5, description="how long one replica holds a recording")
    lifecycle_concurrency: int = Field(4, ge=1, le=64, description="recordings one replica moves at once")
    lifecycle_part_size_mb: int = Field(16, ge=5, le=512, description="part size of cold copies")
    lifecycle_s3_read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="the longest S3 may go silent while sending bytes to the lifecycle (a damaged object can stall "
        "a read; the audit then reports it instead of waiting)",
    )
    audit_bytes_per_second: float = Field(
        50 * 1024 * 1024, gt=0, description="the integrity audit reads at most this fast (all tiers together)"
    )
    audit_retention_days: float = Field(
        3650.0, gt=0, description="how long audit-trail entries and tombstones are locked (COMPLIANCE)"
    )
    lifecycle_kill_at: str = Field(
        "", description="fault injection for tests: SIGKILL the process at this step of a move (see mover.STEPS)"
    )

    @field_validator("indexer_address", "lifecycle_grpc_address", "lifecycle_metrics_address")
    @classmethod
    def _lifecycle_host_port(cls, value: str) -> str:
        return check_host_port(value)
