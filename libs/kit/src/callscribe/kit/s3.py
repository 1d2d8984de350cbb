"""The one way every service builds its S3 client (MinIO in production, any S3 API server)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

import urllib3
from minio import Minio

# A request header naming the SHA-256 of the body the caller already computed (never sent: see S3Client).
PAYLOAD_SHA256_HEADER = "X-Callscribe-Payload-Sha256"


class Body:
    """A request body sent as the buffers it already is (received chunks), never joined into one.

    Iterable again for every attempt (urllib3 retries send it anew); its `len` is its size in bytes.
    Only for requests that carry PAYLOAD_SHA256_HEADER: minio cannot hash a body that is not bytes.
    """

    def __init__(self, buffers: Sequence[bytes | memoryview]) -> None:
        self._buffers = tuple(buffers)
        self._size = sum(memoryview(b).nbytes for b in self._buffers)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return iter(self._buffers)

    def sha256(self) -> str:
        return self._digest("sha256").hexdigest()

    def md5_base64(self) -> str:
        return base64.b64encode(self._digest("md5").digest()).decode()

    def _digest(self, name: str) -> Any:
        digest = hashlib.new(name, usedforsecurity=False)  # MD5 is a transfer check here, not security
        for buffer in self._buffers:
            digest.update(buffer)
        return digest


class S3Client(Minio):
    """minio's client, except that a request whose headers carry PAYLOAD_SHA256_HEADER is signed with
    that digest instead of hashing its body again. Over http minio signs every body with its SHA-256
    (x-amz-content-sha256); ingest has just computed exactly that digest for a recording sent as one
    PUT, so hashing 10 MiB twice would be a sixth of its CPU. MinIO and AWS check the digest against
    the bytes they receive (XAmzContentSHA256Mismatch); SeaweedFS checks no payload digest at all.
    Such a request may send a `Body` (buffers sent one after another) instead of bytes.
    Overrides the private `_build_headers` of minio 7.2 (pinned, minio==7.2.20)."""

    def _build_headers(  # type: ignore[override]
        self, host: str, headers: dict | None = None, body: bytes | Body | None = None, creds: Any = None
    ) -> tuple[dict, Any]:
        headers = dict(headers) if headers else {}  # the caller's dict is sent again on a retry: keep it whole
        known = headers.pop(PAYLOAD_SHA256_HEADER, None)
        if isinstance(body, Body):
            if known is None:
                raise ValueError(f"a Body needs its SHA-256 in {PAYLOAD_SHA256_HEADER}: minio cannot hash it")
            if creds is None or self._base_url.is_https:
                headers.setdefault("Content-MD5", body.md5_base64())  # what minio sends when it does not sign
        elif known is None or body is None or creds is None or self._base_url.is_https:
            return super()._build_headers(host, headers, body, creds)  # https: UNSIGNED-PAYLOAD anyway
        built, date = super()._build_headers(host, headers, None, creds)
        built["Content-Length"] = str(len(body))
        if creds is not None and not self._base_url.is_https:
            built["x-amz-content-sha256"] = known
        return built, date


def make_client(endpoint: str, access_key: str, secret_key: str, region: str, pool_size: int) -> S3Client:
    """A client for `endpoint` (http:// or https:// URL) with a connection pool of `pool_size`,
    bounded timeouts and a short retry on 5xx answers."""
    url = urlparse(endpoint)
    http = urllib3.PoolManager(
        maxsize=pool_size,
        timeout=urllib3.Timeout(connect=5, read=120),
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
