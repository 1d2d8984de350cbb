"""Decode audio to 16 kHz float32: whole files as a stream of blocks, spans of one channel, inline PCM.

libsndfile (through soundfile) decodes; soxr resamples. `AudioStream` reads a file front to back in
blocks (bounded memory whatever its length), one resampler stream per channel with its state carried
across blocks (no seams at block edges). `AudioClips` seeks to spans `[start_ms, end_ms)` of one
channel (the ASR cuts a recording's speech segments out of it). `pcm16_to_float32` takes raw 16 kHz
PCM. The services do not depend on the ingest package: this is a small decoder of their own that
accepts what ingest accepts and refuses the rest with INVALID_ARGUMENT, including truncated files
(libsndfile hides a short WAV data chunk).
"""

from __future__ import annotations

import math
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
        self._file, self.info, self._missing = _open_checked(path)
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


class AudioClips:
    """Random access to spans of one channel of an audio file, each resampled to 16 kHz float32.

    Opening checks what `AudioStream` checks (format, codec, rate, channels, a WAV data chunk
    shorter than declared); a span the file cannot deliver (corrupt or missing frames) raises
    INVALID_ARGUMENT for that span only. Spans are read with a little context on both sides so the
    resampler has no edge transient inside the span. Not thread-safe: one reader per thread.
    """

    MARGIN_S = 0.05
    END_TOLERANCE_MS = 100  # a span may end this far past the end (rounding of the caller's times)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file, self.info, missing = _open_checked(path)
        if missing:
            self._file.close()
            raise _truncated(self.info, f"its data chunk declares {missing} more bytes than the file holds")

    def __enter__(self) -> AudioClips:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def duration_ms(self) -> int:
        """From the header; 0 when the header does not know."""
        return self.info.frames * 1000 // self.info.sample_rate_hz

    def check_span(self, channel: int, start_ms: int, end_ms: int) -> None:
        """INVALID_ARGUMENT for a span that is not inside the recording (no decoding)."""
        info = self.info
        if channel >= info.channels:
            raise InvalidArgument(
                f"channel {channel} does not exist: the recording has {info.channels} channel(s) (0-based)"
            )
        if end_ms <= start_ms:
            raise InvalidArgument(f"span [{start_ms}, {end_ms}) ms is empty: end_ms must be after start_ms")
        duration = self.duration_ms
        if info.frames and (start_ms >= duration or end_ms > duration + self.END_TOLERANCE_MS):
            raise InvalidArgument(f"span [{start_ms}, {end_ms}) ms is outside the recording, which lasts {duration} ms")

    def clip(self, channel: int, start_ms: int, end_ms: int) -> np.ndarray:
        """Samples of `channel` in [start_ms, end_ms) at 16 kHz, float32 in [-1, 1] (1-D, contiguous)."""
        self.check_span(channel, start_ms, end_ms)
        info = self.info
        rate = info.sample_rate_hz
        start = start_ms * rate // 1000
        end = math.ceil(end_ms * rate / 1000)
        if info.frames:
            end = min(end, info.frames)
        margin = int(self.MARGIN_S * rate)
        lo = max(0, start - margin)
        hi = end + margin if not info.frames else min(info.frames, end + margin)
        try:
            self._file.seek(lo)
            data = self._file.read(hi - lo, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as exc:
            raise InvalidArgument(
                f"span [{start_ms}, {end_ms}) ms of the {info.container} audio cannot be decoded ({exc}): "
                "the file is corrupt or truncated; send the complete, undamaged file"
            ) from exc
        if lo + len(data) < end:
            raise _truncated(
                info,
                f"span [{start_ms}, {end_ms}) ms needs frames up to {end}, only {lo + len(data)} decode",
            )
        samples = np.ascontiguousarray(data[:, channel])
        if rate != TARGET_RATE_HZ:
            samples = soxr.resample(samples, rate, TARGET_RATE_HZ, quality="HQ").astype(np.float32, copy=False)
        offset = round((start - lo) * TARGET_RATE_HZ / rate)
        length = round((end - start) * TARGET_RATE_HZ / rate)
        return np.ascontiguousarray(samples[offset : offset + length], dtype=np.float32)


def pcm16_to_float32(data: bytes, sample_rate_hz: int, expected_rate_hz: int = TARGET_RATE_HZ) -> np.ndarray:
    """Raw mono signed 16-bit little-endian PCM to float32 in [-1, 1); refuses another rate or a half sample."""
    if sample_rate_hz != expected_rate_hz:
        raise InvalidArgument(
            f"pcm.sample_rate_hz is {sample_rate_hz}: inline PCM must be {expected_rate_hz} Hz mono 16-bit "
            f"(set sample_rate_hz = {expected_rate_hz} and resample first), or send an ObjectRef"
        )
    if not data:
        raise InvalidArgument("pcm.data is empty: send the segment's samples")
    if len(data) % 2:
        raise InvalidArgument(
            f"pcm.data has {len(data)} bytes, an odd count: 16-bit PCM is 2 bytes per sample (truncated?)"
        )
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class _Aligner:
    """Keeps per-channel resampler outputs frame-aligned (soxr emits equal counts, but never trust it)."""

    def __init__(self, channels: int) -> None:
        self._pending = [np.empty(0, dtype=np.float32) for _ in range(channels)]

    def push(self, outs: list[np.ndarray]) -> np.ndarray:
        joined = [np.concatenate((p, o)) if len(p) else o for p, o in zip(self._pending, outs, strict=True)]
        n = min(len(j) for j in joined)
        self._pending = [j[n:] for j in joined]
        return np.stack([j[:n] for j in joined], axis=1)


def _open_checked(path: str | os.PathLike[str]) -> tuple[sf.SoundFile, AudioInfo, int]:
    """The open file, its header facts (accepted formats only), and the bytes a WAV data chunk lacks."""
    size = os.stat(path).st_size
    if size == 0:
        raise InvalidArgument("the audio is empty (0 bytes): send a recording with audio in it")
    try:
        file = sf.SoundFile(path)
    except sf.SoundFileError as exc:
        raise InvalidArgument(f"not a recognised audio file ({_reason(exc)}): {_ACCEPTED_HINT}") from exc
    try:
        info = _header(file, size)
        _check_accepted(info)
        if file.frames == 0:
            raise _no_frames(info)
        missing = _wav_missing_bytes(path) if info.container == "WAV" else 0
    except BaseException:
        file.close()
        raise
    return file, info, missing


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
