"""The one way every service builds its S3 client (MinIO in production, any S3 API server)."""

from __future__ import annotations

from urllib.parse import urlparse

import urllib3
from minio import Minio


def make_client(endpoint: str, access_key: str, secret_key: str, region: str, pool_size: int) -> Minio:
    """A client for `endpoint` (http:// or https:// URL) with a connection pool of `pool_size`,
    bounded timeouts and a short retry on 5xx answers."""
    url = urlparse(endpoint)
    http = urllib3.PoolManager(
        maxsize=pool_size,
        timeout=urllib3.Timeout(connect=5, read=120),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        url.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=url.scheme == "https",
        region=region,
        http_client=http,
    )
