"""Connecting to an S3 endpoint: the one way every service builds its client (MinIO in production,
any S3 API server with Object Lock)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import urllib3

from callscribe.storage.minio_ext import S3Client


@dataclass(frozen=True)
class Endpoint:
    """Where an S3 lives and how to sign in; hot and cold tiers may have one each."""

    url: str  # http:// or https://
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def check_endpoint_url(value: str) -> str:
    """The URL as settings accept it: http:// or https://, no trailing slash."""
    if not value.startswith(("http://", "https://")) or "//" not in value:
        raise ValueError(f"s3_endpoint must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def make_client(
    endpoint: str, access_key: str, secret_key: str, region: str, pool_size: int, read_timeout: float = 120.0
) -> S3Client:
    """A client for `endpoint` (http:// or https:// URL) with a connection pool of `pool_size`,
    bounded timeouts (`read_timeout`: the longest silence while reading an answer) and a short retry on 5xx
    answers."""
    url = urlparse(endpoint)
    http = urllib3.PoolManager(
        maxsize=pool_size,
        timeout=urllib3.Timeout(connect=5, read=read_timeout),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return S3Client(
        url.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=url.scheme == "https",
        region=region,
        http_client=http,
    )


def connect(endpoint: Endpoint, pool_size: int, read_timeout: float = 120.0) -> S3Client:
    return make_client(endpoint.url, endpoint.access_key, endpoint.secret_key, endpoint.region, pool_size, read_timeout)
