"""Encryption at rest (issue 19): the streaming AEAD codec (Tink's AES256_GCM_HKDF_1MB format) alone, and
through the storage layer on a real S3: what S3 keeps is ciphertext with no run of the plaintext in it, of the
size announced in advance, and what comes back is the plaintext, its SHA-256 verified; a changed, cut, moved or
wrongly keyed ciphertext never yields a byte."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from tink import streaming_aead

from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.crypto import StreamingAeadCodec, new_data_key, stored_size
from callscribe.storage.errors import IntegrityError
from callscribe.storage.location import ObjectRef, Tier
from callscribe.storage.minio_ext import S3Client

MIB = 1024 * 1024
SIZES = (0, 1, MIB - 40, MIB - 39, MIB, 3 * MIB + 5)


def _encrypt(codec: StreamingAeadCodec, data: bytes, step: int = 100_000) -> bytes:
    encoder = codec.encoder()
    out = bytearray()
    for at in range(0, len(data), step):
        out += encoder.update(data[at : at + step])
    out += encoder.finish()
    return bytes(out)


def _decrypt(codec: StreamingAeadCodec, stored: bytes, step: int = 300_000) -> bytes:
    decoder = codec.decoder()
    out = bytearray()
    for at in range(0, len(stored), step):
        out += decoder.update(stored[at : at + step])
    out += decoder.finish()
    return bytes(out)


class _Collect(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def,override]
        self.data += b
        return len(b)

    def close(self) -> None:  # Tink closes its destination; the test still reads it
        pass


# Segment boundaries of AES256_GCM_HKDF_1MB: the first segment holds MIB - 40 - 16 plaintext bytes, the others
# MIB - 16.
FIRST, OTHER = MIB - 56, MIB - 16
BOUNDARIES = (0, 1, FIRST - 1, FIRST, FIRST + 1, FIRST + OTHER, FIRST + OTHER + 1)


@pytest.mark.parametrize("size", BOUNDARIES)
def test_the_stored_bytes_are_tinks_format_both_ways(size: int) -> None:
    """The codec writes exactly Tink's AES256_GCM_HKDF_1MB streams: Tink's own streaming AEAD decrypts what it
    stores, and it decrypts what Tink's encrypts, at every segment boundary."""
    key = new_data_key()
    codec = StreamingAeadCodec(key, b"recordings/acme/r1")
    tink_aead = key.primitive(streaming_aead.StreamingAead)
    data = os.urandom(size)
    ours = _encrypt(codec, data, 65536)
    with tink_aead.new_decrypting_stream(io.BytesIO(ours), b"recordings/acme/r1") as plain:
        assert plain.read() == data
    out = _Collect()
    with tink_aead.new_encrypting_stream(out, b"recordings/acme/r1") as stream:
        stream.write(data)
    assert len(out.data) == stored_size(size)
    assert _decrypt(codec, bytes(out.data)) == data


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_in_any_chunking_and_the_stored_size_is_known_in_advance(size: int) -> None:
    codec = StreamingAeadCodec(new_data_key(), b"recordings/acme/r1/audio")
    data = os.urandom(size)
    for step in (1, 4096, 100_000, MIB + 7) if size < 2 * MIB else (100_000, MIB + 7):
        stored = _encrypt(codec, data, step)
        assert len(stored) == stored_size(size) == codec.stored_size(size)
        assert _decrypt(codec, stored) == data


def test_the_same_plaintext_encrypts_differently_each_time() -> None:
    codec = StreamingAeadCodec(new_data_key(), b"ad")
    data = b"x" * 5000
    assert _encrypt(codec, data) != _encrypt(codec, data)  # a fresh salt and nonce prefix per stream


@pytest.mark.parametrize("damage", ["flip", "cut", "cut-at-a-segment", "drop-a-segment", "other-object", "other-key"])
def test_a_damaged_or_misplaced_ciphertext_never_yields_plaintext(damage: str) -> None:
    key = new_data_key()
    codec = StreamingAeadCodec(key, b"recordings/acme/r1/audio")
    data = os.urandom(3 * MIB)
    stored = bytearray(_encrypt(codec, data))
    reader = codec
    if damage == "flip":
        stored[2 * MIB] ^= 0x01
    elif damage == "cut":
        del stored[-1000:]
    elif damage == "cut-at-a-segment":
        del stored[MIB:]  # exactly the first segment: looks like a whole stream, but it is not the last
    elif damage == "drop-a-segment":
        del stored[MIB : 2 * MIB]
    elif damage == "other-object":
        reader = StreamingAeadCodec(key, b"recordings/acme/r2/audio")
    else:
        reader = StreamingAeadCodec(new_data_key(), b"recordings/acme/r1/audio")
    with pytest.raises(IntegrityError, match="does not decrypt"):
        _decrypt(reader, bytes(stored))


def test_the_encoder_holds_less_than_two_segments() -> None:
    """Bounded memory: each chunk hands back the ciphertext it completed; the encoder holds at most a segment and
    a chunk (it seals a segment once it knows it is not the last), however long the stream."""
    encoder = StreamingAeadCodec(new_data_key(), b"ad").encoder()
    held, peaks = 0, []
    for _ in range(40):  # 10 MiB
        out = encoder.update(os.urandom(256 * 1024))
        held += 256 * 1024 - len(out)
        peaks.append(held)
    assert max(peaks) < 2 * MIB and max(peaks[20:]) <= max(peaks[:20])  # bounded, not growing
    encoder.finish()


# --------------------------------------------------------------------------- through S3


@pytest.fixture(scope="module")
def hot(first_s3: S3Client, s3_server) -> LockedBucket:  # type: ignore[no-untyped-def]
    return LockedBucket(first_s3, s3_server.hot_bucket, Tier.HOT)


@pytest.mark.parametrize("size", [200_000, 12 * MIB + 3])  # one PUT; multipart (5 MiB parts)
def test_s3_keeps_ciphertext_and_the_reader_gets_the_verified_plaintext(hot: LockedBucket, size: int) -> None:
    key = f"crypto-test/{secrets.token_hex(6)}/audio"
    codec = StreamingAeadCodec(new_data_key(), key.encode())
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    lock = Lock("GOVERNANCE", (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0))
    with ThreadPoolExecutor(2) as pool:
        writer = hot.writer(
            key, {"x-amz-meta-sha256": sha}, lock, part_size=5 * MIB, parallel=2, pool=pool, codec=codec
        )
        for at in range(0, size, 256 * 1024):
            writer.write(data[at : at + 256 * 1024])
        version = writer.commit(sha256=sha)
    stat = hot.stat(key, version)
    assert stat is not None and stat.size == stored_size(size)
    stored = hot.read_bytes(key, version)
    for at in range(0, size - 64, max(1, size // 50)):
        assert data[at : at + 64] not in stored  # no run of the plaintext is stored
    got: list[bytes] = []
    ref = ObjectRef(hot.name, key, version, sha, Tier.HOT)
    assert hot.read_verified(ref, lambda b: got.append(bytes(b)), codec=codec) == size
    assert b"".join(got) == data
    with pytest.raises(IntegrityError):  # the same object read with another object's binding
        hot.read_verified(ref, lambda b: None, codec=StreamingAeadCodec(new_data_key(), key.encode()))
