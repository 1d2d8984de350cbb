"""ASR settings, from ASR_* environment variables, validated at start."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from callscribe.kit.settings import ServiceSettings
from callscribe.storage.client import Endpoint, check_endpoint_url
from callscribe.storage.protection import EncryptionSettings
from callscribe.storage.tiers import ColdTierSettings

_DEVICE_LIST = re.compile(r"^cuda:\d+(,cuda:\d+)*$")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "callscribe" / "models"


class AsrSettings(ServiceSettings, ColdTierSettings, EncryptionSettings):
    model_config = SettingsConfigDict(env_prefix="ASR_", extra="ignore", frozen=True)

    grpc_address: str = "0.0.0.0:50053"
    metrics_address: str = "0.0.0.0:9103"
    engine: Literal["whisper", "funasr"] = Field("whisper", description="the engine every replica loads")
    model: str = Field(
        "base",
        description="whisper: 'base' (assembled from the installed weight packages) or a CTranslate2 model dir; "
        "funasr: a FunASR model dir",
    )
    language: Literal["auto", "zh", "en"] = Field("auto", description="when a request leaves language unspecified")
    model_cache_dir: Path = Field(default_factory=_default_cache_dir, description="where 'base' is assembled")
    devices: str = Field("auto", description="'auto' (every visible GPU, else the CPU), 'cpu', or 'cuda:0,cuda:1'")
    replicas_per_device: int = Field(1, ge=1, le=16, description="engine replicas (each with a worker) per device")
    threads_per_replica: int = Field(
        0, ge=0, description="CPU threads of each replica (0: the cores shared out over CPU replicas, 1 on a GPU)"
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto",
        description="auto: whisper int8 on the CPU and float16 on CUDA, funasr fp32; fp16/bf16: whisper's compute "
        "type, funasr's autocast on the batched Paraformer path",
    )
    max_batch_size: int = Field(
        16,
        ge=1,
        le=1024,
        description="batch slots per inference call: segments (funasr), or 30 s windows for whisper (it packs "
        "a call channel's segments into windows)",
    )
    max_wait_ms: float = Field(20.0, ge=0, le=10_000, description="longest a segment waits for its batch to fill")
    max_queue_segments: int = Field(256, ge=1, description="segments waiting for a replica; more: RESOURCE_EXHAUSTED")
    max_segment_seconds: float = Field(60.0, gt=0, le=600, description="longer segments are refused")
    hotword_correction: bool = Field(True, description="correct near-miss hotwords in the text after decoding")
    spool_dir: Path = Field(Path(tempfile.gettempdir()) / "callscribe-asr-spool")
    s3_endpoint: str | None = Field(None, description="S3 URL for ObjectRef segments; unset: inline PCM only")
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    hot_bucket: str = "callscribe-hot"
    cold_bucket: str = "callscribe-cold"

    @property
    def hot_endpoint(self) -> Endpoint | None:
        if self.s3_endpoint is None:
            return None
        return Endpoint(
            self.s3_endpoint,
            self.s3_access_key.get_secret_value(),
            self.s3_secret_key.get_secret_value(),
            self.s3_region,
        )

    @field_validator("s3_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return check_endpoint_url(value)

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: str) -> str:
        spec = value.replace(" ", "").lower()
        if spec in ("auto", "cpu") or _DEVICE_LIST.match(spec):
            return spec
        raise ValueError(f"devices must be 'auto', 'cpu' or a list like 'cuda:0,cuda:1', got {value!r}")

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.hot_bucket, self.cold_bucket)
