"""Settings of the pipeline worker (the ingest service's second process role), from INGEST_* variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callscribe.ingest.settings import check_s3_endpoint
from callscribe.kit.settings import check_host_port, check_log_level


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    log_level: str = "INFO"
    s3_endpoint: str = Field(..., description="S3 URL of the archive (to read each recording's record)")
    s3_access_key: SecretStr
    s3_secret_key: SecretStr
    s3_region: str = "us-east-1"
    hot_bucket: str = "callscribe-hot"
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_stream: str = "callscribe:jobs"
    redis_timeout_seconds: float = Field(5.0, gt=0)
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
    worker_visibility_timeout_seconds: float = Field(
        120.0, ge=5, description="a job whose worker stopped renewing it for this long is reclaimed by another"
    )
    worker_reconcile_interval_seconds: float = Field(
        120.0, ge=0, description="how often archived recordings without an indexed call are queued (0: never)"
    )
    worker_metrics_address: str = "0.0.0.0:9105"
    vad_timeout_seconds: float = Field(600.0, gt=0)
    asr_timeout_seconds: float = Field(1800.0, gt=0)
    indexer_timeout_seconds: float = Field(120.0, gt=0)

    @field_validator("vad_address", "asr_address", "indexer_address", "worker_metrics_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return check_log_level(value)

    @field_validator("s3_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_s3_endpoint(value)

    @property
    def consumer(self) -> str:
        return self.worker_consumer or f"{socket.gethostname()}-{os.getpid()}"
