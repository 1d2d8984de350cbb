"""The one extension of the `minio` client: everything here uses minio's private methods, nothing else does.

minio's public API cannot express three requests the archive needs:
- a PUT signed with a SHA-256 the caller already computed (over http minio hashes every body again:
  for a recording sent as one PUT that is a sixth of ingest's CPU), sent as buffers (`Body`) or fed
  while it is being sent (`FedBody`);
- a PUT with `If-None-Match: *` (minio's header normalisation turns it into user metadata);
- the individual multipart calls (create, upload a part, complete, abort), which `put_object` only
  drives itself from a stream it reads whole parts of.

So `S3Client` overrides minio's `_build_headers` and gives the private multipart and PUT calls names of
its own. The minio version is pinned (`MINIO_VERSION`; `callscribe-storage` requires exactly it), and
`tests/storage/test_minio_ext.py` checks every private signature relied on here, so an upgrade that
changes one fails the suite instead of the archive.
"""

from __future__ import annotations

from typing import Any

from minio import Minio
from minio.datatypes import Part

from callscribe.storage.body import Body, FedBody

MINIO_VERSION = "7.2.20"
# A request header naming the SHA-256 of the body the caller already computed (never sent: see S3Client).
PAYLOAD_SHA256_HEADER = "X-Callscribe-Payload-Sha256"
# The private minio methods this module calls or overrides, with their parameters (checked by the tests).
RELIED_ON = {
    "_build_headers": ("self", "host", "headers", "body", "creds"),
    "_put_object": ("self", "bucket_name", "object_name", "data", "headers", "query_params"),
    "_create_multipart_upload": ("self", "bucket_name", "object_name", "headers"),
    "_upload_part": ("self", "bucket_name", "object_name", "data", "headers", "upload_id", "part_number"),
    "_complete_multipart_upload": ("self", "bucket_name", "object_name", "upload_id", "parts", "ssec"),
    "_abort_multipart_upload": ("self", "bucket_name", "object_name", "upload_id"),
}


class S3Client(Minio):
    """minio's client, except that a request whose headers carry PAYLOAD_SHA256_HEADER is signed with
    that digest instead of hashing its body again. MinIO and AWS check the digest against the bytes
    they receive (XAmzContentSHA256Mismatch); SeaweedFS checks no payload digest at all. Such a
    request may send a `Body` (buffers sent one after another) or, over http, a `FedBody` instead of
    bytes."""

    @property
    def is_https(self) -> bool:
        return bool(self._base_url.is_https)

    # -- the calls minio keeps private ------------------------------------------------------------
    def put_raw(self, bucket: str, key: str, body: bytes | Body | FedBody, headers: dict) -> Any:
        """One PUT of `body` with exactly `headers` (no metadata normalisation); minio's ObjectWriteResult."""
        return self._put_object(bucket, key, body, headers)  # type: ignore[arg-type]

    def create_multipart_upload(self, bucket: str, key: str, headers: dict) -> str:
        return str(self._create_multipart_upload(bucket, key, headers))

    def upload_part(self, bucket: str, key: str, body: Body, headers: dict, upload_id: str, number: int) -> str:
        return str(self._upload_part(bucket, key, body, headers, upload_id, number))  # type: ignore[arg-type]

    def complete_multipart_upload(self, bucket: str, key: str, upload_id: str, parts: list[Part]) -> Any:
        return self._complete_multipart_upload(bucket, key, upload_id, parts)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._abort_multipart_upload(bucket, key, upload_id)

    # -- signing with a known digest --------------------------------------------------------------
    def _build_headers(  # type: ignore[override]
        self, host: str, headers: dict | None = None, body: bytes | Body | FedBody | None = None, creds: Any = None
    ) -> tuple[dict, Any]:
        headers = dict(headers) if headers else {}  # the caller's dict is sent again on a retry: keep it whole
        known = headers.pop(PAYLOAD_SHA256_HEADER, None)
        if isinstance(body, FedBody):
            if known is None or self._base_url.is_https:
                raise ValueError(f"a FedBody needs http and its SHA-256 in {PAYLOAD_SHA256_HEADER}")
        elif isinstance(body, Body):
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
