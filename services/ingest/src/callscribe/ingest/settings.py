"""Ingest settings, from INGEST_* environment variables, validated at start."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from callscribe.kit.settings import ServiceSettings


def check_s3_endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")) or "//" not in value:
        raise ValueError(f"s3_endpoint must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    grpc_address: str = "0.0.0.0:50051"
    metrics_address: str = "0.0.0.0:9101"
    s3_endpoint: str = Field(..., description="S3 URL, e.g. http://minio:9000 (https:// for TLS)")
    s3_access_key: SecretStr
    s3_secret_key: SecretStr
    s3_region: str = "us-east-1"
    hot_bucket: str = "callscribe-hot"
    cold_bucket: str = "callscribe-cold"
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
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_stream: str = "callscribe:jobs"
    redis_timeout_seconds: float = Field(2.0, gt=0)
    spool_dir: Path = Field(Path(tempfile.gettempdir()) / "callscribe-ingest-spool")
    memory_upload_mb: int = Field(
        16, ge=0, description="uploads up to this size are held in memory (no spool file); 0: always spool"
    )
    max_upload_mb: int = Field(2048, ge=1, description="largest accepted recording")
    reconcile_interval_seconds: float = Field(
        300.0, ge=0, description="how often archived-but-unqueued recordings are enqueued (0: never)"
    )
    max_concurrent_uploads: int = Field(64, ge=1, description="uploads in flight; more get RESOURCE_EXHAUSTED")
    stream_window_kb: int = Field(
        8192,
        ge=64,
        le=65536,
        description="bytes gRPC receives ahead of what an upload has consumed (its HTTP/2 flow-control window)",
    )

    @field_validator("s3_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_s3_endpoint(value)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024
