"""Request bodies the storage layer sends without joining them into one buffer: `Body` (received chunks
sent one after another) and `FedBody` (fed by one thread while another sends it)."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any


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


class BodyAborted(Exception):
    """Raised into the request sending a `FedBody` that was aborted: the request ends short of its
    Content-Length, so S3 stores nothing. Not an OSError: urllib3 must not retry it."""


class FedBody:
    """A request body of a known size, fed by one thread while another sends it (a PUT that starts
    before all its bytes have arrived).

    The producer `feed`s buffers and `end`s or `abort`s it; the sending request iterates it. At most
    `max_buffered` bytes wait between the two: `feed` blocks beyond that (the producer's own source is
    then flow-controlled). Whoever runs the request calls `release` when it is over, so a producer
    never blocks on a request that stopped reading (an error, an early answer). Only with
    PAYLOAD_SHA256_HEADER, over http: its Content-MD5 cannot be known before it is sent.

    `abort` keeps the request from completing only while fewer than `size` bytes were fed: the
    producer holds its last bytes back until it `end`s (S3 completes a PUT once Content-Length bytes
    arrived, whatever this object says).

    A request cut short always carries at least one body byte before the connection is dropped:
    SeaweedFS stores an empty object (locked, in a locked bucket) when a PUT's connection closes
    before any body byte arrived, whatever its Content-Length. So an abort before anything was sent
    sends the FILLER byte first, and a second attempt at sending the body (urllib3 retrying after a
    broken connection or a 5xx) sends FILLER and fails with BodyAborted: fed bytes cannot be
    replayed. A fed body is at least 2 bytes, so such a request is always short and S3 stores
    nothing.
    """

    FILLER = b"\0"

    def __init__(self, size: int, max_buffered: int) -> None:
        if size < 2:
            raise ValueError(f"a fed body is at least 2 bytes (a cut request must stay short of it), not {size}")
        self._size = size
        self._max_buffered = max_buffered
        self._buffers: deque[bytes | memoryview] = deque()
        self._buffered = 0
        self._fed = 0
        self._ended = self._aborted = self._released = self._iterated = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return self._size

    @property
    def fed(self) -> int:
        """Bytes fed so far (those dropped after `release` included)."""
        return self._fed

    @property
    def aborted(self) -> bool:
        return self._aborted

    @property
    def sending(self) -> bool:
        """The request has started reading the body (its headers are sent)."""
        return self._iterated

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet taken by the request (0: everything fed is on its way to S3)."""
        return self._buffered

    def feed(self, buffer: bytes | memoryview) -> None:
        """Queue `buffer` for sending; blocks while `max_buffered` bytes are waiting. After `release`
        the buffer is dropped (the request is over; its outcome tells the caller what happened)."""
        size = memoryview(buffer).nbytes
        if self._fed + size > self._size:
            raise ValueError(f"feeding {size} more bytes would exceed the body's {self._size}")
        with self._cond:
            while self._buffered >= self._max_buffered and not self._released:
                self._cond.wait()
            self._fed += size
            if self._released:
                return
            self._buffers.append(buffer)
            self._buffered += size
            self._cond.notify_all()

    def end(self) -> None:
        """Every byte was fed: the request may finish."""
        if self._fed != self._size:
            raise ValueError(f"a body of {self._size} bytes ended after {self._fed}")
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def abort(self) -> None:
        """The request must fail short of its last byte (S3 then stores nothing)."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def release(self) -> None:
        """The request is over (answered or failed): stop blocking the producer, drop the buffers."""
        with self._cond:
            self._released = True
            self._buffers.clear()
            self._buffered = 0
            self._cond.notify_all()

    def __iter__(self) -> Iterator[bytes | memoryview]:
        with self._cond:
            again, self._iterated = self._iterated, True
        return self._replay_refused() if again else self._chunks()

    def _replay_refused(self) -> Iterator[bytes | memoryview]:
        yield self.FILLER
        raise BodyAborted("a fed body cannot be sent twice (a retry cannot replay it)")

    def _chunks(self) -> Iterator[bytes | memoryview]:
        sent = False
        while True:
            with self._cond:
                while not (self._buffers or self._ended or self._aborted):
                    self._cond.wait()
                if self._aborted:
                    break
                if not self._buffers:
                    return  # ended, everything sent
                buffer = self._buffers.popleft()
                self._buffered -= memoryview(buffer).nbytes
                self._cond.notify_all()
            yield buffer
            sent = True
        if not sent:
            yield self.FILLER  # never cut a request before its first body byte (see the class doc)
        raise BodyAborted("the upload was abandoned before its last byte")
