"""Audio validation for uploads spooled to a local file: pure core, no gRPC, no S3.

libsndfile (through soundfile) decides what the bytes are and decodes them; we never parse
audio ourselves. Two small structural checks read container bytes with `struct`, because
libsndfile hides truncation there (see `_wav_missing_bytes` and `_ogg_ends_cleanly`).
"""

from __future__ import annotations

import io
import logging
import os
import struct
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np
import soundfile as sf

from callscribe.kit.errors import InvalidArgument

logger = logging.getLogger(__name__)

# Enough for every accepted header: WAV fmt/fact/LIST chunks, FLAC STREAMINFO + metadata,
# MP3 ID3v2 + first frame with its Xing/Info tag, and Ogg Opus/Vorbis header pages (the Vorbis
# setup header alone is often 3-8 KiB; a partial Ogg below ~16 KiB does not open at all).
# Below this size a failed open may only mean "not here yet"; at or above it, it means "not audio".
HEADER_PROBE_BYTES = 64 * 1024

MIN_RATE_HZ = 8000
MAX_RATE_HZ = 48000
# Decode in fixed blocks so memory stays bounded whatever the upload's length.
_BLOCK_FRAMES = 64 * 1024
# libsndfile reports SF_COUNT_MAX when a header does not record the length (FLAC piped out).
_UNKNOWN_FRAMES = 2**63 - 1
# Without a Xing/Info tag libsndfile estimates an MP3's length from its size and bitrate, so a
# few percent short is normal; a cut in the middle is far more than that.
_MP3_SHORTFALL_TOLERANCE = 0.05
# An Ogg page is at most 27 + 255 + 255 * 255 = 65307 bytes, so the last one lies in this tail.
_OGG_TAIL_BYTES = 65536
_STREAMED_WAV_SIZE = 0xFFFFFFFF  # data size written by tools that could not seek back (ffmpeg to a pipe)

_ACCEPTED_HINT = "send 16-bit PCM, mu-law or A-law WAV, MP3, FLAC or Ogg (Opus or Vorbis)"
_CONTAINERS = {
    "WAV": "WAV",
    "WAVEX": "WAV",
    "RF64": "WAV",
    "MP3": "MP3",
    "FLAC": "FLAC",
    "OGG": "OGG",
}
# None: every subtype libsndfile decodes for that container (FLAC is lossless at any depth).
_CODECS: dict[str, frozenset[str] | None] = {
    "WAV": frozenset({"PCM_16", "ULAW", "ALAW"}),
    "MP3": frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}),
    "FLAC": None,
    "OGG": frozenset({"OPUS", "VORBIS"}),
}


class InvalidAudio(InvalidArgument):
    """The upload is not audio we accept; the message says what was found and what to send."""


@dataclass(frozen=True)
class AudioFacts:
    """container: WAV/MP3/FLAC/OGG (WAVEX and RF64 reported as WAV); codec: libsndfile subtype."""

    container: str
    codec: str
    sample_rate_hz: int
    channels: int
    frames: int
    duration_ms: int


Source = str | os.PathLike[str] | bytes  # a spool file, or a small upload still in memory

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
    chunk = _wav_data_chunk(io.BytesIO(head), len(head))
    if chunk is None or chunk[1] == _STREAMED_WAV_SIZE:
        return None
    return WavData(chunk[0], chunk[1], width * facts.channels)


def byte_exact_facts(facts: AudioFacts, data: WavData, size: int) -> AudioFacts:
    """What `validate_byte_exact` returns for a file of `size` bytes (raising what it raises), without
    logging: known from the header alone, before the rest of the file arrives."""
    gap = data.declared_bytes - (size - data.offset)
    if gap > 0:
        raise _truncated("WAV", f"its data chunk declares {gap} more bytes than the file holds")
    frames = data.declared_bytes // data.frame_bytes
    if frames == 0:
        raise _no_frames("WAV")
    return replace(facts, frames=frames, duration_ms=_ms(frames, facts.sample_rate_hz))


def validate_byte_exact(facts: AudioFacts, data: WavData, size: int) -> AudioFacts:
    """The complete-file check of `validate` for a file `byte_exact_wav` accepted, `size` bytes long:
    what libsndfile would decode is the declared data, and the file must hold all of it."""
    validated = byte_exact_facts(facts, data, size)
    logger.info("validated <%d bytes, %s data checked by size>: %s", size, facts.codec, validated)
    return validated


