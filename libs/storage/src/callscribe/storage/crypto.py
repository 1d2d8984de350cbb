"""Encryption at rest for stored objects (issue 19): a `BodyCodec` writing Tink's AES-GCM-HKDF streaming format.

The construction and the wire format are Tink's `AES256_GCM_HKDF_1MB` streaming AEAD (the STREAM construction of
Hoang, Reyhanitabar, Rogaway and Vizár over AES-GCM), documented at
https://developers.google.com/tink/streaming-aead/aes_gcm_hkdf_streaming:

- a 40-byte header: its length (1 byte), a random 32-byte salt, a random 7-byte nonce prefix;
- a per-object key: HKDF-SHA256 of the data key, with that salt, the associated data as info, 32 bytes;
- the plaintext in segments, each sealed with AES-256-GCM (no associated data) under the nonce
  prefix || segment index (4 bytes, big-endian) || 1 if it is the last segment else 0, each 1 MiB of ciphertext
  with its 16-byte tag (the first shorter by the header). Segments cannot be reordered, dropped or the stream cut
  short unnoticed; a ciphertext bound to one recording (its associated data) does not decrypt as another's.

Data keys are Tink keysets (`new_data_key`, one per recording; `keys` wraps them, `recordkeys` stores them). The
segments are sealed by `cryptography`'s AESGCM (OpenSSL) rather than by Tink's Python streams: the format is the
same bytes (tests/storage/test_crypto.py decrypts ours with Tink and Tink's with ours, at every boundary), and
OpenSSL runs it at memory speed while Tink's Python file wrappers managed a fifth of that. Both directions are
push-style (each chunk in hands back what it completed), so memory stays at about one segment per stream.
"""

from __future__ import annotations

import math
import os

import tink
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tink import secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from callscribe.storage.errors import IntegrityError

streaming_aead.register()

NAME = "tink-aes256-gcm-hkdf-1mb"
_TEMPLATE = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
_SALT = 32
_PREFIX = 7
_HEADER = 1 + _SALT + _PREFIX
_SEGMENT = 1024 * 1024
_TAG = 16
_FIRST_PLAIN = _SEGMENT - _HEADER - _TAG  # plaintext bytes of the first segment
_PLAIN = _SEGMENT - _TAG  # of every other one


def new_data_key() -> tink.KeysetHandle:
    """A fresh data key (a Tink keyset holding one AES256_GCM_HKDF_1MB key)."""
    return tink.new_keyset_handle(_TEMPLATE)


def stored_size(plain_size: int) -> int:
    """The size of the ciphertext of `plain_size` plaintext bytes (known before the first byte)."""
    segments = max(1, math.ceil((plain_size + _HEADER) / (_SEGMENT - _TAG)))
    return plain_size + _HEADER + _TAG * segments


def _key_value(data_key: tink.KeysetHandle) -> bytes:
    """The raw key of a data key made by `new_data_key`; anything else is refused."""
    keyset = tink_pb2.Keyset()
    keyset.ParseFromString(tink.proto_keyset_format.serialize(data_key, secret_key_access.TOKEN))
    (entry,) = [k for k in keyset.key if k.key_id == keyset.primary_key_id]
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey()
    key.ParseFromString(entry.key_data.value)
    params = key.params
    if (
        not entry.key_data.type_url.endswith("AesGcmHkdfStreamingKey")
        or params.ciphertext_segment_size != _SEGMENT
        or params.derived_key_size != _SALT
        or params.hkdf_hash_type != common_pb2.SHA256
        or len(key.key_value) != 32
    ):
        raise ValueError("a data key must be a Tink AES256_GCM_HKDF_1MB keyset")
    return bytes(key.key_value)


