"""An S3 object written chunk by chunk: parts go to S3 while later chunks are still arriving.

Objects smaller than two parts are sent as one PUT at commit: a multipart upload costs S3 two
more requests and an assembly, which dominates for the typical few-MiB call recording. Larger
ones become a multipart upload as soon as two parts' bytes have arrived.

An object whose final size and headers are known early (`stream`) goes as one PUT that starts
at once, fed with the bytes as they arrive: nothing is held beyond a few chunks, and S3 writes while
the rest is still coming. Its last chunk is held back until `commit`, so S3 cannot complete it
before the caller has validated everything; on `abort` the request is cut short and S3 stores
nothing.

Nothing becomes visible until `commit()`: a refused or interrupted upload is aborted and leaves
no object version. Memory is bounded by `part_size * (parallel + 1)` plus one chunk, whatever the
object's size (minio's own put_object keeps more parts in memory and cannot be fed incrementally).

A `BodyCodec` other than `Plain` (encryption at rest) passes every chunk through its encoder before
it is stored; such an object is never streamed (its payload digest is known only at the end) and is
hashed as stored for signing. The individual multipart and PUT calls are minio's private ones, reached
only through `minio_ext.S3Client`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager

from minio.datatypes import Part

from callscribe.kit.errors import InvalidArgument
from callscribe.storage.body import Body, BodyAborted, FedBody
from callscribe.storage.errors import ObjectExists, StorageUnavailable, s3_errors
from callscribe.storage.minio_ext import PAYLOAD_SHA256_HEADER, S3Client
from callscribe.storage.transform import PLAIN, BodyCodec

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PUT_BYTES = 5 * 1024**3  # S3's maximum for one PUT
# A streamed PUT's bytes waiting between the receiving thread and the one sending to S3.
STREAM_BUFFER_BYTES = 4 * 1024 * 1024


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
        put_pool: ThreadPoolExecutor | None = None,
        put_tracker: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
        codec: BodyCodec = PLAIN,
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
        self._put_pool = put_pool  # runs streamed PUTs (each for as long as its upload lasts)
        self._put_tracker = put_tracker  # held while a streamed PUT is being sent
        self._body: FedBody | None = None  # set while streaming
        self._put: Future[str] | None = None
        self._put_headers: dict = {}
        self._encoder = codec.encoder()
        self._plain = codec is PLAIN  # stored bytes are the bytes written: their SHA-256 signs a single PUT
        # An encoded object: the SHA-256 and size of the bytes stored (the integrity audit checks them, no key).
        self._stored_sha = None if self._plain else hashlib.sha256()
        self._stored_size = 0
        self._encoded = False  # the encoder's last bytes were written (`finish_encoding`)

    def write(self, chunk: bytes | memoryview) -> None:
        if self._plain:
            self._write_stored(chunk)
        else:
            self._write_stored(self._encoder.update(chunk))

    def finish_encoding(self) -> tuple[str, int]:
        """An encoded object: write the encoder's last bytes (nothing may be written after) and return the
        SHA-256 and size of everything stored, known before the object is committed."""
        if self._stored_sha is None:
            raise ValueError("a plain object's stored bytes are the bytes written")
        if not self._encoded:
            self._write_stored(self._encoder.finish())
            self._encoded = True
        return self._stored_sha.hexdigest(), self._stored_size

    def _write_stored(self, chunk: bytes | memoryview) -> None:
        if not chunk:
            return
        if self._stored_sha is not None:
            self._stored_sha.update(chunk)
            self._stored_size += len(chunk)
        if self._body is not None:
            self._feed(memoryview(chunk))
            return
        self._pending.append(memoryview(chunk))
        self._pending_bytes += len(chunk)
        if not self._upload_id:
            if self._pending_bytes < 2 * self._part_size:
                return  # still small enough for a single PUT
            self._upload_id = _s3(
                lambda: self._client.create_multipart_upload(self._bucket, self._key, self._headers), "start upload"
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
            lambda: self._client.upload_part(self._bucket, self._key, data, headers, self._upload_id, number),
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
        return not self._upload_id and self._body is None

    @property
    def streaming(self) -> bool:
        """True once `stream` started the PUT (its headers are final)."""
        return self._body is not None

    @property
    def stream_backlog(self) -> int:
        """Streaming: bytes received and not yet handed to the PUT's connection (the held-back last chunk
        not counted); 0 when not streaming."""
        return 0 if self._body is None else self._body.buffered

    def can_stream(self, size: int) -> bool:
        """Whether `stream` may start a PUT of `size` bytes now."""
        return (
            self.single_put
            and self._plain
            and self._put_pool is not None
            and not self._client.is_https  # its Content-MD5 would have to come first
            and self._pending_bytes < size <= MAX_PUT_BYTES
        )

    def stream(self, extra_headers: dict[str, str], size: int, sha256: str) -> None:
        """Start the object as one PUT of exactly `size` bytes whose SHA-256 is `sha256`, with its
        final headers: what was written so far is sent now, later writes as they come."""
        if not self.can_stream(size) or self._put_pool is None:
            raise ValueError(f"cannot stream a PUT of {size} bytes after {self._pending_bytes} were written")
        self._body = FedBody(size, STREAM_BUFFER_BYTES)
        self._put_headers = {**self._headers, **extra_headers, PAYLOAD_SHA256_HEADER: sha256}
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for view in pending:
            self._feed(view)

    def _feed(self, view: memoryview) -> None:
        """Send `view` now, unless it completes the declared size: that chunk is held until commit, so
        S3 cannot complete the object before the caller has checked everything (every earlier byte is
        with S3 as soon as it arrived)."""
        assert self._body is not None  # streaming
        if self._put is not None and self._put.done():
            self._raise_unless_exists()  # S3 refused or failed already: say so now, not after every byte
        total = self._body.fed + self._pending_bytes + len(view)
        if total > len(self._body):
            raise InvalidArgument(f"received more than the declared {len(self._body)} bytes; nothing stored")
        if total < len(self._body):
            self._send_body(view)  # nothing is held yet: only the chunk that completes the size is
        else:
            self._pending, self._pending_bytes = [view], len(view)

    def _send_body(self, view: memoryview) -> None:
        """Feed `view` to the PUT; the PUT itself starts with its first bytes ready, so its headers are
        never on the wire long before its body (SeaweedFS stores an empty object for a PUT whose
        connection drops before the first body byte: a process killed in that gap would leave one)."""
        assert self._body is not None and self._put_pool is not None  # streaming
        self._body.feed(view)  # the first feed never waits: nothing is buffered yet
        if self._put is None:
            self._put = self._put_pool.submit(self._send_put, self._body, self._put_headers)

    def _raise_unless_exists(self) -> None:
        """Raise the finished PUT's error, unless it is the 412 that `commit` reports as ObjectExists
        (a duplicate is answered once all its bytes arrived and were checked)."""
        assert self._put is not None
        try:
            _created(self._put.result, self._put_headers, self._key)
        except ObjectExists:
            return

    def _send_put(self, body: FedBody, headers: dict) -> str:
        try:
            if body.aborted:
                raise BodyAborted("aborted before the PUT started")
            with self._put_tracker():
                result = _s3(lambda: self._client.put_raw(self._bucket, self._key, body, headers), "write")
        except BodyAborted as exc:
            if body.aborted:
                raise  # abort() cut it short
            # The connection broke mid-body and urllib3 tried again: a fed body cannot be replayed.
            raise StorageUnavailable(
                f"S3 write failed, nothing was acknowledged; retry the upload: the connection to S3 broke: {exc}"
            ) from exc
        finally:
            body.release()
        return result.version_id or ""

    def commit(self, extra_headers: dict[str, str] | None = None, sha256: str | None = None) -> str:
        """Send the rest, wait for every part, complete; returns the new version id.

        `extra_headers` (metadata known only now) are only possible for a single PUT. `sha256`, the
        digest of every byte written, lets a single PUT be signed without hashing them again.
        """
        if not self._plain:
            sha256 = self.finish_encoding()[0]  # the digest of the bytes stored signs a single PUT
        if self._body is not None:
            if extra_headers:
                raise ValueError("a streamed PUT's headers were fixed when it started")
            return self._finish_stream()
        if not self._upload_id:
            return self._put_whole(extra_headers or {}, sha256)
        if extra_headers:
            raise ValueError("metadata is fixed when a multipart upload starts")
        if self._pending_bytes:
            self._send(self._take(self._pending_bytes))
        parts = [future.result() for future in self._futures]
        result = _s3(
            lambda: self._client.complete_multipart_upload(self._bucket, self._key, self._upload_id, parts),
            "complete upload",
        )
        self._closed = True
        return result.version_id or ""

    def _finish_stream(self) -> str:
        assert self._body is not None  # streaming
        for view in self._pending:
            self._send_body(view)
        self._pending, self._pending_bytes = [], 0
        self._body.end()
        assert self._put is not None  # started by the first bytes sent
        try:
            version_id = _created(self._put.result, self._put_headers, self._key)
        finally:
            self._closed = True
        return version_id

    def _put_whole(self, extra_headers: dict[str, str], sha256: str | None) -> str:
        data = self._take(self._pending_bytes)
        headers = {**self._headers, **extra_headers, PAYLOAD_SHA256_HEADER: sha256 or data.sha256()}
        result = _created(
            lambda: _s3(lambda: self._client.put_raw(self._bucket, self._key, data, headers), "write"),
            headers,
            self._key,
        )
        self._closed = True
        return result.version_id or ""

    def abort(self) -> None:
        """Drop the upload: no object version appears. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._pending, self._pending_bytes = [], 0
        if self._body is not None:
            if self._put is None:
                return  # no byte was sent: no request was started
            ended_before = self._put.done()  # then its outcome is what the caller is handling now
            self._body.abort()
            error = self._put.exception()  # wait: the request must be over before the caller goes on
            if not ended_before and not isinstance(error, BodyAborted):
                log.warning("streamed PUT of %s ended with %r while it was being aborted", self._key, error)
            return
        if not self._upload_id:
            return
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            if not future.cancelled():
                future.exception()  # wait; its error is already reported to the caller
        try:
            with s3_errors("abort"):
                self._client.abort_multipart_upload(self._bucket, self._key, self._upload_id)
        except StorageUnavailable as exc:
            log.error("could not abort multipart upload %s of %s: %s", self._upload_id, self._key, exc)


def _created(put, headers: dict, key: str):  # type: ignore[no-untyped-def]
    """`put()`'s result; a 412 to a PUT sent with `If-None-Match: *` is ObjectExists."""
    try:
        return put()
    except StorageUnavailable as exc:
        if exc.code == "PreconditionFailed" and "If-None-Match" in headers:
            raise ObjectExists(key) from exc.__cause__
        raise


def _s3(call, what: str):  # type: ignore[no-untyped-def]
    with s3_errors(f"S3 {what} failed, nothing was acknowledged; retry the upload"):
        return call()