def _size(src: Source) -> int:
    return len(src) if isinstance(src, bytes) else os.stat(src).st_size


def _open_raw(src: Source) -> BinaryIO:
    return io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115


def _open_sound(src: Source) -> sf.SoundFile:
    return sf.SoundFile(io.BytesIO(src) if isinstance(src, bytes) else src)


def _name(src: Source) -> str:
    return f"<{len(src)} bytes in memory>" if isinstance(src, bytes) else str(src)


def probe(path: Source, *, complete: bool) -> AudioFacts | None:
    """Early check on a possibly partial spool file.

    Returns None when more bytes are needed (only when complete=False), raises InvalidAudio when
    the bytes are clearly not accepted audio, else the header facts. For a partial file `frames`
    counts only what is present so far (libsndfile clamps to the bytes on disk).
    """
    size = _size(path)
    if size == 0:
        if complete:
            raise InvalidAudio("the file is empty: send a recording with audio in it")
        return None
    try:
        with _open_sound(path) as f:
            facts = _header_facts(f)
    except sf.SoundFileError as exc:
        if not complete and size < HEADER_PROBE_BYTES:
            return None
        raise _unrecognised(exc) from exc
    _check_accepted(facts, require_frames=complete)
    logger.debug("probe %s: %s (%d bytes, complete=%s)", _name(path), facts, size, complete)
    return facts


def validate(path: Source) -> AudioFacts:
    """Full check of the complete file: decodes every frame in fixed-size blocks.

    Returns the facts with the true decoded frame count and duration.
    """
    if _size(path) == 0:
        raise InvalidAudio("the file is empty: send a recording with audio in it")
    try:
        f = _open_sound(path)
    except sf.SoundFileError as exc:
        raise _unrecognised(exc) from exc
    with f:
        declared = _header_facts(f)
        _check_accepted(declared, require_frames=True)
        decoded = _decode_all(f, declared)
    if decoded == 0:
        raise _no_frames(declared.container)
    _check_complete(path, declared, decoded)
    facts = replace(declared, frames=decoded, duration_ms=_ms(decoded, declared.sample_rate_hz))
    logger.info("validated %s: %s", _name(path), facts)
    return facts


def _header_facts(f: sf.SoundFile) -> AudioFacts:
    container = _CONTAINERS.get(f.format, f.format)
    frames = f.frames
    duration = 0 if frames >= _UNKNOWN_FRAMES else _ms(frames, f.samplerate)
    return AudioFacts(container, f.subtype, f.samplerate, f.channels, frames, duration)


def _check_accepted(facts: AudioFacts, *, require_frames: bool) -> None:
    if facts.container not in _CODECS:
        raise InvalidAudio(f"unsupported audio format {facts.container}: {_ACCEPTED_HINT}")
    codecs = _CODECS[facts.container]
    if codecs is not None and facts.codec not in codecs:
        raise InvalidAudio(f"unsupported {facts.container} codec {facts.codec}: {_ACCEPTED_HINT}")
    if not MIN_RATE_HZ <= facts.sample_rate_hz <= MAX_RATE_HZ:
        raise InvalidAudio(
            f"unsupported sample rate {facts.sample_rate_hz} Hz: resample to between "
            f"{MIN_RATE_HZ} and {MAX_RATE_HZ} Hz (e.g. 16000 Hz)"
        )
    if facts.channels not in (1, 2):
        raise InvalidAudio(f"unsupported channel count {facts.channels}: send mono or stereo audio")
    if facts.frames >= _UNKNOWN_FRAMES:
        # libsndfile cannot read such a FLAC to its end (it fails seeking at EOF), so we cannot verify it.
        raise InvalidAudio(
            f"the {facts.container} header does not record the audio length (was it written to a pipe?): "
            "re-encode it to a regular file, e.g. `ffmpeg -i in.flac out.flac`"
        )
    if require_frames and facts.frames == 0:
        raise _no_frames(facts.container)


def _decode_all(f: sf.SoundFile, declared: AudioFacts) -> int:
    """Decode every frame into one reused block buffer; return how many frames decoded."""
    buf = np.empty((_BLOCK_FRAMES, declared.channels), dtype=np.int16)
    total = 0
    try:
        while True:
            got = len(f.read(_BLOCK_FRAMES, dtype="int16", always_2d=True, out=buf))
            if got == 0:
                return total
            total += got
    except sf.SoundFileError as exc:
        raise InvalidAudio(
            f"the {declared.container} audio is corrupt or truncated ({_reason(exc)}): "
            "upload the complete, undamaged file"
        ) from exc


