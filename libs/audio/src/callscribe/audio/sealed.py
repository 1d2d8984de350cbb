"""Sealed temp files: audio spooled to local disk is ciphertext under a key that exists only in memory.

A recording waiting on local disk (ingest's upload spool, the VAD's and the ASR's copy of a stored
recording) is written through a `SealedWriter` and read back through `SealedFile.open()`. Each file gets
its own ephemeral AES-256 key and nonce prefix, drawn from the OS's CSPRNG in this process and never
written anywhere: a spool file left behind by a crash, in a disk image or in a backup is noise, and the
key dies with the process (Python cannot wipe memory; a process's memory may still reach swap or a core
dump, which the deployment should disable for these services). The key travels only in memory: inside
this process, or pickled over a worker pool's pipe to the process that decodes the file (the VAD's
process pool), never through a file.

Construction: the nonce-based online AE scheme STREAM (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015) over AES-256-GCM
(`cryptography`'s `AESGCM`, AES-NI where the CPU has it):

* the plaintext is cut into chunks of `CHUNK_BYTES` (64 KiB); the last chunk holds the remainder
  (1..CHUNK_BYTES bytes; an empty file is one empty last chunk), so a file always has at least one chunk;
* chunk i (0-based) is sealed with the 96-bit nonce
  ``prefix (7 random bytes) || i (4 bytes, big-endian) || last (1 byte: 0x01 for the final chunk,
  0x00 for every other)``, and the associated data ``b"callscribe-sealed-spool/1" || chunk size (4 bytes,
  big-endian)``;
* on disk: the chunks' ciphertexts back to back, each its plaintext's length plus the 16-byte GCM tag,
  nothing else (no header: the key, the prefix and the plaintext size stay in memory, in `SealedFile`).

The index in the nonce detects chunks swapped or moved, the last-chunk flag a file cut at a chunk boundary
(the chunk before the cut was sealed as "not last"), the tag any changed byte; the size on disk is also
checked against the size written when a file is opened for reading. A chunk that does not authenticate
raises `SealedFileError`, never returns bytes. One key seals one file, and the (key, nonce) pairs of a file
never repeat (the index is unique per chunk), so GCM's nonce rule holds; 2^32 chunks of 64 KiB (256 TiB)
is the most one file can hold.

Writing is sequential (a chunk is sealed once the next byte arrives, so the writer knows it is not the
last); reading is random access: a `SealedReader` is a seekable, read-only file object (what libsndfile's
and FFmpeg's custom I/O need), each with its own position and file descriptor, that decrypts only the
chunks a read covers and keeps the last one decrypted. Memory is a chunk or two per writer and per reader,
whatever the file's size.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callscribe.kit.errors import DomainError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
PREFIX_BYTES = 7
KEY_BITS = 256
MAX_CHUNKS = 2**32  # the nonce's 4-byte chunk index
_VERSION_AAD = b"callscribe-sealed-spool/1"

Buffer: TypeAlias = bytes | bytearray | memoryview


class SealedFileError(DomainError):
    """A sealed spool file does not authenticate: it was changed, cut or extended on disk while in use (or
    the disk returned bad data). Nothing read from it may be used; the request fails (INTERNAL) and may be
    retried."""


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _aad(chunk_bytes: int) -> bytes:
    return _VERSION_AAD + struct.pack(">I", chunk_bytes)


def _chunks(size: int, chunk_bytes: int) -> int:
    """How many chunks hold `size` bytes (at least one: an empty file is one empty last chunk)."""
    return max(1, -(-size // chunk_bytes))


@dataclass(frozen=True)
class SealedFile:
    """A finished sealed file: where it is, how long its plaintext is, and (in memory only) its key.

    `open()` gives an independent reader each call. Never path-like on purpose: a decoder handed this
    must read through `open()`, not the ciphertext on disk. Pickles (key included) for a worker process
    of the same service; its repr leaves the key out."""

    path: Path
    size: int
    chunk_bytes: int = CHUNK_BYTES
    _key: bytes = field(default=b"", repr=False)
    _prefix: bytes = field(default=b"", repr=False)

    def open(self) -> SealedReader:
        return SealedReader(self)

    @property
    def sealed_size(self) -> int:
        """The file's size on disk: the plaintext plus one tag per chunk."""
        return self.size + TAG_BYTES * _chunks(self.size, self.chunk_bytes)

    def __str__(self) -> str:
        return f"{self.path} (sealed, {self.size} bytes)"


