"""The cold tier's S3, which may be another cluster than the hot tier's (an SSD MinIO for recent calls, a
capacity cluster or AWS for the rest): the settings every service that reads recordings shares, and the
clients by bucket that follow a recording to whichever tier holds it.

Unset cold settings mean "the hot tier's": one S3 with two buckets.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

from callscribe.storage.client import Endpoint, check_endpoint_url, connect
from callscribe.storage.minio_ext import S3Client


class ColdTierSettings(BaseModel):
    """Mixed into a service's settings (its env prefix applies: INGEST_COLD_S3_ENDPOINT, VAD_..., ASR_...)."""

    cold_s3_endpoint: str | None = Field(
        None, description="S3 URL of the cold tier when it is another S3 than the hot one; unset: the same S3"
    )
    cold_s3_access_key: SecretStr | None = Field(None, description="unset: the hot tier's")
    cold_s3_secret_key: SecretStr | None = Field(None, description="unset: the hot tier's")
    cold_s3_region: str | None = Field(None, description="unset: the hot tier's")

    @field_validator("cold_s3_endpoint")
    @classmethod
    def _cold_url(cls, value: str | None) -> str | None:
        return check_endpoint_url(value) if value else None

    def cold_endpoint(self, hot: Endpoint) -> Endpoint:
        """The cold tier's endpoint: each unset part taken from the hot one."""
        return Endpoint(
            self.cold_s3_endpoint or hot.url,
            self.cold_s3_access_key.get_secret_value() if self.cold_s3_access_key else hot.access_key,
            self.cold_s3_secret_key.get_secret_value() if self.cold_s3_secret_key else hot.secret_key,
            self.cold_s3_region or hot.region,
        )


def bucket_clients(
    hot: Endpoint, hot_bucket: str, cold: Endpoint, cold_bucket: str, pool_size: int, read_timeout: float = 120.0
) -> tuple[S3Client, dict[str, S3Client]]:
    """The hot tier's client, and a client for each recordings bucket (one shared client when both tiers
    are the same S3)."""
    hot_client = connect(hot, pool_size, read_timeout)
    cold_client = hot_client if cold == hot else connect(cold, pool_size, read_timeout)
    return hot_client, {hot_bucket: hot_client, cold_bucket: cold_client}
