"""Settings shared by every service. Each service subclasses `ServiceSettings` with its env prefix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 0.0.0.0:50051), got {value!r}")
    return value


def check_log_level(value: str) -> str:
    level = value.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"log level must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return level


class ServiceSettings(BaseSettings):
    """Common knobs; the Helm chart's values map onto these one to one."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    grpc_address: str = Field("0.0.0.0:50051", description="gRPC listen address HOST:PORT (port 0: any free port)")
    metrics_address: str = Field("0.0.0.0:9100", description="Prometheus /metrics listen address HOST:PORT")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    tenants_file: Path = Field(..., description="JSON file mapping bearer-token hashes to tenants")
    tls_cert_file: Path | None = Field(None, description="PEM certificate; with tls_key_file enables TLS")
    tls_key_file: Path | None = Field(None, description="PEM private key for tls_cert_file")
    grace_seconds: float = Field(10.0, ge=0, description="how long SIGTERM waits for in-flight calls")
    max_workers: int = Field(32, ge=1, description="gRPC handler threads")

    @field_validator("grpc_address", "metrics_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return check_log_level(value)

    @field_validator("tenants_file")
    @classmethod
    def _tenants_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"tenants file {value} does not exist")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], program: str) -> S | None:
    """A service's settings from its environment, or None after telling stderr what is wrong (the
    caller exits with status 2): every main starts with this."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        sys.stderr.write(f"{program}: invalid configuration ({prefix}* environment):\n{exc}\n")
        return None