def _derive(key_value: bytes, salt: bytes, associated_data: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=SHA256(), length=_SALT, salt=salt, info=associated_data).derive(key_value))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class _Encoder:
    def __init__(self, key_value: bytes, associated_data: bytes) -> None:
        salt, self._prefix = os.urandom(_SALT), os.urandom(_PREFIX)
        self._aead = _derive(key_value, salt, associated_data)
        self._header: bytes | None = bytes([_HEADER]) + salt + self._prefix
        self._buffer = bytearray()
        self._index = 0

    def _limit(self) -> int:
        return _FIRST_PLAIN if self._index == 0 else _PLAIN

    def _seal(self, data: bytes | bytearray | memoryview, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, last), data, None)
        self._index += 1
        if self._header is not None:
            sealed, self._header = self._header + sealed, None
        return sealed

    def update(self, chunk: bytes | memoryview) -> bytes:
        self._buffer += chunk
        out = []
        # A full segment is sealed only once a byte beyond it arrived: until then it may be the last one.
        while len(self._buffer) > self._limit():
            limit = self._limit()
            out.append(self._seal(memoryview(self._buffer)[:limit], last=False))
            del self._buffer[:limit]
        return b"".join(out)

    def finish(self) -> bytes:
        sealed = self._seal(self._buffer, last=True)
        self._buffer = bytearray()
        return sealed


class _Decoder:
    """Stored bytes in, plaintext out; IntegrityError when they do not decrypt (changed, cut short, reordered,
    another object's or another key's)."""

    def __init__(self, key_value: bytes, associated_data: bytes) -> None:
        self._key_value, self._associated_data = key_value, associated_data
        self._aead: AESGCM | None = None
        self._prefix = b""
        self._buffer = bytearray()
        self._index = 0

    def _limit(self) -> int:
        return (_FIRST_PLAIN if self._index == 0 else _PLAIN) + _TAG

    def _open(self, data: bytes | bytearray | memoryview, last: bool) -> bytes:
        assert self._aead is not None
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, self._index, last), data, None)
        except InvalidTag:
            raise IntegrityError(
                f"the stored ciphertext does not decrypt (segment {self._index}): changed, cut short, reordered, "
                "another object's, or another key's; nothing read from it may be used"
            ) from None
        self._index += 1
        return plain

    def update(self, chunk: bytes | memoryview) -> bytes:
        self._buffer += chunk
        if self._aead is None:
            if len(self._buffer) < _HEADER:
                return b""
            if self._buffer[0] != _HEADER:
                raise IntegrityError("the stored object does not start with this scheme's header")
            salt, self._prefix = bytes(self._buffer[1 : 1 + _SALT]), bytes(self._buffer[1 + _SALT : _HEADER])
            self._aead = _derive(self._key_value, salt, self._associated_data)
            del self._buffer[:_HEADER]
        out = []
        while len(self._buffer) > self._limit():
            limit = self._limit()
            out.append(self._open(memoryview(self._buffer)[:limit], last=False))
            del self._buffer[:limit]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._aead is None or len(self._buffer) < _TAG:
            raise IntegrityError("the stored ciphertext is cut short (no last segment)")
        plain = self._open(self._buffer, last=True)
        self._buffer = bytearray()
        return plain


class StreamingAeadCodec:
    """Stored bytes are the AES256_GCM_HKDF_1MB streaming AEAD of the plaintext under one data key, bound to
    `associated_data`. One codec per object (its key and associated data); `encoder()`/`decoder()` make a fresh
    stream each."""

    name = NAME

    def __init__(self, data_key: tink.KeysetHandle, associated_data: bytes) -> None:
        self._key_value = _key_value(data_key)
        self._associated_data = associated_data

    def encoder(self) -> _Encoder:
        return _Encoder(self._key_value, self._associated_data)

    def decoder(self) -> _Decoder:
        return _Decoder(self._key_value, self._associated_data)

    def stored_size(self, plain_size: int) -> int | None:
        return stored_size(plain_size)

    def seal(self, data: bytes, label: bytes) -> bytes:
        """A small blob (a record, a transcript) encrypted under this object's key, bound to its associated
        data and `label` (what it is: a record does not open as a transcript)."""
        encoder = _Encoder(self._key_value, self._associated_data + b"|" + label)
        return encoder.update(data) + encoder.finish()

    def unseal(self, sealed: bytes, label: bytes) -> bytes:
        """The blob `seal` made; IntegrityError when it does not decrypt."""
        decoder = _Decoder(self._key_value, self._associated_data + b"|" + label)
        return decoder.update(sealed) + decoder.finish()
