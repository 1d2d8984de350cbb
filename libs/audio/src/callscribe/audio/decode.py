"""Decode audio to 16 kHz float32: whole files as a stream of blocks, spans of one channel, inline PCM.

libsndfile (through soundfile) or FFmpeg (through PyAV, `ffmpeg.py`) decodes, whichever `policy.recognise`
names for the file; soxr resamples. `AudioStream` reads a file front to back in blocks (bounded memory
whatever its length: libsndfile reads fixed blocks, FFmpeg decodes packet by packet), one resampler
stream per channel with its state carried across blocks (no seams at block edges). `AudioClips` seeks to
spans `[start_ms, end_ms)` of one channel (the ASR cuts a recording's speech segments out of it).
`pcm16_to_float32` takes raw 16 kHz PCM. What is accepted, and the completeness checks the decoders do
not make, are `policy`, the one acceptance policy ingest validates uploads with: a recording ingest
stored decodes here, and anything else is refused with the same INVALID_ARGUMENT message, truncated
files included. A headerless recording (raw G.729) is read only when the caller passes the
`raw_format` ingest recognised it by (`ObjectRef.raw_format`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import soxr

from callscribe.audio import policy
from callscribe.audio.ffmpeg import FfmpegAudio
from callscribe.audio.policy import Source
from callscribe.audio.sealed import SealedFile, SealedFileError, SealedReader
from callscribe.kit.errors import InvalidArgument

TARGET_RATE_HZ = 16000
BLOCK_SECONDS = 10


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
    """An open audio file; iterate `blocks()` once. `decoded_frames` counts source frames read so far.
    `raw_format`: the headerless format the recording was declared as at upload ("" for all others)."""

    def __init__(self, path: Source, block_seconds: float = BLOCK_SECONDS, raw_format: str = "") -> None:
        self._reader = _open_checked(path, raw_format)
        self.info = self._reader.info
        self._block_frames = max(1, int(block_seconds * self.info.sample_rate_hz))

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def decoded_frames(self) -> int:
        return self._reader.decoded_frames

    @property
    def duration_ms(self) -> int:
        return round(self.decoded_frames * 1000 / self.info.sample_rate_hz)

    def blocks(self) -> Iterator[np.ndarray]:
        """float32 blocks of shape (frames, channels) at 16 kHz, values in [-1, 1].

        Raises InvalidArgument for a file with no frames, corrupt data or a truncated file
        (the caller has then consumed the blocks before it: nothing it returns should be kept).
        """
        if self._reader.missing:
            raise policy.truncated(self.info.container, self._reader.missing)
        info = self.info
        if info.sample_rate_hz == TARGET_RATE_HZ:
            yield from self._reader.blocks(self._block_frames)
            return
        resamplers = [
            soxr.ResampleStream(info.sample_rate_hz, TARGET_RATE_HZ, 1, dtype="float32") for _ in range(info.channels)
        ]
        aligner = _Aligner(info.channels)
        for block in self._reader.blocks(self._block_frames):
            out = aligner.push(
                [r.resample_chunk(np.ascontiguousarray(block[:, ch])) for ch, r in enumerate(resamplers)]
            )
            if len(out):
                yield out
        tail = aligner.push([r.resample_chunk(np.empty(0, dtype=np.float32), last=True) for r in resamplers])
        if len(tail):
            yield tail


class AudioClips:
    """Random access to spans of one channel of an audio file, each resampled to 16 kHz float32.

    Opening checks what `AudioStream` checks before decoding (the policy's format, codec, rate and
    channels, a WAV data chunk shorter than declared, an Ogg stream without its final page); a span the
    file cannot deliver (corrupt or missing frames) raises INVALID_ARGUMENT for that span only. Spans are
    read with a little context on both sides so the resampler has no edge transient inside the span.
    Not thread-safe: one reader per thread.
    """

    MARGIN_S = 0.05
    END_TOLERANCE_MS = 100  # a span may end this far past the end (rounding of the caller's times)

    def __init__(self, path: Source, raw_format: str = "") -> None:
        self._reader = _open_checked(path, raw_format)
        self.info = self._reader.info
        if self._reader.missing:
            self._reader.close()
            raise policy.truncated(self.info.container, self._reader.missing)

    def __enter__(self) -> AudioClips:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

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
            data = self._reader.span(lo, hi)
        except policy.InvalidAudio as exc:
            raise InvalidArgument(
                f"span [{start_ms}, {end_ms}) ms of the {info.container} audio cannot be decoded ({exc.message})"
            ) from exc
        except (sf.SoundFileError, RuntimeError) as exc:
            raise InvalidArgument(
                f"span [{start_ms}, {end_ms}) ms of the {info.container} audio cannot be decoded ({exc}): "
                "the file is corrupt or truncated; send the complete, undamaged file"
            ) from exc
        if lo + len(data) < end:
            raise policy.truncated(
                info.container, f"span [{start_ms}, {end_ms}) ms needs frames up to {end}, only {lo + len(data)} decode"
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


class _Reader(Protocol):
    """A decoder behind AudioStream and AudioClips: samples as float32 (frames, channels) at the file's rate."""

    info: AudioInfo
    missing: str  # what the file lacks, seen at open without decoding ("" when nothing)

    @property
    def decoded_frames(self) -> int: ...
    def blocks(self, block_frames: int) -> Iterator[np.ndarray]: ...
    def span(self, lo: int, hi: int) -> np.ndarray: ...
    def close(self) -> None: ...