class SealedWriter:
    """Writes one sealed file sequentially; `finish()` seals its last chunk and returns the `SealedFile`.

    `create` makes the file (mode 0600, as `tempfile.mkstemp`) in `directory` with `suffix`, so the spool
    directory's cleaner (`clear_stale_spool`) finds what a crash left. The caller removes the file
    (`path`) when done with it; `close()` without `finish()` leaves an unreadable, incomplete file."""

    def __init__(self, path: Path, fh: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> None:
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.path = path
        self._fh = fh
        self._chunk_bytes = chunk_bytes
        self._key = AESGCM.generate_key(bit_length=KEY_BITS)
        self._prefix = os.urandom(PREFIX_BYTES)
        self._aead = AESGCM(self._key)
        self._aad = _aad(chunk_bytes)
        self._pending = bytearray()  # at most one chunk: sealed once more bytes arrive, or as the last
        self._out = bytearray(chunk_bytes + TAG_BYTES)  # each chunk's ciphertext, on its way to the file
        self._index = 0
        self.size = 0
        self._finished: SealedFile | None = None

    @classmethod
    def create(cls, directory: Path, suffix: str, chunk_bytes: int = CHUNK_BYTES) -> SealedWriter:
        fd, name = tempfile.mkstemp(suffix=suffix, dir=directory)
        return cls(Path(name), os.fdopen(fd, "wb"), chunk_bytes)

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def write(self, data: Buffer) -> int:
        """Append `data` (bytes, bytearray or memoryview); returns its length."""
        if self._finished is not None or self._fh.closed:
            raise ValueError(f"{self.path} is closed for writing")
        view = memoryview(data).cast("B")
        n, pos, chunk = len(view), 0, self._chunk_bytes
        while pos < n:
            if len(self._pending) == chunk:  # full, and more follows: not the last chunk
                self._seal(self._pending, last=False)
                self._pending.clear()
            if not self._pending and n - pos > chunk:  # a whole chunk with more after it: seal it in place
                self._seal(view[pos : pos + chunk], last=False)
                pos += chunk
                continue
            take = min(chunk - len(self._pending), n - pos)
            self._pending += view[pos : pos + take]
            pos += take
        self.size += n
        return n

    def _seal(self, plaintext: Buffer, last: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise ValueError(f"a sealed file holds at most {MAX_CHUNKS} chunks of {self._chunk_bytes} bytes")
        out = memoryview(self._out)[: len(plaintext) + TAG_BYTES]
        self._aead.encrypt_into(_nonce(self._prefix, self._index, last), plaintext, self._aad, out)
        self._fh.write(out)
        self._index += 1

    def finish(self) -> SealedFile:
        """Seal the last chunk, flush and close the file; the `SealedFile` to read it with."""
        if self._finished is None:
            self._seal(self._pending, last=True)
            self._pending = bytearray()
            self._fh.close()
            self._finished = SealedFile(self.path, self.size, self._chunk_bytes, self._key, self._prefix)
        return self._finished

    def close(self) -> None:
        """Close the file without sealing its end (it then never reads back: an abandoned spool)."""
        self._pending = bytearray()
        self._fh.close()


class SealedReader(io.RawIOBase):
    """A read-only, seekable view of a `SealedFile`'s plaintext (its own file descriptor and position).

    A read of [a, b) decrypts the chunks that cover it, reading each with `os.preadv` into one reused
    buffer; `readinto` decrypts a chunk it covers whole straight into the caller's buffer, and the last
    chunk decrypted otherwise is kept, so small sequential reads (FFmpeg's, libsndfile's) decrypt each
    chunk once.
    Raises `SealedFileError` when a chunk does not authenticate (and again on every later read:
    `failure` keeps the first)."""

    def __init__(self, sealed: SealedFile) -> None:
        super().__init__()
        self._sealed = sealed
        self._aead = AESGCM(sealed._key)
        self._aad = _aad(sealed.chunk_bytes)
        self._chunks = _chunks(sealed.size, sealed.chunk_bytes)
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self._ciphertext = bytearray(sealed.chunk_bytes + TAG_BYTES)  # each chunk as read, before decrypting
        self.failure: SealedFileError | None = None
        self._fd = -1
        self._fd = os.open(sealed.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            on_disk = os.fstat(self._fd).st_size
            if on_disk != sealed.sealed_size:
                self._fail(
                    f"it is {on_disk} bytes on disk where {sealed.sealed_size} were written "
                    f"({'cut short' if on_disk < sealed.sealed_size else 'extended'})"
                )
        except BaseException:
            self.close()
            raise

    @property
    def name(self) -> str:
        return os.fspath(self._sealed.path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._sealed.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill `buffer` from the position (short only at the end of the file). A chunk the read covers
        whole is decrypted straight into `buffer` (libsndfile's large reads); others come from the cache."""
        out = memoryview(buffer).cast("B")
        end = self._end(len(out))
        chunk = self._sealed.chunk_bytes
        at, filled = self._pos, 0
        while at < end:
            index = at // chunk
            lo, hi = at - index * chunk, min(self._plain_len(index), end - index * chunk)
            cached = self._cached is not None and self._cached[0] == index
            if lo == 0 and hi == self._plain_len(index) and not cached:
                self._decrypt(index, out[filled : filled + hi])
            else:
                out[filled : filled + hi - lo] = memoryview(self._chunk(index))[lo:hi]
            filled += hi - lo
            at = index * chunk + hi
        self._pos = max(self._pos, end)
        return filled

    def read(self, size: int | None = -1) -> bytes:
        end = self._end(-1 if size is None else size)
        chunk = self._sealed.chunk_bytes
        pieces = []
        at = self._pos
        while at < end:
            index = at // chunk
            plain = self._chunk(index)
            lo = at - index * chunk
            hi = min(len(plain), end - index * chunk)
            pieces.append(plain[lo:hi] if (lo, hi) != (0, len(plain)) else plain)
            at = index * chunk + hi
        self._pos = max(self._pos, end)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _end(self, size: int) -> int:
        """Where a read of `size` bytes (-1: to the end) from the position ends; raises the failure met."""
        self._check_open()
        if self.failure is not None:
            raise self.failure
        return self._sealed.size if size < 0 else min(self._sealed.size, self._pos + size)

    def readall(self) -> bytes:
        return self.read(-1)

    def _plain_len(self, index: int) -> int:
        sealed = self._sealed
        return sealed.size - index * sealed.chunk_bytes if index == self._chunks - 1 else sealed.chunk_bytes

    def _chunk(self, index: int) -> bytes:
        """Chunk `index`'s plaintext, decrypted once and kept until another chunk is asked for."""
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        nonce, ciphertext = self._read_chunk(index)
        try:
            plain = self._aead.decrypt(nonce, ciphertext, self._aad)
        except InvalidTag:
            self._fail(f"chunk {index} of {self._chunks} does not authenticate")
        self._cached = (index, plain)
        return plain

    def _decrypt(self, index: int, out: memoryview) -> None:
        """Chunk `index`'s plaintext into `out` (its exact length), or SealedFileError (`out` zeroed)."""
        nonce, ciphertext = self._read_chunk(index)
        try:
            self._aead.decrypt_into(nonce, ciphertext, self._aad, out)
        except InvalidTag:
            out[:] = bytes(len(out))  # decrypt_into leaves what it decrypted: nothing unauthenticated is kept
            self._fail(f"chunk {index} of {self._chunks} does not authenticate")

    def _read_chunk(self, index: int) -> tuple[bytes, memoryview]:
        """Chunk `index`'s nonce and ciphertext (read into a buffer reused for every chunk)."""
        sealed = self._sealed
        want = self._plain_len(index) + TAG_BYTES
        ciphertext = memoryview(self._ciphertext)[:want]
        got = os.preadv(self._fd, [ciphertext], index * (sealed.chunk_bytes + TAG_BYTES))
        if got != want:
            self._fail(f"chunk {index} of {self._chunks} is cut short: {got} of its {want} bytes are present")
        return _nonce(sealed._prefix, index, index == self._chunks - 1), ciphertext

    def _fail(self, what: str) -> None:
        self.failure = SealedFileError(
            f"the spool file {self._sealed.path} was changed on disk while in use ({what}): "
            "its bytes are not used; retry the request, and check the spool disk and who can write to it"
        )
        raise self.failure

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed sealed file")

    def close(self) -> None:
        if not self.closed and self._fd >= 0:
            self._cached = None
            os.close(self._fd)
            self._fd = -1
        super().close()


def raise_failure(reader: SealedReader | None) -> None:
    """Raise the `SealedFileError` a sealed reader met, if any: after a decoder that swallows its file's
    exceptions (libsndfile's callbacks print and drop them) or turns them into a decoding error."""
    if reader is not None and reader.failure is not None:
        raise reader.failure
