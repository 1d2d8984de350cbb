"""FFmpeg (through PyAV) for the formats libsndfile does not read: the one module that imports `av`.

`policy.recognise` names the demuxer (FFmpeg never guesses the format: a playlist or a video container
is never opened). A file is demuxed packet by packet and each packet decoded as it comes, so memory is a
few frames whatever the recording's length; samples come out as float32 (frames, channels) at the file's
own rate. Completeness is checked as libsndfile's path checks it, with the policy's words: a packet the
file ends inside (FFmpeg flags it corrupt, or it does not decode and nothing follows it) is a truncated
file; an MP4 index listing more packets than are present is a truncated file; a packet that does not
decode with more after it is corrupt data.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.packet import Packet
from av.stream import Disposition

from callscribe.audio import policy
from callscribe.audio.policy import InvalidAudio, Recognised, Source
from callscribe.audio.sealed import SealedFile, SealedReader

SEEK_PREROLL_S = 1.0  # decoded before a span so the decoder's state has settled (AMR's predictors take ~1 s)
_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "u8": 128.0}


@dataclass(frozen=True)
class Header:
    """What the container says. `frames`: the length at the file's rate when the container records it
    (MP4's index, raw G.729's size), else 0; `packets`: how many packets an MP4's index lists, else 0."""

    container: str
    codec: str
    sample_rate_hz: int
    channels: int
    frames: int
    packets: int