class _SndfileReader:
    """libsndfile: fixed blocks into one reused buffer; seeks by frame where the codec allows it (GSM 6.10
    does not: spans are then read forward, reopening the file only to go back)."""

    FLOAT_CODECS = frozenset({"FLOAT", "DOUBLE"})
    SKIP_BLOCK_FRAMES = 64 * 1024

    def __init__(self, path: Source, file: sf.SoundFile, info: AudioInfo, missing: str) -> None:
        self._path = path
        self._file = file
        self.info = info
        self.missing = missing
        self.decoded_frames = 0
        self._at = 0  # where span reads of an unseekable file stand (libsndfile cannot tell it either)

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        info = self.info
        buf = np.empty((block_frames, info.channels), dtype=np.float32)
        floats = info.codec in self.FLOAT_CODECS
        while True:
            try:
                got = len(self._file.read(block_frames, dtype="float32", always_2d=True, out=buf))
            except sf.SoundFileError as exc:
                raise policy.corrupt(info.container, exc) from exc
            self.decoded_frames += got
            if got:
                if floats:
                    policy.check_finite(info.container, buf[:got])
                yield buf[:got].copy()
            if got < block_frames:
                break
        if self.decoded_frames == 0:
            raise policy.no_frames(info.container)
        missing = policy.missing_after_decoding(info.container, info.frames, self.decoded_frames)
        if missing:
            raise policy.truncated(info.container, missing)

    def span(self, lo: int, hi: int) -> np.ndarray:
        if self._file.seekable():
            self._file.seek(lo)
            data = self._file.read(hi - lo, dtype="float32", always_2d=True)
        else:
            self._forward_to(lo)
            data = self._file.read(hi - lo, dtype="float32", always_2d=True)
            self._at += len(data)
        if self.info.codec in self.FLOAT_CODECS:
            policy.check_finite(self.info.container, data)
        return data

    def _forward_to(self, frame: int) -> None:
        """Position an unseekable file at `frame` by decoding up to it (from the start when it lies behind)."""
        if self._at > frame:
            self._file.close()
            self._file = open_sound(self._path)
            self._at = 0
        while self._at < frame:
            got = len(self._file.read(min(self.SKIP_BLOCK_FRAMES, frame - self._at), dtype="float32", always_2d=True))
            if got == 0:
                return  # the file ends before `frame`: the span reads nothing, and the caller says so
            self._at += got

    def close(self) -> None:
        self._file.close()


class _FfmpegReader:
    """FFmpeg: decoded packet by packet, gathered into blocks of about `block_frames`; seeks by timestamp."""

    def __init__(self, audio: FfmpegAudio, info: AudioInfo, missing: str) -> None:
        self._audio = audio
        self.info = info
        self.missing = missing

    @property
    def decoded_frames(self) -> int:
        return self._audio.decoded_frames

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        held = 0
        for samples in self._audio.frames():
            pending.append(samples)
            held += len(samples)
            if held >= block_frames:
                yield np.concatenate(pending)
                pending, held = [], 0
        if pending:
            yield np.concatenate(pending)

    def span(self, lo: int, hi: int) -> np.ndarray:
        return self._audio.span(lo, hi)

    def close(self) -> None:
        self._audio.close()


