"""Verified reads: an object version streamed to the caller while its SHA-256 is computed.

Nothing read is trusted until the whole object hashed to the fingerprint it is referenced by; the caller
writes the bytes somewhere private (a spool file) and uses them only after `read_verified` returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import urllib3
from minio import Minio
from minio.error import S3Error

from callscribe.storage.errors import IntegrityError, ObjectMissing, StorageUnavailable, is_missing
from callscribe.storage.location import ObjectRef
from callscribe.storage.transform import PLAIN, BodyCodec

READ_CHUNK = 1024 * 1024


def read_verified(
    client: Minio,
    ref: ObjectRef,
    sink: Callable[[bytes | memoryview], object],
    *,
    reader: str = "the service",
    codec: BodyCodec = PLAIN,
    chunk_size: int = READ_CHUNK,
    on_headers: Callable[[Mapping[str, str]], object] | None = None,
    codec_for: Callable[[Mapping[str, str]], BodyCodec] | None = None,
) -> int:
    """Stream `ref`'s plaintext to `sink`; returns its size. Raises ObjectMissing, StorageUnavailable
    (`reader` names whose credentials to check), or IntegrityError when the bytes do not hash to
    `ref.sha256` (then everything given to `sink` must be thrown away). `codec_for` picks the codec from the
    object's headers (lower-case names) when the object itself says how it is stored (encrypted or not)."""
    sha = hashlib.sha256()
    size = 0
    where = ref.describe()

    def take(data: bytes | memoryview) -> None:
        nonlocal size
        if data:
            sha.update(data)
            size += memoryview(data).nbytes
            sink(data)

    try:
        response = client.get_object(ref.bucket, ref.key, version_id=ref.version_id)
        if on_headers is not None:
            on_headers(response.headers)
        try:
            if codec_for is not None:
                codec = codec_for({k.lower(): v for k, v in response.headers.items()})
            decoder = codec.decoder()
            for chunk in response.stream(chunk_size):
                take(decoder.update(chunk))
            take(decoder.finish())
        finally:
            response.close()
            response.release_conn()
    except S3Error as exc:
        if is_missing(exc):
            raise ObjectMissing(f"{where} does not exist ({exc.code})") from exc
        if exc.code == "AccessDenied":
            raise StorageUnavailable(
                f"S3 refused to read {where} (AccessDenied): check {reader}'s S3 credentials", exc.code
            ) from exc
        raise StorageUnavailable(f"S3 read of {where} failed ({exc.code}); retry later", exc.code or "") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise StorageUnavailable(f"S3 unreachable while reading {where}: {exc}; retry later") from exc
    digest = sha.hexdigest()
    if digest != ref.sha256:
        raise IntegrityError(
            f"{where}: the stored bytes hash to SHA-256 {digest}, not {ref.sha256} as referenced; "
            "nothing read from it was used (alert the operator)"
        )
    return size
