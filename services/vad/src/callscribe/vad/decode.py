"""Stream-decode an audio file to 16 kHz float32 blocks: bounded memory whatever its length.

libsndfile (through soundfile) decodes; soxr resamples, one stream per channel with its state
carried across blocks (no seams at block edges). The VAD does not depend on the ingest package:
this is a small decoder of its own that accepts what ingest accepts and refuses the rest with
INVALID_ARGUMENT, including truncated files (libsndfile hides a short WAV data chunk).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import soundfile as sf
import soxr

from callscribe.kit.errors import InvalidArgument

TARGET_RATE_HZ = 16000
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 48000
BLOCK_SECONDS = 10
_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's "length not in the header"
_STREAMED_WAV_SIZE = 0xFFFFFFFF
_ACCEPTED_HINT = "send 16-bit PCM, mu-law or A-law WAV, MP3, FLAC or Ogg (Opus or Vorbis)"
_CONTAINERS = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "MP3": "MP3", "FLAC": "FLAC", "OGG": "OGG"}
# None: every subtype libsndfile decodes for that container.
_CODECS: dict[str, frozenset[str] | None] = {
    "WAV": frozenset({"PCM_16", "ULAW", "ALAW"}),
    "MP3": frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}),
    "FLAC": None,
    "OGG": frozenset({"OPUS", "VORBIS"}),
}


@dataclass(frozen=True)
class AudioInfo:
    """What the header says. `frames` at the file's own rate (0 when the header does not know)."""

    container: str
    codec: str
    sample_rate_hz: int
    channels: int
    frames: int
    size_bytes: int


class AudioStream:
    """An open audio file; iterate `blocks()` once. `decoded_frames` counts source frames read so far."""

    def __init__(self, path: str | os.PathLike[str], block_seconds: float = BLOCK_SECONDS) -> None:
        size = os.stat(path).st_size
        if size == 0:
            raise InvalidArgument("the audio is empty (0 bytes): send a recording with audio in it")
        try:
            self._file = sf.SoundFile(path)
        except sf.SoundFileError as exc:
            raise InvalidArgument(f"not a recognised audio file ({_reason(exc)}): {_ACCEPTED_HINT}") from exc
        try:
            self.info = _header(self._file, size)
            _check_accepted(self.info)
            if self._file.frames == 0:
                raise _no_frames(self.info)
            self._missing = _wav_missing_bytes(path) if self.info.container == "WAV" else 0
        except BaseException:
            self._file.close()
            raise
        self._block_frames = max(1, int(block_seconds * self.info.sample_rate_hz))
        self.decoded_frames = 0

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def duration_ms(self) -> int:
        return round(self.decoded_frames * 1000 / self.info.sample_rate_hz)

    def blocks(self) -> Iterator[np.ndarray]:
        """float32 blocks of shape (frames, channels) at 16 kHz, values in [-1, 1].

        Raises InvalidArgument for a file with no frames, corrupt data or a truncated file
        (the caller has then consumed the blocks before it: nothing it returns should be kept).
        """
        if self._missing:
            raise _truncated(self.info, f"its data chunk declares {self._missing} more bytes than the file holds")
        info = self.info
        resamplers = (
            [soxr.ResampleStream(info.sample_rate_hz, TARGET_RATE_HZ, 1, dtype="float32") for _ in range(info.channels)]
            if info.sample_rate_hz != TARGET_RATE_HZ
            else None
        )
        aligner = _Aligner(info.channels)
        buf = np.empty((self._block_frames, info.channels), dtype=np.float32)
        while True:
            try:
                got = len(self._file.read(self._block_frames, dtype="float32", always_2d=True, out=buf))
            except sf.SoundFileError as exc:
                raise InvalidArgument(
                    f"the {info.container} audio is corrupt or truncated ({_reason(exc)}): "
                    "send the complete, undamaged file"
                ) from exc
            last = got < self._block_frames
            self.decoded_frames += got
            block = buf[:got]
            if resamplers is None:
                if got:
                    yield block.copy()
            else:
                outs = [
                    r.resample_chunk(np.ascontiguousarray(block[:, ch]), last=last) for ch, r in enumerate(resamplers)
                ]
                out = aligner.push(outs)
                if len(out):
                    yield out
            if last:
                break
        if self.decoded_frames == 0:
            raise _no_frames(info)
        if info.container == "FLAC" and self.decoded_frames < info.frames:
            raise _truncated(info, f"only {self.decoded_frames} of the {info.frames} frames its header declares decode")


class _Aligner:
    """Keeps per-channel resampler outputs frame-aligned (soxr emits equal counts, but never trust it)."""

    def __init__(self, channels: int) -> None:
        self._pending = [np.empty(0, dtype=np.float32) for _ in range(channels)]

    def push(self, outs: list[np.ndarray]) -> np.ndarray:
        joined = [np.concatenate((p, o)) if len(p) else o for p, o in zip(self._pending, outs, strict=True)]
        n = min(len(j) for j in joined)
        self._pending = [j[n:] for j in joined]
        return np.stack([j[:n] for j in joined], axis=1)


def _header(f: sf.SoundFile, size: int) -> AudioInfo:
    frames = f.frames if f.frames < _UNKNOWN_FRAMES else 0
    return AudioInfo(_CONTAINERS.get(f.format, f.format), f.subtype, f.samplerate, f.channels, frames, size)


def _check_accepted(info: AudioInfo) -> None:
    if info.container not in _CODECS:
        raise InvalidArgument(f"unsupported audio format {info.container}: {_ACCEPTED_HINT}")
    codecs = _CODECS[info.container]
    if codecs is not None and info.codec not in codecs:
        raise InvalidArgument(f"unsupported {info.container} codec {info.codec}: {_ACCEPTED_HINT}")
    if not MIN_RATE_HZ <= info.sample_rate_hz <= MAX_RATE_HZ:
        raise InvalidArgument(
            f"unsupported sample rate {info.sample_rate_hz} Hz: resample to between "
            f"{MIN_RATE_HZ} and {MAX_RATE_HZ} Hz (e.g. 16000 Hz)"
        )
    if info.channels not in (1, 2):
        raise InvalidArgument(f"unsupported channel count {info.channels}: send mono or stereo audio")


def _wav_missing_bytes(path: str | os.PathLike[str]) -> int:
    """Declared minus present bytes of a RIFF/WAVE data chunk; 0 when not RIFF or length unknown."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_len = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                if chunk_len == _STREAMED_WAV_SIZE:
                    return 0
                return max(0, chunk_len - (size - pos - 8))
            pos += 8 + chunk_len + (chunk_len & 1)
    return 0


def _no_frames(info: AudioInfo) -> InvalidArgument:
    return InvalidArgument(
        f"the {info.container} file contains no audio frames (a header only?): send a recording with sound"
    )


def _truncated(info: AudioInfo, detail: str) -> InvalidArgument:
    return InvalidArgument(f"the {info.container} file is truncated ({detail}): send the complete file")


def _reason(exc: sf.SoundFileError) -> str:
    text = str(getattr(exc, "error_string", exc)).strip().rstrip(".")
    return text.removeprefix("Error : ")
