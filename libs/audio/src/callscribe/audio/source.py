"""Where the audio of a request comes from: a stored S3 object version, or inline bytes.

Either way it lands in a temp file in the spool directory, which is always removed when the
request ends. An object is streamed to disk while its SHA-256 is computed (bounded memory: the
storage layer's verified read); bytes that do not match the fingerprint are never processed. The temp
file is sealed (`sealed.py`: AES-256-GCM in 64 KiB chunks under a key that exists only in memory), so
the spool disk never holds the recording; the `SealedFile` yielded is what the decoders read
(`decode.AudioStream`, `decode.AudioClips`), each open with its own reader.
Shared by the services that read archived recordings (VAD, ASR); `service` names the reader in
messages and env hints.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from callscribe.audio.sealed import SealedFile, SealedWriter
from callscribe.kit.errors import InvalidArgument, PermissionDenied, Unavailable
from callscribe.storage.location import ObjectRef
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.protection import codec_chooser
from callscribe.storage.reader import read_verified
from callscribe.storage.recordkeys import RecordingKeys

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".audio"  # default; each service passes its own
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_ref(ref: ObjectRef, tenant: str, buckets: tuple[str, ...]) -> None:
    """Refuse a malformed reference, and one outside the caller's tenant (tenants are walls)."""
    if not ref.bucket or not ref.key:
        raise InvalidArgument("object.bucket and object.key are required")
    if not ref.version_id:
        raise InvalidArgument("object.version_id is required: one archived version is read, never 'latest'")
    if not _SHA256.match(ref.sha256):
        raise InvalidArgument(f"object.sha256 {ref.sha256!r} is not a lowercase hex SHA-256 (64 characters)")
    if ref.bucket not in buckets:
        raise PermissionDenied(f"bucket {ref.bucket!r} is not a callscribe recordings bucket ({', '.join(buckets)})")
    prefix = f"recordings/{tenant}/"
    parts = ref.key.split("/")
    if not ref.key.startswith(prefix) or any(p in ("", ".", "..") for p in parts):
        raise PermissionDenied(f"your token belongs to tenant {tenant!r}: object keys must start with {prefix!r}")


class AudioSource:
    """Materialises a request's audio as a local sealed file for the duration of a `with` block."""

    def __init__(
        self,
        client: S3Client | None,
        spool_dir: Path,
        max_inline_bytes: int,
        *,
        service: str = "vad",
        spool_suffix: str = SPOOL_SUFFIX,
        bucket_clients: Mapping[str, S3Client] | None = None,
        keys: RecordingKeys | None = None,
    ) -> None:
        self._client = client
        # A recording encrypted at rest is decrypted with its data key, opened for that read only (issue 19).
        self._codec_for = codec_chooser(keys, service)
        # A recording moved to the cold tier may be on another S3: each bucket's client (default: `client`).
        self._by_bucket = dict(bucket_clients or {})
        self._spool_dir = spool_dir
        self._max_inline_bytes = max_inline_bytes
        self._service = service.upper()
        self._suffix = spool_suffix

    @contextlib.contextmanager
    def inline(self, data: bytes) -> Iterator[SealedFile]:
        if len(data) > self._max_inline_bytes:
            raise InvalidArgument(
                f"inline audio is {len(data) / 2**20:.1f} MiB, over the {self._max_inline_bytes // 2**20} MiB limit "
                "for inline_audio: upload it through ingest and send its ObjectRef instead"
            )
        if not data:
            raise InvalidArgument("inline_audio is empty: send an encoded audio file, or an ObjectRef")
        with self._spooled() as spool:
            spool.write(data)
            yield spool.finish()

    @contextlib.contextmanager
    def stored(self, ref: ObjectRef) -> Iterator[SealedFile]:
        if self._client is None:
            raise Unavailable(
                f"this {self._service} has no S3 configured: send the audio inline, or set {self._service}_S3_ENDPOINT"
            )
        client = self._by_bucket.get(ref.bucket, self._client)
        with self._spooled() as spool:
            read_verified(client, ref, spool.write, reader=f"the {self._service}", codec_for=self._codec_for)
            yield spool.finish()

    @contextlib.contextmanager
    def _spooled(self) -> Iterator[SealedWriter]:
        spool = SealedWriter.create(self._spool_dir, self._suffix)
        try:
            yield spool
        finally:
            spool.close()
            spool.path.unlink(missing_ok=True)


def clear_stale_spool(directory: Path, suffix: str = SPOOL_SUFFIX) -> int:
    """Remove temp files (named `*<suffix>`) a crashed process left behind."""
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in directory.glob(f"*{suffix}"):
        path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d stale spool file(s) from %s", removed, directory)
    return removed
