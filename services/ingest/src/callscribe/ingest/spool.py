"""An upload on its way in: bytes go to a local spool file while SHA-256 is computed.

Memory stays bounded whatever the upload's size: one chunk at a time. The header is probed
as soon as enough bytes arrived, so a PDF or a video is refused after its first chunk, not
after gigabytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from callscribe.ingest import audio
from callscribe.kit.errors import InvalidArgument, ResourceExhausted

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".upload"


class UploadSpool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        fd, name = tempfile.mkstemp(suffix=SPOOL_SUFFIX, dir=directory)
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self._max_bytes = max_bytes
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
        self._file.write(chunk)
        self._sha.update(chunk)
        self.size += len(chunk)
        if not self._header_checked and self.size >= audio.HEADER_PROBE_BYTES:
            self._file.flush()
            self._header_checked = audio.probe(self.path, complete=False) is not None

    def finish(self) -> tuple[str, audio.AudioFacts]:
        """Close the file and validate the whole recording; returns (sha256 hex, facts)."""
        self._file.close()
        if self.size == 0:
            raise InvalidArgument("the upload contained no audio bytes: send the file after the metadata message")
        return self._sha.hexdigest(), audio.validate(self.path)

    def read_back(self, block: int = 1024 * 1024) -> Iterator[bytes]:
        """The spooled bytes again, block by block (after `finish`)."""
        with self.path.open("rb") as data:
            while chunk := data.read(block):
                yield chunk

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def clear_stale_spool(directory: Path) -> int:
    """Remove spool files left by a crashed process: none of them was ever acknowledged."""
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in directory.glob(f"*{SPOOL_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d unacknowledged spool file(s) from %s", removed, directory)
    return removed
