"""Audio validation for uploads spooled to a local file: pure core, no gRPC, no S3.

What is accepted, which decoder reads it (libsndfile, or FFmpeg through `callscribe.audio.ffmpeg`), and
the checks the decoders do not make, are `callscribe.audio.policy`, shared with the services that decode
stored recordings. Here: the early probe of a partial upload, the full check of a complete one (every
frame decoded: libsndfile in fixed blocks, FFmpeg packet by packet), and the byte-exact WAV shortcut
(16-bit PCM, mu-law, A-law: every byte sequence decodes, so the data chunk's size decides). A headerless
upload (raw G.729) is recognised only by the `raw_format` its file name declares (`policy.raw_format_of`).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, replace

import numpy as np
import soundfile as sf

from callscribe.audio import policy
from callscribe.audio.decode import open_sound
from callscribe.audio.ffmpeg import FfmpegAudio
from callscribe.audio.policy import MAX_RATE_HZ, MIN_RATE_HZ, InvalidAudio, Recognised, Source
from callscribe.ingest.model import AudioFacts

__all__ = [
    "HEADER_PROBE_BYTES",
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "AudioFacts",
    "InvalidAudio",
    "Source",
    "WavData",
    "byte_exact_facts",
    "byte_exact_wav",
    "probe",
    "validate",
    "validate_byte_exact",
]

logger = logging.getLogger(__name__)

# Enough for every accepted header: WAV fmt/fact/LIST chunks, FLAC STREAMINFO + metadata,
# MP3 ID3v2 + first frame with its Xing/Info tag, and Ogg Opus/Vorbis header pages (the Vorbis
# setup header alone is often 3-8 KiB; a partial Ogg below ~16 KiB does not open at all), an MP4's
# ftyp box (and its moov box when it comes first), an AMR file's magic and first frames.
# Below this size a failed open may only mean "not here yet"; at or above it, it means "not audio"
# (except an MP4 whose moov box, its index, comes after the media data: that is decided at the end).
HEADER_PROBE_BYTES = policy.HEAD_BYTES

# Decode in fixed blocks so memory stays bounded whatever the upload's length.
_BLOCK_FRAMES = 64 * 1024


# Codecs whose every byte sequence decodes: decoding proves nothing the data chunk's size does not.
_BYTE_EXACT = {"PCM_16": 2, "ULAW": 1, "ALAW": 1}  # bytes per sample


@dataclass(frozen=True)
class WavData:
    """Where a RIFF/WAVE file's data chunk starts, the size it declares, and bytes per frame."""

    offset: int
    declared_bytes: int
    frame_bytes: int


def byte_exact_wav(head: bytes, facts: AudioFacts) -> WavData | None:
    """For a RIFF/WAVE file of 16-bit PCM, mu-law or A-law whose data chunk header lies in `head` (its
    first bytes): the data chunk, so `validate_byte_exact` can check the whole file from its size
    alone. None for anything else (RF64, a streamed WAV without a length, other codecs): decode it."""
    width = _BYTE_EXACT.get(facts.codec)
    if facts.container != "WAV" or width is None:
        return None
    chunk = policy.wav_data_chunk(io.BytesIO(head), len(head))
    if chunk is None or chunk[1] == policy.STREAMED_WAV_SIZE:
        return None
    return WavData(chunk[0], chunk[1], width * facts.channels)


def byte_exact_facts(facts: AudioFacts, data: WavData, size: int) -> AudioFacts:
    """What `validate_byte_exact` returns for a file of `size` bytes (raising what it raises), without
    logging: known from the header alone, before the rest of the file arrives."""
    gap = data.declared_bytes - (size - data.offset)
    if gap > 0:
        raise policy.truncated("WAV", f"its data chunk declares {gap} more bytes than the file holds")
    frames = data.declared_bytes // data.frame_bytes
    if frames == 0:
        raise policy.no_frames("WAV")
    return replace(facts, frames=frames, duration_ms=_ms(frames, facts.sample_rate_hz))


def validate_byte_exact(facts: AudioFacts, data: WavData, size: int) -> AudioFacts:
    """The complete-file check of `validate` for a file `byte_exact_wav` accepted, `size` bytes long:
    what libsndfile would decode is the declared data, and the file must hold all of it."""
    validated = byte_exact_facts(facts, data, size)
    logger.info("validated <%d bytes, %s data checked by size>: %s", size, facts.codec, validated)
    return validated


def probe(path: Source, *, complete: bool, raw_format: str = "") -> AudioFacts | None:
    """Early check on a possibly partial spool file.

    Returns None when more bytes are needed (only when complete=False), raises InvalidAudio when
    the bytes are clearly not accepted audio, else the header facts. For a partial file `frames`
    counts only what is present so far (libsndfile clamps to the bytes on disk; FFmpeg's whole
    packets). `raw_format`: the headerless format the upload declared ("" when none).
    """
    size = policy.source_size(path)
    if size == 0:
        if complete:
            raise policy.empty()
        return None
    recognised = policy.recognise(_head(path), raw_format)
    if recognised.reader == policy.FFMPEG:
        facts = _probe_ffmpeg(path, recognised, complete, size)
        if facts is None:
            return None
    else:
        try:
            with open_sound(path) as f:
                facts = _header_facts(f)
        except sf.SoundFileError as exc:
            if not complete and size < HEADER_PROBE_BYTES:
                return None
            raise policy.unrecognised(exc) from exc
    _check_accepted(facts, require_frames=complete)
    logger.debug("probe %s: %s (%d bytes, complete=%s)", policy.source_name(path), facts, size, complete)
    return facts


