"""An upload on its way in: bytes are kept while SHA-256 is computed, in memory or in a spool file.

Uploads up to `memory_bytes` stay in memory (the S3 writer holds the same chunk objects for its
single PUT, so nothing is copied); larger ones spill to a local file, so memory stays bounded
whatever the upload's size. The header is probed as soon as enough bytes arrived, so a PDF or a
video is refused after its first chunk, not after gigabytes.

The spool file is sealed (`callscribe.audio.sealed`: AES-256-GCM in 64 KiB chunks under a key that
exists only in this process), so the spool disk never holds the recording, not even after a crash;
the decoders read it through the sealed file's readers, and `read_back` returns the plaintext.

With `keep_bytes=False` (the caller streams the bytes to S3 itself and never reads them back), a
RIFF/WAVE of 16-bit PCM, mu-law or A-law keeps only its first bytes once its header is known:
every byte of such data decodes, so the data chunk's declared size against the bytes received is
the whole check (`audio.validate_byte_exact`). Other formats are kept and decoded in full.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from callscribe.audio.sealed import SealedFile, SealedWriter
from callscribe.ingest.upload import audio
from callscribe.kit.errors import InvalidArgument, ResourceExhausted

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".upload"


class UploadSpool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        memory_bytes: int = 0,
        keep_bytes: bool = True,
        raw_format: str = "",
    ) -> None:
        self._directory = directory
        self._keep_bytes = keep_bytes
        self._raw_format = raw_format  # the headerless format the upload's file name declares ("" when none)
        self._head = bytearray()  # the first HEADER_PROBE_BYTES
        self._facts: audio.AudioFacts | None = None
        self._wav: audio.WavData | None = None  # set: only the head is kept (byte-exact WAV)
        self._max_bytes = max_bytes
        self._memory_bytes = memory_bytes
        self._chunks: list[bytes] = []
        self._file: SealedWriter | None = None  # the spill file while bytes arrive
        self._sealed: SealedFile | None = None  # the spill file once complete (`finish`)
        self.path: Path | None = None
        self._sha = hashlib.sha256()
        self.size = 0
        self._header_checked = False

    def append(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.size + len(chunk) > self._max_bytes:
            raise ResourceExhausted(
                f"recording exceeds the size limit of {self._max_bytes // (1024 * 1024)} MiB; "
                "split it or ask the operator to raise INGEST_MAX_UPLOAD_MB"
            )
        self._sha.update(chunk)
        self.size += len(chunk)
        if len(self._head) < audio.HEADER_PROBE_BYTES:
            self._head += chunk[: audio.HEADER_PROBE_BYTES - len(self._head)]
        if self._wav is not None:
            return
        if self._file is None and self.size <= self._memory_bytes:
            self._chunks.append(chunk)
        else:
            self._spill().write(chunk)
        if not self._header_checked and self.size >= audio.HEADER_PROBE_BYTES:
            head = bytes(self._head)
            self._facts = audio.probe(head, complete=False, raw_format=self._raw_format)
            # Probed once: None now means an MP4 whose index follows its media data (decided at the end).
            self._header_checked = True
            if self._facts is not None and not self._keep_bytes:
                self._wav = audio.byte_exact_wav(head, self._facts)
                if self._wav is not None:
                    self._drop_bytes()

    def _drop_bytes(self) -> None:
        self._chunks = []
        if self._file is not None:
            self._file.close()
            assert self.path is not None  # set together with _file
            self.path.unlink(missing_ok=True)
            self._file, self.path = None, None

    def _spill(self) -> SealedWriter:
        if self._file is None:
            self._file = SealedWriter.create(self._directory, SPOOL_SUFFIX)
            self.path = self._file.path
            for held in self._chunks:
                self._file.write(held)
            self._chunks = []
        return self._file

    def _source(self) -> audio.Source:
        if self._file is None:
            return b"".join(self._chunks)
        if self._sealed is None:
            self._sealed = self._file.finish()
        return self._sealed

    def final_facts(self, size: int) -> audio.AudioFacts | None:
        """The facts `finish` will return if the upload ends after exactly `size` bytes, once its
        first bytes tell them (a byte-exact WAV with only its head kept); None otherwise. Raises
        what `finish` would raise for such an upload (a WAV whose data chunk needs more than `size`
        bytes is refused after its first chunk, not after every byte has arrived)."""
        if self._wav is None or self._facts is None:
            return None
        return audio.byte_exact_facts(self._facts, self._wav, size)

    def finish(self) -> tuple[str, audio.AudioFacts]:
        """Stop receiving and validate the whole recording; returns (sha256 hex, facts)."""
        if self.size == 0:
            raise InvalidArgument("the upload contained no audio bytes: send the file after the metadata message")
        if self._wav is not None:
            assert self._facts is not None  # the header was probed before the bytes were dropped
            return self._sha.hexdigest(), audio.validate_byte_exact(self._facts, self._wav, self.size)
        return self._sha.hexdigest(), audio.validate(self._source(), self._raw_format)

    def read_back(self, block: int = 1024 * 1024) -> Iterator[bytes]:
        """The received bytes again, in order (after `finish`; only with `keep_bytes`)."""
        if not self._keep_bytes:
            raise RuntimeError("this spool was opened without keep_bytes: it cannot read the upload back")
        if self._file is None:
            yield from self._chunks
            return
        source = self._source()
        assert isinstance(source, SealedFile)  # a spill file, finished
        with source.open() as data:
            while chunk := data.read(block):
                yield chunk

    def discard(self) -> None:
        self._chunks = []
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._sealed = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
