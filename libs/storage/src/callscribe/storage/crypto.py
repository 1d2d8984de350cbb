"""Encryption at rest for stored objects (issue 19, step 1): a `BodyCodec` on Tink's streaming AEAD.

The construction is Tink's, not ours: AES256_GCM_HKDF_1MB (a per-object key derived with HKDF-SHA256 from the
data key and a random salt, AES-256-GCM over 1 MiB segments, each segment's nonce bound to its position and to
whether it is the last, so segments cannot be reordered, dropped or the stream cut short unnoticed). The
associated data binds a ciphertext to what it is (the recording id and key): a stored object moved under
another name does not decrypt.

Tink's streams are files: the encrypting one writes ciphertext to a destination, the decrypting one pulls it
from a source (and busy-waits when its source has nothing yet: Tink 1.16 has no non-blocking reads). So the
encoder is push-style like the writer's seam (each chunk hands back the ciphertext it completed), and reading
is pull-style: `open_plaintext(response)` reads the S3 answer through Tink's stream (`read_verified` uses it
when a codec has it). Memory stays bounded: Tink holds less than two segments (2 MiB) of a stream.

Data keys are Tink keysets, one per recording; `keys` wraps them with a key-encryption key (a key file,
OpenBao/Vault Transit) and `recordkeys` stores them where erasure can destroy them.
"""

from __future__ import annotations

import io
import math
from typing import Any, BinaryIO

import tink
from tink import streaming_aead

from callscribe.storage.errors import IntegrityError

streaming_aead.register()

NAME = "tink-aes256-gcm-hkdf-1mb"
_TEMPLATE = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
# AES256_GCM_HKDF_1MB's layout: a header (1 length byte, a 32-byte salt, a 7-byte nonce prefix), then segments
# of 1 MiB of ciphertext, each ending in a 16-byte GCM tag; the first segment is shorter by the header.
_HEADER = 1 + 32 + 7
_SEGMENT = 1024 * 1024
_TAG = 16


def new_data_key() -> tink.KeysetHandle:
    """A fresh data key (a Tink keyset holding one AES256_GCM_HKDF_1MB key)."""
    return tink.new_keyset_handle(_TEMPLATE)


def stored_size(plain_size: int) -> int:
    """The size of the ciphertext of `plain_size` plaintext bytes (known before the first byte: a streamed PUT
    needs its Content-Length)."""
    segments = max(1, math.ceil((plain_size + _HEADER) / (_SEGMENT - _TAG)))
    return plain_size + _HEADER + _TAG * segments


class _Collect(io.RawIOBase):
    """Where Tink's encrypting stream writes: kept until the encoder hands it on; closing it is a no-op (Tink
    closes its destination when the stream ends, the encoder still has to read it)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class _Encoder:
    def __init__(self, aead: Any, associated_data: bytes) -> None:
        self._out = _Collect()
        self._stream = aead.new_encrypting_stream(self._out, associated_data)

    def update(self, chunk: bytes | memoryview) -> bytes:
        self._stream.write(bytes(chunk))
        return self._out.take()

    def finish(self) -> bytes:
        self._stream.close()
        return self._out.take()


class _Plaintext(io.RawIOBase):
    """The plaintext of a stored object, read through Tink's decrypting stream; a ciphertext that does not
    decrypt (changed, cut short, another object's or key's) is IntegrityError."""

    def __init__(self, aead: Any, stored: BinaryIO, associated_data: bytes) -> None:
        self._stream = aead.new_decrypting_stream(stored, associated_data)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return bytes(self._stream.read(_SEGMENT if size is None or size < 0 else size))
        except tink.TinkError as exc:
            raise IntegrityError(
                f"the stored ciphertext does not decrypt ({exc}): changed, cut short, another object's, or "
                "another key's; nothing read from it was used"
            ) from None


class _NoPushDecoding:
    def update(self, chunk: bytes | memoryview) -> bytes:
        raise TypeError("an encrypted object is read with open_plaintext (Tink's stream pulls its ciphertext)")

    def finish(self) -> bytes:
        raise TypeError("an encrypted object is read with open_plaintext")


class StreamingAeadCodec:
    """Stored bytes are Tink's streaming AEAD of the plaintext under one data key, bound to `associated_data`.

    One codec per object (its key and associated data); `encoder()`/`decoder()` make a fresh stream each."""

    name = NAME

    def __init__(self, data_key: tink.KeysetHandle, associated_data: bytes) -> None:
        self._aead = data_key.primitive(streaming_aead.StreamingAead)
        self._associated_data = associated_data

    def encoder(self) -> _Encoder:
        return _Encoder(self._aead, self._associated_data)

    def decoder(self) -> _NoPushDecoding:
        return _NoPushDecoding()

    def open_plaintext(self, stored: BinaryIO) -> BinaryIO:
        """A readable of the plaintext of `stored` (a readable of the stored bytes: an S3 response)."""
        return _Plaintext(self._aead, stored, self._associated_data)  # type: ignore[return-value]

    def stored_size(self, plain_size: int) -> int | None:
        return stored_size(plain_size)

    def seal(self, data: bytes, label: bytes) -> bytes:
        """A small blob (a record, a transcript) encrypted under this object's key, bound to its associated
        data and `label` (what it is: a record does not open as a transcript)."""
        out = _Collect()
        stream = self._aead.new_encrypting_stream(out, self._associated_data + b"|" + label)
        stream.write(data)
        stream.close()
        return out.take()

    def unseal(self, sealed: bytes, label: bytes) -> bytes:
        """The blob `seal` made; IntegrityError when it does not decrypt."""
        plain = _Plaintext(self._aead, io.BytesIO(sealed), self._associated_data + b"|" + label)
        parts = []
        while data := plain.read(_SEGMENT):
            parts.append(data)
        return b"".join(parts)
