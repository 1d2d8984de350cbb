"""Indexer settings, from INDEXER_* environment variables, validated at start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from callscribe.kit.settings import ServiceSettings
from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.storage.client import Endpoint, check_endpoint_url
from callscribe.storage.protection import EncryptionSettings

# Elasticsearch index names: lowercase, no leading '-', '_' or '+', none of \ / * ? " < > | , # : or spaces.
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class IndexerSettings(ServiceSettings, EncryptionSettings):
    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore", frozen=True)

    grpc_address: str = "0.0.0.0:50054"
    metrics_address: str = "0.0.0.0:9104"

    # --- the cluster
    elasticsearch_url: str = Field(
        ...,
        description="Elasticsearch URL(s), comma-separated for several nodes, e.g. https://es-0:9200,https://es-1:9200",
    )
    elasticsearch_username: str | None = Field(None, description="basic-auth user (with elasticsearch_password)")
    elasticsearch_password: SecretStr | None = Field(None, description="basic-auth password")
    elasticsearch_api_key: SecretStr | None = Field(None, description="API key (base64 id:key), instead of basic auth")
    elasticsearch_ca_cert: Path | None = Field(None, description="PEM CA bundle that signed the cluster's certificate")
    elasticsearch_verify_certs: bool = Field(True, description="verify the cluster's TLS certificate (keep on)")
    elasticsearch_api_compat: int = Field(
        0,
        description="REST API compatibility the client asks for (8 for an Elasticsearch 8 cluster); 0: the cluster's "
        "major version, read at start",
    )
    request_timeout_seconds: float = Field(30.0, gt=0, le=600, description="one Elasticsearch request, at most")
    startup_retry_seconds: float = Field(
        5.0, gt=0, le=300, description="while Elasticsearch is unreachable at start, retry this often (NOT_SERVING)"
    )

    # --- writing
    bulk_retries: int = Field(5, ge=0, le=20, description="retries of a bulk request (or its refused items)")
    bulk_backoff_seconds: float = Field(0.2, gt=0, description="first retry delay; doubles per retry, with jitter")
    bulk_backoff_max_seconds: float = Field(5.0, gt=0, description="longest delay between two retries")
    bulk_max_actions: int = Field(1000, ge=1, le=100_000, description="documents per bulk request, at most")
    refresh: Literal["wait_for", "true", "false"] = Field(
        "wait_for",
        description="IndexCall returns when the call is searchable (wait_for), after forcing a refresh (true, "
        "costly at high rates) or at once (false: searchable within refresh_interval)",
    )

    # --- indices
    index_prefix: str = Field("callscribe", description="indices are <prefix>-calls-<tenant>, <prefix>-utterances-<t>")
    number_of_shards: int = Field(1, ge=1, le=64, description="primary shards of each new index")
    number_of_replicas: int = Field(1, ge=0, le=8, description="replicas of each new index (0 on a one-node cluster)")
    refresh_interval: str = Field("1s", description="index.refresh_interval of new indices, e.g. 1s, 5s, 30s")

    # --- lifecycle (ILM): hot -> warm -> delete, one policy per tenant
    ilm_enabled: bool = Field(True, description="create <prefix>-retention-<tenant> policies (false: managed outside)")
    ilm_warm_after_days: int = Field(30, ge=1, description="indices move to the warm phase this many days old")
    ilm_rollover_max_age_days: int = Field(30, ge=1, description="a tenant's write index rolls over at this age")
    ilm_rollover_max_primary_shard_gb: int = Field(50, ge=1, description="... or when a primary shard is this large")

    # --- search
    search_default_page_size: int = Field(20, ge=1, le=100, description="calls per page when a request asks for 0")
    search_max_page_size: int = Field(100, ge=1, le=1000, description="calls per page at most (larger asks are cut)")
    search_utterances_per_call: int = Field(5, ge=1, le=100, description="matching utterances shown per call hit")
    export_page_size: int = Field(200, ge=1, le=5000, description="calls fetched per Elasticsearch page on export")

    # --- enrichment
    analytics_file: Path | None = Field(
        None, description="call analytics config (keyword lists, QA rules, thresholds); unset: built-in defaults"
    )

    # --- the access trail: every export is recorded in the tenant's trail, in the hot bucket (the same S3 and
    # bucket as INGEST_S3_ENDPOINT / INGEST_HOT_BUCKET) before its first call is sent
    s3_endpoint: str | None = Field(
        None,
        description="S3 URL of the hot bucket, where the indexer appends access-trail entries (exports), e.g. "
        "http://minio:9000; unset: ExportCalls is refused with FAILED_PRECONDITION (an export must be recorded)",
    )
    s3_access_key: SecretStr | None = Field(
        None, description="S3 access key; it needs only to read, list versions of and write objects under trail/"
    )
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key (with s3_access_key)")
    s3_region: str = Field("us-east-1", description="S3 region")
    hot_bucket: str = Field("callscribe-hot", description="the hot bucket (Object Lock); the trail is under trail/")

    zh_script: str = Field(
        "simplified",
        description="script of Chinese normalized text for tenants whose entry in the tenants file sets no zh_script: "
        + ", ".join(ZH_SCRIPTS),
    )

    @field_validator("zh_script")
    @classmethod
    def _script(cls, value: str) -> str:
        if value not in ZH_SCRIPTS:
            raise ValueError(f"zh_script must be one of {', '.join(ZH_SCRIPTS)}, got {value!r}")
        return value

    @field_validator("elasticsearch_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        urls = [u.strip().rstrip("/") for u in value.split(",") if u.strip()]
        if not urls:
            raise ValueError("elasticsearch_url is empty; e.g. http://elasticsearch:9200")
        for url in urls:
            if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
                raise ValueError(f"elasticsearch_url must be http:// or https:// URLs, got {url!r}")
        return ",".join(urls)

    @field_validator("s3_endpoint")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        return check_endpoint_url(value) if value else None  # an empty variable means unset

    @field_validator("elasticsearch_api_compat")
    @classmethod
    def _compat(cls, value: int) -> int:
        if value not in (0, 8, 9):
            raise ValueError(f"elasticsearch_api_compat must be 8, 9 or 0 (the cluster's major version), got {value}")
        return value

    @field_validator("index_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX_RE.match(value) or value.endswith("-"):
            raise ValueError(
                f"index_prefix must be lowercase letters, digits, '_' or '-' (not first or last), got {value!r}"
            )
        return value

    @field_validator("refresh_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value != "-1" and not re.fullmatch(r"\d+(ms|s|m)", value):
            raise ValueError(f"refresh_interval must look like 500ms, 1s, 30s or 1m (or -1), got {value!r}")
        return value

    @field_validator("elasticsearch_ca_cert", "analytics_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} does not exist")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IndexerSettings:
        if (self.elasticsearch_username is None) != (self.elasticsearch_password is None):
            raise ValueError("set both elasticsearch_username and elasticsearch_password, or neither")
        if self.elasticsearch_username is not None and self.elasticsearch_api_key is not None:
            raise ValueError("use either basic auth (username/password) or elasticsearch_api_key, not both")
        if self.search_default_page_size > self.search_max_page_size:
            raise ValueError("search_default_page_size cannot exceed search_max_page_size")
        if self.bulk_backoff_seconds > self.bulk_backoff_max_seconds:
            raise ValueError("bulk_backoff_seconds cannot exceed bulk_backoff_max_seconds")
        if self.s3_endpoint is not None and (self.s3_access_key is None or self.s3_secret_key is None):
            raise ValueError("s3_endpoint is set: set s3_access_key and s3_secret_key too (the access trail's S3)")
        return self

    @property
    def trail_endpoint(self) -> Endpoint | None:
        """The S3 of the access trail; None when the indexer has none (exports are then refused)."""
        if self.s3_endpoint is None or self.s3_access_key is None or self.s3_secret_key is None:
            return None
        return Endpoint(
            self.s3_endpoint,
            self.s3_access_key.get_secret_value(),
            self.s3_secret_key.get_secret_value(),
            self.s3_region,
        )

    @property
    def elasticsearch_urls(self) -> list[str]:
        return self.elasticsearch_url.split(",")
