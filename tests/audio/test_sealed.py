"""callscribe.audio.sealed: spool files that are ciphertext under a key that exists only in memory.

Round trips at and around chunk boundaries, random access, tampering (a flipped byte, a cut, swapped
chunks, a file cut at a chunk boundary) failing with SealedFileError, and what lies on disk: no plaintext
of a recognisable recording, and neither the key nor the nonce prefix anywhere in the spool directory,
also after the writing process died without cleaning up.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pickle
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callscribe.audio.sealed import CHUNK_BYTES, TAG_BYTES, SealedFile, SealedFileError, SealedWriter
from callscribe.audio.source import clear_stale_spool

C = CHUNK_BYTES
SUFFIX = ".upload"


def _seal(directory: Path, data: bytes, piece: int | None = None, chunk_bytes: int = C) -> SealedFile:
    writer = SealedWriter.create(directory, SUFFIX, chunk_bytes)
    step = piece or max(1, len(data))
    for at in range(0, len(data), step):
        assert writer.write(memoryview(data)[at : at + step]) == len(data[at : at + step])
    return writer.finish()


def _wav(seconds: float = 2.0, rate: int = 16000) -> bytes:
    """A 16-bit mono RIFF/WAVE of a chirp: recognisable header, and audio no two 64-byte runs of which match."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * (200 + 900 * t) * t) * 12000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _plaintext_found(plain: bytes, on_disk: bytes) -> list[str]:
    """Recognisable plaintext of `plain` in `on_disk`: the WAV markers, and 64-byte runs. Any 64-byte run
    of `plain` holds a whole 32-byte block starting at a multiple of 32, so those blocks are searched."""
    found = [marker.decode() for marker in (b"RIFF", b"WAVE", b"fmt ") if marker in on_disk]
    found += [f"bytes {at}-{at + 32}" for at in range(0, len(plain) - 31, 32) if plain[at : at + 32] in on_disk]
    return found


# --------------------------------------------------------------------------- round trips