def _open_checked(path: Source, raw_format: str = "") -> _Reader:
    """The open file behind its decoder, with its header facts (accepted audio only) and what it lacks
    that can be seen without decoding (`policy.missing_at_open`)."""
    size = policy.source_size(path)
    if size == 0:
        raise policy.empty()
    with policy.open_raw(path) as fh:
        recognised = policy.recognise(fh.read(policy.HEAD_BYTES), raw_format)
    if recognised.reader == policy.FFMPEG:
        return _open_ffmpeg(path, recognised, size)
    try:
        file = open_sound(path)
    except sf.SoundFileError as exc:
        raise policy.unrecognised(exc) from exc
    try:
        container = policy.container_of(file.format)
        policy.check_accepted(container, file.subtype, file.samplerate, file.channels, file.frames)
        info = AudioInfo(container, file.subtype, file.samplerate, file.channels, file.frames, size)
        if file.frames == 0:
            raise policy.no_frames(container)
        missing = policy.missing_at_open(container, path)
    except BaseException:
        file.close()
        raise
    return _SndfileReader(path, file, info, missing)


def _open_ffmpeg(path: Source, recognised: policy.Recognised, size: int) -> _FfmpegReader:
    audio = FfmpegAudio(path, recognised)
    try:
        h = audio.header
        policy.check_accepted(h.container, h.codec, h.sample_rate_hz, h.channels, h.frames)
        info = AudioInfo(h.container, h.codec, h.sample_rate_hz, h.channels, h.frames, size)
        missing = policy.missing_at_open(h.container, path)
    except BaseException:
        audio.close()
        raise
    return _FfmpegReader(audio, info, missing)


# ---------------------------------------------------------------------------- libsndfile over any source


def open_sound(src: Source) -> sf.SoundFile:
    """libsndfile opened on `src` for reading: a file by its path, bytes in memory, or a sealed spool file
    through a reader of its own (closed with the SoundFile)."""
    if isinstance(src, SealedFile):
        return _SealedSoundFile(src)
    return sf.SoundFile(io.BytesIO(src) if isinstance(src, bytes) else src)


class _SndfileIO:
    """What libsndfile's virtual I/O calls on a sealed reader. Its read callback cannot pass an exception
    on (cffi prints it and returns 0), so a chunk that does not authenticate reads here as the end of the
    file; the reader keeps the failure and `_SealedSoundFile` raises it after the call."""

    def __init__(self, reader: SealedReader) -> None:
        self._reader = reader

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def readinto(self, buffer: Any) -> int:
        try:
            return self._reader.readinto(buffer)
        except SealedFileError:
            return 0  # kept in reader.failure: raised by _SealedSoundFile once libsndfile returns


class _SealedSoundFile(sf.SoundFile):
    """A SoundFile over a sealed file's reader: every call that reads raises the reader's `SealedFileError`
    (a chunk that does not authenticate) in place of what libsndfile made of the missing bytes."""

    def __init__(self, sealed: SealedFile) -> None:
        self._sealed_reader = sealed.open()
        try:
            super().__init__(_SndfileIO(self._sealed_reader))
        except sf.SoundFileError as exc:
            self._sealed_reader.close()
            self._raise_failure(exc)
            raise
        except BaseException:
            self._sealed_reader.close()
            raise
        if self._sealed_reader.failure is not None:  # libsndfile opened what it read before the failure
            self.close()
            raise self._sealed_reader.failure

    def _raise_failure(self, exc: BaseException | None = None) -> None:
        if self._sealed_reader.failure is not None:
            raise self._sealed_reader.failure from exc

    def read(self, *args: Any, **kwargs: Any) -> Any:
        try:
            data = super().read(*args, **kwargs)
        except sf.SoundFileError as exc:
            self._raise_failure(exc)
            raise
        self._raise_failure()
        return data

    def seek(self, *args: Any, **kwargs: Any) -> int:
        try:
            at = super().seek(*args, **kwargs)
        except sf.SoundFileError as exc:
            self._raise_failure(exc)
            raise
        self._raise_failure()
        return at

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._sealed_reader.close()
