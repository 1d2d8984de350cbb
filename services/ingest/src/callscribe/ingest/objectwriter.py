"""An S3 object written chunk by chunk: parts go to S3 while later chunks are still arriving.

Objects smaller than two parts are sent as one PUT at commit: a multipart upload costs S3 two
more requests and an assembly, which dominates for the typical few-MiB call recording. Larger
ones become a multipart upload as soon as two parts' bytes have arrived.

Nothing becomes visible until `commit()`: a refused or interrupted upload is aborted and leaves
no object version. Memory is bounded by `part_size * (parallel + 1)` plus one chunk, whatever the
object's size (minio's own put_object keeps more parts in memory and cannot be fed incrementally).

minio 7.2 has no public API for the individual multipart calls; this adapter uses its
`_create_multipart_upload`, `_upload_part`, `_complete_multipart_upload` and
`_abort_multipart_upload` (signatures checked against the pinned version, minio==7.2.20).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import urllib3
from minio.datatypes import Part
from minio.error import S3Error

from callscribe.kit.errors import Unavailable
from callscribe.kit.s3 import PAYLOAD_SHA256_HEADER, Body, S3Client

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last


class ObjectExists(Exception):
    """A PUT sent with `If-None-Match: *` found the key already there (S3 412 PreconditionFailed)."""


class ObjectWriter:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        headers: dict,
        part_size: int,
        parallel: int,
        pool: ThreadPoolExecutor,
    ) -> None:
        if part_size < MIN_PART_BYTES:
            raise ValueError(f"part size must be at least {MIN_PART_BYTES} bytes")
        self._client, self._bucket, self._key = client, bucket, key
        self._part_size = part_size
        self._pool = pool
        self._in_flight = threading.BoundedSemaphore(parallel)
        self._pending: list[memoryview] = []  # received chunks not yet sent; parts are sent as these buffers
        self._pending_bytes = 0
        self._futures: list[Future[Part]] = []
        self._closed = False
        self._headers = headers
        self._upload_id = ""  # created once the object is known to need more than one PUT

    def write(self, chunk: bytes | memoryview) -> None:
        self._pending.append(memoryview(chunk))
        self._pending_bytes += len(chunk)
        if not self._upload_id:
            if self._pending_bytes < 2 * self._part_size:
                return  # still small enough for a single PUT
            self._upload_id = _s3(
                lambda: self._client._create_multipart_upload(self._bucket, self._key, self._headers), "start upload"
            )
        while self._pending_bytes >= self._part_size:
            self._send(self._take(self._part_size))

    def _take(self, size: int) -> Body:
        """The first `size` pending bytes, as the received buffers (no copy)."""
        views: list[memoryview] = []
        need = size
        while need:
            head = self._pending[0]
            if len(head) <= need:
                views.append(self._pending.pop(0))
                need -= len(head)
            else:
                views.append(head[:need])
                self._pending[0] = head[need:]
                need = 0
        self._pending_bytes -= size
        return Body(views)

    def _send(self, data: Body) -> None:
        self._raise_if_failed()
        self._in_flight.acquire()
        number = len(self._futures) + 1
        future = self._pool.submit(self._upload_part, number, data)
        future.add_done_callback(lambda _: self._in_flight.release())
        self._futures.append(future)

    def _upload_part(self, number: int, data: Body) -> Part:
        headers = {PAYLOAD_SHA256_HEADER: data.sha256()}  # signs the part (http); the client would hash it too
        etag = _s3(
            lambda: self._client._upload_part(self._bucket, self._key, data, headers, self._upload_id, number),
            f"upload part {number}",
        )
        return Part(number, etag)

    def _raise_if_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    @property
    def single_put(self) -> bool:
        """True while the object can still go as one PUT (then `commit` may add metadata)."""
        return not self._upload_id

    def commit(self, extra_headers: dict[str, str] | None = None, sha256: str | None = None) -> str:
        """Send the rest, wait for every part, complete; returns the new version id.

        `extra_headers` (metadata known only now) are only possible for a single PUT. `sha256`, the
        digest of every byte written, lets a single PUT be signed without hashing them again.
        """
        if not self._upload_id:
            return self._put_whole(extra_headers or {}, sha256)
        if extra_headers:
            raise ValueError("metadata is fixed when a multipart upload starts")
        if self._pending_bytes:
            self._send(self._take(self._pending_bytes))
        parts = [future.result() for future in self._futures]
        result = _s3(
            lambda: self._client._complete_multipart_upload(self._bucket, self._key, self._upload_id, parts),
            "complete upload",
        )
        self._closed = True
        return result.version_id or ""

    def _put_whole(self, extra_headers: dict[str, str], sha256: str | None) -> str:
        data = self._take(self._pending_bytes)
        headers = {**self._headers, **extra_headers, PAYLOAD_SHA256_HEADER: sha256 or data.sha256()}
        try:
            result = _s3(lambda: self._client._put_object(self._bucket, self._key, data, headers), "write")
        except Unavailable as exc:
            refused = exc.__cause__
            if isinstance(refused, S3Error) and refused.code == "PreconditionFailed" and "If-None-Match" in headers:
                raise ObjectExists(self._key) from refused
            raise
        self._closed = True
        return result.version_id or ""

    def abort(self) -> None:
        """Drop the upload: no object version appears. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._pending, self._pending_bytes = [], 0
        if not self._upload_id:
            return
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            if not future.cancelled():
                future.exception()  # wait; its error is already reported to the caller
        try:
            self._client._abort_multipart_upload(self._bucket, self._key, self._upload_id)
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            log.error("could not abort multipart upload %s of %s: %s", self._upload_id, self._key, exc)


def _s3(call, what: str):  # type: ignore[no-untyped-def]
    try:
        return call()
    except (S3Error, urllib3.exceptions.HTTPError) as exc:
        raise Unavailable(f"S3 {what} failed, nothing was acknowledged; retry the upload: {exc}") from exc