def _probe_ffmpeg(path: Source, recognised: Recognised, complete: bool, size: int) -> AudioFacts | None:
    if recognised.container == "MP4" and not complete and b"moov" not in policy.mp4_boxes(path):
        return None  # its index follows the media data: what the file holds is known at the end
    try:
        audio = FfmpegAudio(path, recognised)
    except InvalidAudio:
        if not complete and size < HEADER_PROBE_BYTES:
            return None
        raise
    with audio:
        h = audio.header
        frames = audio.present_frames(partial=not complete)
    return AudioFacts(h.container, h.codec, h.sample_rate_hz, h.channels, frames, _ms(frames, h.sample_rate_hz))


def validate(path: Source, raw_format: str = "") -> AudioFacts:
    """Full check of the complete file: decodes every frame (libsndfile: fixed-size blocks; FFmpeg:
    packet by packet), so memory stays bounded whatever its length.

    Returns the facts with the true decoded frame count and duration.
    """
    if policy.source_size(path) == 0:
        raise policy.empty()
    recognised = policy.recognise(_head(path), raw_format)
    if recognised.reader == policy.FFMPEG:
        facts = _validate_ffmpeg(path, recognised)
        logger.info("validated %s: %s", policy.source_name(path), facts)
        return facts
    try:
        f = open_sound(path)
    except sf.SoundFileError as exc:
        raise policy.unrecognised(exc) from exc
    with f:
        declared = _header_facts(f)
        _check_accepted(declared, require_frames=True)
        decoded = _decode_all(f, declared)
    if decoded == 0:
        raise policy.no_frames(declared.container)
    missing = policy.missing_at_open(declared.container, path) or policy.missing_after_decoding(
        declared.container, declared.frames, decoded
    )
    if missing:
        raise policy.truncated(declared.container, missing)
    facts = replace(declared, frames=decoded, duration_ms=_ms(decoded, declared.sample_rate_hz))
    logger.info("validated %s: %s", policy.source_name(path), facts)
    return facts


def _validate_ffmpeg(path: Source, recognised: Recognised) -> AudioFacts:
    """As the services decode it (`callscribe.audio.decode`): the policy's facts, the data the header
    declares (WAV), then every packet decoded and dropped."""
    with FfmpegAudio(path, recognised) as audio:
        h = audio.header
        policy.check_accepted(h.container, h.codec, h.sample_rate_hz, h.channels, h.frames)
        missing = policy.missing_at_open(h.container, path)
        if missing:
            raise policy.truncated(h.container, missing)
        for _ in audio.frames():
            pass
        decoded = audio.decoded_frames
    return AudioFacts(h.container, h.codec, h.sample_rate_hz, h.channels, decoded, _ms(decoded, h.sample_rate_hz))


def _head(src: Source) -> bytes:
    if isinstance(src, bytes):
        return src[:HEADER_PROBE_BYTES]
    with policy.open_raw(src) as fh:
        return fh.read(HEADER_PROBE_BYTES)


def _header_facts(f: sf.SoundFile) -> AudioFacts:
    frames = f.frames
    duration = 0 if frames >= policy.UNKNOWN_FRAMES else _ms(frames, f.samplerate)
    return AudioFacts(policy.container_of(f.format), f.subtype, f.samplerate, f.channels, frames, duration)


def _check_accepted(facts: AudioFacts, *, require_frames: bool) -> None:
    policy.check_accepted(facts.container, facts.codec, facts.sample_rate_hz, facts.channels, facts.frames)
    if require_frames and facts.frames == 0:
        raise policy.no_frames(facts.container)


def _decode_all(f: sf.SoundFile, declared: AudioFacts) -> int:
    """Decode every frame into one reused block buffer; return how many frames decoded. Float samples
    are read as they are and must be numbers (`policy.check_finite`)."""
    floats = declared.codec in ("FLOAT", "DOUBLE")
    buf = np.empty((_BLOCK_FRAMES, declared.channels), dtype=np.float32 if floats else np.int16)
    total = 0
    try:
        while True:
            got = len(f.read(_BLOCK_FRAMES, dtype=buf.dtype.name, always_2d=True, out=buf))  # type: ignore[call-overload]
            if got == 0:
                return total
            if floats:
                policy.check_finite(declared.container, buf[:got])
            total += got
    except sf.SoundFileError as exc:
        raise policy.corrupt(declared.container, exc) from exc


def _ms(frames: int, rate_hz: int) -> int:
    return round(frames * 1000 / rate_hz)