SIZES = [0, 1, C - 1, C, C + 1, 2 * C, 3 * C + 7]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("piece", [None, 1000, C, C + 1], ids=["one-write", "1000", "chunk", "chunk+1"])
def test_round_trip_at_chunk_boundaries(tmp_path: Path, size: int, piece: int | None) -> None:
    data = random.Random(size).randbytes(size)
    sealed = _seal(tmp_path, data, piece)
    assert sealed.size == size
    chunks = max(1, -(-size // C))
    assert sealed.path.stat().st_size == size + TAG_BYTES * chunks == sealed.sealed_size
    with sealed.open() as reader:
        assert reader.read() == data
        assert reader.read() == b"" and reader.tell() == size
    with sealed.open() as reader:  # in blocks that do not line up with the chunks
        got = b"".join(iter(lambda: reader.read(C // 3 + 5), b""))
    assert got == data


def test_random_access_reads_what_the_plaintext_holds(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(5 * C + 123)
    sealed = _seal(tmp_path, data, 7777)
    rng = random.Random(2)
    with sealed.open() as reader:
        for _ in range(300):
            a = rng.randrange(0, len(data) + 10)
            n = rng.choice([0, 1, 2, 17, C - 1, C, C + 1, 2 * C + 3, rng.randrange(0, 3 * C)])
            assert reader.seek(a) == a
            assert reader.read(n) == data[a : a + n], (a, n)
            assert reader.tell() == (a if a >= len(data) else min(a + n, len(data)))
        assert reader.seek(-10, io.SEEK_END) == len(data) - 10
        assert reader.read(100) == data[-10:]
        reader.seek(C - 3)
        assert reader.seek(5, io.SEEK_CUR) == C + 2
        buf = bytearray(9)
        assert reader.readinto(buf) == 9 and bytes(buf) == data[C + 2 : C + 11]
        with pytest.raises(OSError, match="negative seek"):
            reader.seek(-1)


def test_readinto_fills_what_read_returns(tmp_path: Path) -> None:
    """readinto (libsndfile's reads) decrypts chunks it covers whole straight into the caller's buffer and
    the rest from the cache: the same bytes as read, wherever it starts and however long it is."""
    data = random.Random(11).randbytes(4 * C + 321)
    sealed = _seal(tmp_path, data)
    rng = random.Random(12)
    with sealed.open() as reader:
        for _ in range(200):
            a = rng.randrange(0, len(data) + 5)
            n = rng.choice([1, C, C + 1, 2 * C, 3 * C + 17, rng.randrange(1, 5 * C)])
            buf = bytearray(b"\xee" * n)
            reader.seek(a)
            got = reader.readinto(buf)
            assert got == len(data[a : a + n]) and bytes(buf[:got]) == data[a : a + n], (a, n)
            assert reader.tell() == max(a, min(a + n, len(data)))


def test_readinto_of_a_changed_chunk_fails_and_keeps_none_of_it(tmp_path: Path) -> None:
    data = random.Random(13).randbytes(3 * C)
    sealed = _seal(tmp_path, data)
    _tampered(sealed, lambda raw: raw[: STRIDE + 9] + bytes([raw[STRIDE + 9] ^ 4]) + raw[STRIDE + 10 :])
    buf = bytearray(b"\xee" * (3 * C))
    with sealed.open() as reader, pytest.raises(SealedFileError, match="chunk 1 of 3 does not authenticate"):
        reader.readinto(buf)
    assert bytes(buf[:C]) == data[:C]  # chunk 0 was read before the failure
    assert bytes(buf[C : 2 * C]) == bytes(C), "the failed chunk's decryption was left in the buffer"


def test_each_open_is_an_independent_reader(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3 * C)
    sealed = _seal(tmp_path, data)
    with sealed.open() as one, sealed.open() as two:
        one.seek(2 * C)
        assert two.read(10) == data[:10]
        assert one.read(10) == data[2 * C : 2 * C + 10]
        assert (one.tell(), two.tell()) == (2 * C + 10, 10)


def test_small_sequential_reads_decrypt_each_chunk_once(tmp_path: Path) -> None:
    data = random.Random(4).randbytes(4 * C + 5)
    sealed = _seal(tmp_path, data)
    decrypted: list[int] = []

    class Counting:
        def __init__(self, aead: AESGCM) -> None:
            self._aead = aead

        def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
            decrypted.append(struct.unpack(">I", nonce[7:11])[0])
            return self._aead.decrypt(nonce, data, aad)

    with sealed.open() as reader:
        reader._aead = Counting(reader._aead)  # type: ignore[assignment]
        got = b"".join(iter(lambda: reader.read(4096), b""))
    assert got == data
    assert decrypted == [0, 1, 2, 3, 4]


def test_the_writer_refuses_bytes_after_finish_and_finish_is_idempotent(tmp_path: Path) -> None:
    writer = SealedWriter.create(tmp_path, SUFFIX)
    writer.write(b"abc")
    first = writer.finish()
    assert writer.finish() is first
    with pytest.raises(ValueError, match="closed for writing"):
        writer.write(b"more")
    assert first.open().read() == b"abc"


# --------------------------------------------------------------------------- tampering


def _tampered(sealed: SealedFile, change) -> None:  # type: ignore[no-untyped-def]
    raw = bytearray(sealed.path.read_bytes())
    sealed.path.write_bytes(bytes(change(raw)))


STRIDE = C + TAG_BYTES


@pytest.mark.parametrize("at", [0, 5, C - 1, C + TAG_BYTES - 1, STRIDE + 100, 2 * STRIDE + 3, 3 * STRIDE + 6])
def test_a_flipped_byte_fails_its_chunk_with_a_clear_error(tmp_path: Path, at: int) -> None:
    data = random.Random(5).randbytes(3 * C + 7)
    sealed = _seal(tmp_path, data)

    def flip(raw: bytearray) -> bytearray:
        raw[at] ^= 0x01
        return raw

    _tampered(sealed, flip)
    bad = at // STRIDE
    with sealed.open() as reader:
        reader.seek(bad * C)
        with pytest.raises(SealedFileError, match=rf"changed on disk while in use \(chunk {bad} of 4 does not auth"):
            reader.read(1)
        with pytest.raises(SealedFileError):  # and stays failed
            reader.seek(0)
            reader.read(1)
    with sealed.open() as reader:  # the other chunks still read
        for index in {0, 1, 2, 3} - {bad}:
            reader.seek(index * C)
            assert reader.read(10) == data[index * C : index * C + 10]


@pytest.mark.parametrize("cut", [1, TAG_BYTES, 7 + TAG_BYTES, 7 + TAG_BYTES + 1])
def test_a_cut_or_extended_file_is_refused_at_open(tmp_path: Path, cut: int) -> None:
    data = random.Random(6).randbytes(3 * C + 7)
    sealed = _seal(tmp_path, data)
    _tampered(sealed, lambda raw: raw[:-cut])
    with pytest.raises(SealedFileError, match="cut short"):
        sealed.open()
    _tampered(sealed, lambda raw: raw + b"\0" * (cut * 2))
    with pytest.raises(SealedFileError, match="extended"):
        sealed.open()


def test_a_file_cut_at_a_chunk_boundary_fails_by_its_last_chunk_flag(tmp_path: Path) -> None:
    """Even told a shorter size (as a reader that trusted the size on disk would be), the chunk that is
    now last was sealed as 'not last' and does not authenticate."""
    data = random.Random(7).randbytes(3 * C + 7)
    sealed = _seal(tmp_path, data)
    _tampered(sealed, lambda raw: raw[: 2 * STRIDE])
    shorter = SealedFile(sealed.path, 2 * C, C, sealed._key, sealed._prefix)
    with shorter.open() as reader:
        assert reader.read(C) == data[:C]  # chunk 0 is still chunk 0
        with pytest.raises(SealedFileError, match="chunk 1 of 2 does not authenticate"):
            reader.read(C)


def test_swapped_chunks_fail(tmp_path: Path) -> None:
    data = random.Random(8).randbytes(3 * C + 7)
    sealed = _seal(tmp_path, data)
    _tampered(sealed, lambda raw: raw[STRIDE : 2 * STRIDE] + raw[:STRIDE] + raw[2 * STRIDE :])
    with sealed.open() as reader, pytest.raises(SealedFileError, match="chunk 0 of 4 does not authenticate"):
        reader.read(10)
    with sealed.open() as reader, pytest.raises(SealedFileError, match="chunk 1 of 4 does not authenticate"):
        reader.seek(C)
        reader.read(10)
    with sealed.open() as reader:
        reader.seek(2 * C)
        assert reader.read() == data[2 * C :]


def test_another_files_chunk_does_not_authenticate(tmp_path: Path) -> None:
    """Two files of the same bytes share nothing: a chunk copied from one into the other fails (own key)."""
    data = random.Random(9).randbytes(2 * C)
    one, two = _seal(tmp_path, data), _seal(tmp_path, data)
    assert one.path.read_bytes()[:STRIDE] != two.path.read_bytes()[:STRIDE]
    _tampered(two, lambda raw: one.path.read_bytes()[:STRIDE] + raw[STRIDE:])
    with two.open() as reader, pytest.raises(SealedFileError, match="chunk 0 of 2"):
        reader.read(1)


# --------------------------------------------------------------------------- what is on disk


def test_the_disk_holds_no_plaintext_and_no_key(tmp_path: Path) -> None:
    wav = _wav()
    assert len(_plaintext_found(wav, wav)) > 1000  # the check finds plaintext where there is some
    sealed = _seal(tmp_path, wav, 4096)
    on_disk = sealed.path.read_bytes()
    assert _plaintext_found(wav, on_disk) == []
    everything = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (sealed._key, sealed._prefix):
        assert secret not in everything
    assert len(sealed._key) == 32 and len(sealed._prefix) == 7
    assert sealed._key.hex() not in repr(sealed) and repr(sealed._key) not in repr(sealed)
    assert sealed.open().read() == wav


def test_a_spool_left_by_a_crashed_process_is_noise_and_is_cleared(tmp_path: Path) -> None:
    """A process that dies (no cleanup, no finish) leaves its spool file: it holds no plaintext and no
    key (the key died with the process), and the next start's clear_stale_spool removes it."""
    wav = _wav(3.0)
    source = tmp_path / "call.wav"
    source.write_bytes(wav)
    spool = tmp_path / "spool"
    spool.mkdir()
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from callscribe.audio.sealed import SealedWriter
        writer = SealedWriter.create(Path({str(spool)!r}), {SUFFIX!r})
        data = Path({str(source)!r}).read_bytes()
        for at in range(0, len(data), 10000):
            writer.write(data[at : at + 10000])
        writer._fh.flush()
        os._exit(9)  # killed mid-upload: nothing finished, nothing removed
        """
    )
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert died.returncode == 9, died.stderr
    left = list(spool.glob(f"*{SUFFIX}"))
    assert len(left) == 1 and left[0].stat().st_size > len(wav) // 2
    assert _plaintext_found(wav, left[0].read_bytes()) == []
    assert clear_stale_spool(spool, SUFFIX) == 1
    assert list(spool.iterdir()) == []


def _sha_of(sealed: SealedFile) -> str:
    with sealed.open() as reader:
        return hashlib.sha256(reader.read()).hexdigest()


def test_a_worker_process_reads_the_file_with_the_key_it_was_handed(tmp_path: Path) -> None:
    """The VAD hands a sealed file to a spawned worker process: the key goes through the pool's pipe."""
    data = random.Random(10).randbytes(2 * C + 99)
    sealed = _seal(tmp_path, data)
    assert pickle.loads(pickle.dumps(sealed)) == sealed
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_sha_of, (sealed,)) == hashlib.sha256(data).hexdigest()


def test_a_stranger_with_the_path_but_not_the_key_reads_noise(tmp_path: Path) -> None:
    wav = _wav()
    sealed = _seal(tmp_path, wav)
    stranger = SealedFile(sealed.path, sealed.size, sealed.chunk_bytes, os.urandom(32), sealed._prefix)
    with stranger.open() as reader, pytest.raises(SealedFileError, match="chunk 0 of"):
        reader.read(4)