def _check_complete(path: Source, declared: AudioFacts, decoded: int) -> None:
    """Raise InvalidAudio when the file holds less audio than its header promises.

    WAV: libsndfile silently clamps the frame count to the bytes present (its log only says
    "data : N (should be M)", wording that is not an API), so we compare the data chunk's declared
    size with the bytes on disk ourselves. FLAC: STREAMINFO's total_samples is exact, so any
    shortfall is truncation. MP3: the header count is exact with a Xing/Info tag but only an
    estimate without one, hence a tolerance; a cut at a frame boundary past that is undetectable.
    Ogg: libsndfile takes the length from the last granule present, so a cut file just looks
    shorter; a complete stream ends with a whole page carrying the end-of-stream flag.
    """
    missing = ""
    if declared.container == "WAV":
        gap = _wav_missing_bytes(path)
        if gap:
            missing = f"its data chunk declares {gap} more bytes than the file holds"
    elif declared.container == "OGG":
        if not _ogg_ends_cleanly(path):
            missing = "the Ogg stream ends without its final page"
    elif declared.container == "MP3":
        if decoded < declared.frames * (1 - _MP3_SHORTFALL_TOLERANCE):
            missing = f"only {decoded} of about {declared.frames} frames decode"
    elif decoded < declared.frames:
        missing = f"only {decoded} of the {declared.frames} frames its header declares decode"
    if missing:
        raise _truncated(declared.container, missing)


def _truncated(container: str, missing: str) -> InvalidAudio:
    return InvalidAudio(
        f"the {container} file is truncated ({missing}): the upload was probably cut off; "
        "upload the complete file again"
    )


def _no_frames(container: str) -> InvalidAudio:
    return InvalidAudio(f"the {container} file contains no audio frames: send a recording with sound")


def _wav_missing_bytes(path: Source) -> int:
    """Declared minus present bytes of a RIFF/WAVE data chunk; 0 when not RIFF or length unknown."""
    size = _size(path)
    with _open_raw(path) as fh:
        chunk = _wav_data_chunk(fh, size)
    if chunk is None or chunk[1] == _STREAMED_WAV_SIZE:
        return 0  # RF64 keeps its sizes in a ds64 chunk (rely on libsndfile there); a streamed WAV has none
    return max(0, chunk[1] - (size - chunk[0]))


def _wav_data_chunk(fh: BinaryIO, size: int) -> tuple[int, int] | None:
    """(offset of the data, size it declares) of a RIFF/WAVE file's data chunk among the first `size`
    bytes of `fh`; None when it is not RIFF/WAVE or no data chunk header lies in them."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        chunk_id, chunk_len = struct.unpack("<4sI", fh.read(8))
        if chunk_id == b"data":
            return pos + 8, chunk_len
        pos += 8 + chunk_len + (chunk_len & 1)  # RIFF chunks are padded to even length
    return None


def _ogg_ends_cleanly(path: Source) -> bool:
    """True when the last Ogg page is complete and flagged end-of-stream (RFC 3533)."""
    size = _size(path)
    with _open_raw(path) as fh:
        fh.seek(max(0, size - _OGG_TAIL_BYTES))
        tail = fh.read()
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        return False
    flags, segments = tail[at + 5], tail[at + 26]
    lacing = tail[at + 27 : at + 27 + segments]
    page_end = at + 27 + segments + sum(lacing)
    return len(lacing) == segments and page_end <= len(tail) and bool(flags & 0x04)


def _unrecognised(exc: sf.SoundFileError) -> InvalidAudio:
    return InvalidAudio(f"not a recognised audio file ({_reason(exc)}): {_ACCEPTED_HINT}")


def _reason(exc: sf.SoundFileError) -> str:
    # LibsndfileError.error_string is libsndfile's text without the temp-file path soundfile prefixes.
    text = str(getattr(exc, "error_string", exc)).strip().rstrip(".")
    return text.removeprefix("Error : ")


def _ms(frames: int, rate_hz: int) -> int:
    return round(frames * 1000 / rate_hz)