class FfmpegAudio:
    """One open file of a format `policy.recognise` gave to FFmpeg. `frames()` decodes it front to back
    once; `span()` decodes a stretch after a seek (random access for the ASR); `present_frames()` counts
    what the packets present hold without decoding (the early probe of a partial upload)."""

    def __init__(self, src: Source, recognised: Recognised) -> None:
        self.recognised = recognised
        self.decoded_frames = 0
        self.packets = 0
        container = recognised.container
        # How messages name it: a raw G.729 file has no container, "the raw G729 file is truncated".
        self.label = f"raw {recognised.demuxer.upper()}" if container == "RAW" else container
        size = policy.source_size(src)
        if size == 0:
            raise policy.empty()
        with policy.open_raw(src) as fh:
            head = fh.read(policy.HEAD_BYTES)
        if container == "WAV":
            fmt = policy.wav_fmt(head)
            if fmt is not None:
                policy.check_g729_wav(fmt.block_align, fmt.byte_rate)
        if container == "RAW" and policy.looks_like_text(head):
            raise policy.unrecognised(f"the bytes are text, not {self.label} frames")
        # A sealed spool file is read through its own reader (FFmpeg's custom I/O), closed with the container.
        self._sealed: SealedReader | None = None
        target: str | io.BytesIO | SealedReader
        if isinstance(src, SealedFile):
            target = self._sealed = src.open()
        elif isinstance(src, bytes):
            target = io.BytesIO(src)
        else:
            target = os.fspath(src)
        try:
            self._container = av.open(target, mode="r", format=recognised.demuxer)
        except av.error.FFmpegError as exc:
            self._close_sealed()
            self._check_sealed(exc)
            raise _open_error(src, recognised, exc) from exc
        except BaseException:
            self._close_sealed()
            raise
        try:
            self._stream = self._audio_stream()
            self.header = self._header(size)
        except BaseException:
            self.close()
            raise
        self._time_base = self._stream.time_base or Fraction(1, self.header.sample_rate_hz)

    def __enter__(self) -> FfmpegAudio:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._close_sealed()

    def _close_sealed(self) -> None:
        if self._sealed is not None:
            self._sealed.close()

    def _check_sealed(self, exc: BaseException | None = None) -> None:
        """Raise what a sealed file's reader met (a chunk that does not authenticate) instead of what FFmpeg
        made of it (an error, or the end of the file)."""
        if self._sealed is not None and self._sealed.failure is not None:
            raise self._sealed.failure from exc

    def _audio_stream(self) -> av.audio.stream.AudioStream:
        container = self.label
        video = [v for v in self._container.streams.video if not v.disposition & Disposition.attached_pic]
        if video:
            raise policy.unrecognised(f"the {container} file holds video, not a call recording")
        audio = self._container.streams.audio
        if not audio:
            raise policy.unrecognised(f"the {container} file holds no audio stream")
        if len(audio) > 1:
            raise policy.several_streams(container, len(audio))
        return audio[0]

    def _header(self, size: int) -> Header:
        ctx = self._stream.codec_context
        rate = int(ctx.sample_rate or self._stream.rate or 0)
        codec = policy.FFMPEG_CODECS.get(ctx.name, ctx.name.upper())
        container = self.recognised.container
        frames = packets = 0
        if container == "MP4":
            packets = int(self._stream.frames or 0)
            if self._stream.duration and self._stream.time_base:
                frames = round(self._stream.duration * self._stream.time_base * rate)
        elif container == "RAW" and codec == "G729":
            frames = size // policy.G729_FRAME_BYTES * rate // 100  # one 10 ms frame per 10 bytes
        return Header(container, codec, rate, int(ctx.layout.nb_channels), frames, packets)

    # ------------------------------------------------------------------ front to back

    def frames(self) -> Iterator[np.ndarray]:
        """Every sample, front to back: float32 arrays of shape (frames, channels) at the file's rate.

        Raises InvalidAudio for a truncated or corrupt file (the caller has then consumed the arrays before
        it: nothing it returned should be kept) and for one without a single frame. An MP4 stops at the
        length its index records (the encoder's padding after it is not audio)."""
        header = self.header
        limit = header.frames if header.container == "MP4" and header.frames else None
        held: Packet | None = None
        for packet in self._packets():
            if held is not None:
                yield from self._limited(self._decode(held, last=False), limit)
            held = packet
            self.packets += 1
        if held is not None:
            yield from self._limited(self._decode(held, last=True), limit)
        yield from self._limited(self._flush(), limit)
        missing = policy.missing_packets(header.packets, self.packets)
        if missing:
            raise policy.truncated(self.label, missing)
        if self.decoded_frames == 0:
            raise policy.no_frames(self.label)

    def _limited(self, arrays: Iterator[np.ndarray], limit: int | None) -> Iterator[np.ndarray]:
        for samples in arrays:
            if limit is not None:
                samples = samples[: max(0, limit - self.decoded_frames)]
            self.decoded_frames += len(samples)
            if len(samples):
                yield samples

    def _packets(self) -> Iterator[Packet]:
        """The stream's packets with data (the demuxer's empty flush packet left out)."""
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                self._check_sealed()
                return
            except av.error.FFmpegError as exc:
                self._check_sealed(exc)
                raise policy.corrupt(self.label, exc) from exc
            if packet.size:
                yield packet

    def _decode(self, packet: Packet, last: bool) -> Iterator[np.ndarray]:
        for frame in self._frames_of(packet, last):
            yield self._samples(frame)

    def _frames_of(self, packet: Packet, last: bool) -> list[AudioFrame]:
        """The packet decoded; `last`: no packet follows it, so a packet that fails is where the file ends."""
        container = self.label
        if packet.is_corrupt:
            if last:
                raise policy.truncated(container, policy.cut_short(packet.size))
            raise policy.corrupt(container, f"a damaged packet at byte {packet.pos}")
        try:
            return list(self._stream.decode(packet))
        except av.error.FFmpegError as exc:
            if last:
                raise policy.truncated(container, f"its last frame does not decode: {policy.reason(exc)}") from exc
            raise policy.corrupt(container, exc) from exc

    def _flush(self) -> Iterator[np.ndarray]:
        try:
            decoded = self._stream.codec_context.decode(None)
        except av.error.FFmpegError as exc:
            raise policy.truncated(self.label, f"its last frames do not decode: {policy.reason(exc)}") from exc
        for frame in decoded:
            yield self._samples(frame)

    def _samples(self, frame: AudioFrame) -> np.ndarray:
        header = self.header
        if frame.sample_rate != header.sample_rate_hz or frame.layout.nb_channels != header.channels:
            raise policy.corrupt(
                self.label,
                f"the audio changes to {frame.sample_rate} Hz, {frame.layout.nb_channels} channel(s) mid-stream",
            )
        data = frame.to_ndarray()
        data = data.T if frame.format.is_planar else data.reshape(-1, header.channels)
        kind = frame.format.name.removesuffix("p")
        if kind in ("flt", "dbl"):
            samples = data.astype(np.float32, copy=False)
            policy.check_finite(self.label, samples)
        elif kind == "u8":
            samples = (data.astype(np.float32) - 128.0) / 128.0
        elif kind in _SCALE:
            samples = data.astype(np.float32) / _SCALE[kind]
        else:
            raise policy.corrupt(self.label, f"the decoder gives samples as {frame.format.name}")
        return np.ascontiguousarray(samples)

    # ------------------------------------------------------------------ random access

    def span(self, lo: int, hi: int) -> np.ndarray:
        """Samples [lo, hi) (frames at the file's rate) as float32 (frames, channels); fewer when the file
        ends first. Decodes from a seek point a little before `lo`; when the container cannot seek there
        (it landed after `lo`), from the start."""
        rate = self.header.sample_rate_hz
        out = np.zeros((max(0, hi - lo), self.header.channels), dtype=np.float32)
        for start in (max(0, lo - int(SEEK_PREROLL_S * rate)), 0):
            filled = self._fill(out, lo, hi, start)
            if filled is not None:
                return out[:filled]
        raise policy.corrupt(self.label, f"frame {lo} cannot be reached by seeking or decoding")

    def _fill(self, out: np.ndarray, lo: int, hi: int, start: int) -> int | None:
        """Decode from `start` into `out`; how many frames from `lo` on were filled, None when the first
        frame decoded lies after `lo` (the seek overshot) or carries no timestamp."""
        rate = self.header.sample_rate_hz
        try:
            self._container.seek(int(Fraction(start, rate) / self._time_base), stream=self._stream, backward=True)
        except av.error.FFmpegError as exc:
            self._check_sealed(exc)
            raise
        filled = 0
        for packet in self._packets():
            for frame in self._frames_of(packet, last=False):
                if frame.pts is None:
                    return None
                pos = round(frame.pts * (frame.time_base or self._time_base) * rate)
                if pos > lo + filled:
                    return None if filled == 0 else filled  # a gap: what is contiguous from lo
                samples = self._samples(frame)
                end = pos + len(samples)
                a, b = max(lo, pos), min(hi, end)
                if b > a:
                    out[a - lo : b - lo] = samples[a - pos : b - pos]
                    filled = b - lo
                if end >= hi:
                    return filled
        return filled

    # ------------------------------------------------------------------ partial files

    def present_frames(self, partial: bool) -> int:
        """Frames the whole packets present hold, from their durations, without decoding. `partial`: the
        bytes are the beginning of an upload still arriving, so the demuxer may stop inside a packet;
        what came before it is what is present (otherwise that is corrupt data)."""
        total = Fraction(0)
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                self._check_sealed()
                break
            except av.error.FFmpegError as exc:
                self._check_sealed(exc)
                if partial:
                    break  # the upload's end so far, not an error in the file
                raise policy.corrupt(self.label, exc) from exc
            if packet.size and not packet.is_corrupt and packet.duration:
                total += packet.duration * self._time_base
        return int(total * self.header.sample_rate_hz)


def _open_error(src: Source, recognised: Recognised, exc: av.error.FFmpegError) -> InvalidAudio:
    """Why FFmpeg could not open the file, in the policy's words: an MP4 without its index is truncated
    (the recorder did not finish writing it), anything else is not a recognised audio file."""
    if recognised.container == "MP4":
        boxes = policy.mp4_boxes(src)
        if boxes and b"moov" not in boxes:
            return policy.truncated(
                "MP4", "it has no moov box, the index of its frames: the recorder may not have finished writing it"
            )
    return policy.unrecognised(f"{recognised.container or recognised.demuxer}: {policy.reason(exc)}")
