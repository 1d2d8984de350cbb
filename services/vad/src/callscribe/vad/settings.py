"""VAD settings, from VAD_* environment variables, validated at start."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from callscribe.kit.settings import ServiceSettings
from callscribe.storage.client import Endpoint, check_endpoint_url
from callscribe.storage.protection import EncryptionSettings
from callscribe.storage.tiers import ColdTierSettings
from callscribe.vad.diarize import DiarizeParams
from callscribe.vad.mono import DiarizeConfig


def _cores() -> int:
    return os.cpu_count() or 1


class VadSettings(ServiceSettings, ColdTierSettings, EncryptionSettings):
    model_config = SettingsConfigDict(env_prefix="VAD_", extra="ignore", frozen=True)

    grpc_address: str = "0.0.0.0:50052"
    metrics_address: str = "0.0.0.0:9102"
    engine: Literal["fsmn", "silero"] = Field("fsmn", description="engine when a request does not name one")
    model_dir: Path | None = Field(None, description="FSMN-VAD model dir (model.onnx, config.yaml, am.mvn)")
    workers: int = Field(default_factory=_cores, ge=1, description="inference workers (default: one per core)")
    queue_size: int | None = Field(None, ge=0, description="requests waiting for a worker (default 2 x workers)")
    threads_per_worker: int = Field(1, ge=1, description="onnxruntime intra-op threads of each worker")
    pool: Literal["process", "thread"] = Field("process", description="worker processes or threads")
    spool_dir: Path = Field(Path(tempfile.gettempdir()) / "callscribe-vad-spool")
    # gRPC messages are capped at 4 MiB + 64 KiB by the kit (MAX_MESSAGE_BYTES): a larger inline
    # limit could never be reached (the transport would refuse the message first).
    max_inline_mb: int = Field(4, ge=1, le=4, description="largest inline_audio accepted (MiB)")
    s3_endpoint: str = Field(..., description="S3 URL, e.g. http://minio:9000 (https:// for TLS)")
    s3_access_key: SecretStr
    s3_secret_key: SecretStr
    s3_region: str = "us-east-1"
    hot_bucket: str = "callscribe-hot"
    cold_bucket: str = "callscribe-cold"
    diarize: bool = Field(True, description="split a mono recording's speech into agent and customer by voice")
    diarize_agent: Literal["first_speaker", "second_speaker"] = Field(
        "first_speaker", description="which of the two voices is the agent: the one heard first, or the other"
    )
    diarize_window_ms: int = Field(1500, ge=500, le=5000, description="longest stretch of speech embedded at once")
    diarize_max_similarity: float = Field(0.83, gt=0.0, le=1.0, description="voices this alike are one voice")
    diarize_min_speech_seconds: float = Field(6.0, ge=0.0, description="less speech in all: the call stays MIXED")
    diarize_min_speaker_seconds: float = Field(1.5, ge=0.0, description="a second voice with less is not believed")
    diarize_max_cluster_windows: int = Field(600, ge=10, le=5000, description="windows clustered (memory n^2)")

    @property
    def hot_endpoint(self) -> Endpoint:
        return Endpoint(
            self.s3_endpoint,
            self.s3_access_key.get_secret_value(),
            self.s3_secret_key.get_secret_value(),
            self.s3_region,
        )

    @field_validator("s3_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_endpoint_url(value)

    @model_validator(mode="after")
    def _model_dir(self) -> VadSettings:
        if self.model_dir is not None and not (self.model_dir / "model.onnx").is_file():
            raise ValueError(f"model_dir {self.model_dir} has no model.onnx")
        return self

    @property
    def queue_limit(self) -> int:
        return 2 * self.workers if self.queue_size is None else self.queue_size

    @property
    def diarize_config(self) -> DiarizeConfig:
        return DiarizeConfig(
            enabled=self.diarize,
            agent_rule=self.diarize_agent,
            params=DiarizeParams(
                window_ms=self.diarize_window_ms,
                max_similarity=self.diarize_max_similarity,
                min_speech_ms=round(self.diarize_min_speech_seconds * 1000),
                min_speaker_ms=round(self.diarize_min_speaker_seconds * 1000),
                max_cluster_windows=self.diarize_max_cluster_windows,
            ),
        )

    @property
    def max_inline_bytes(self) -> int:
        return self.max_inline_mb * 1024 * 1024
