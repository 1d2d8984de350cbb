"""The seam where stored bytes may differ from the bytes a recording is made of (encryption at rest).

A writer passes every chunk through an `Encoder` before it goes to S3 and adds what `finish` returns at
the end; a reader passes the stored bytes through a `Decoder` and verifies the SHA-256 of what comes out.
The fingerprint is always the plaintext's (invariant 3). `Plain` changes nothing and is the default;
the data-protection work (issue 19) adds an AEAD stream from a vetted library behind the same shape.
"""

from __future__ import annotations

from typing import Protocol


class Encoder(Protocol):
    def update(self, chunk: bytes | memoryview) -> bytes | memoryview: ...
    def finish(self) -> bytes: ...


class Decoder(Protocol):
    def update(self, chunk: bytes | memoryview) -> bytes | memoryview: ...
    def finish(self) -> bytes:
        """The rest; raises if the stored bytes were cut or changed (an authenticated stream)."""
        ...


class BodyCodec(Protocol):
    """Makes a fresh encoder or decoder per object."""

    name: str

    def encoder(self) -> Encoder: ...
    def decoder(self) -> Decoder: ...
    def stored_size(self, plain_size: int) -> int | None:
        """The stored size of `plain_size` plaintext bytes, None when it cannot be known in advance
        (then no PUT can start before the last byte: streaming needs its Content-Length)."""
        ...


class _Same:
    def update(self, chunk: bytes | memoryview) -> bytes | memoryview:
        return chunk

    def finish(self) -> bytes:
        return b""


class Plain:
    """Stored bytes are the plaintext."""

    name = "plain"

    def encoder(self) -> Encoder:
        return _Same()

    def decoder(self) -> Decoder:
        return _Same()

    def stored_size(self, plain_size: int) -> int | None:
        return plain_size


PLAIN = Plain()
