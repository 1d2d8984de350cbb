"""Which audio callscribe accepts, and the completeness checks libsndfile does not make: one policy.

Ingest validates uploads with it; VAD and ASR decode stored recordings with it (`decode.py`). Invariant 5
rests on the two agreeing: an upload ingest refuses gets a message a person can act on, and a recording it
stored always decodes downstream. libsndfile (through soundfile) decides what the bytes are and decodes
them; the only bytes read here are container structure that libsndfile hides: a WAV data chunk shorter
than it declares (libsndfile clamps silently) and an Ogg stream without its final page (libsndfile takes
the length from the last page present).
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO

import soundfile as sf

from callscribe.kit.errors import InvalidArgument

MIN_RATE_HZ = 8000
MAX_RATE_HZ = 48000
UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's count when a header does not record the length (FLAC piped out)
STREAMED_WAV_SIZE = 0xFFFFFFFF  # data size written by tools that could not seek back (ffmpeg to a pipe)
OGG_TAIL_BYTES = 65536  # an Ogg page is at most 27 + 255 + 255 * 255 = 65307 bytes
# Without a Xing/Info tag libsndfile estimates an MP3's length from its size and bitrate, so a few
# percent short is normal; a cut in the middle is far more than that.
MP3_SHORTFALL_TOLERANCE = 0.05

ACCEPTED_HINT = "send 16-bit PCM, mu-law or A-law WAV, MP3, FLAC or Ogg (Opus or Vorbis)"
CONTAINERS = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "MP3": "MP3", "FLAC": "FLAC", "OGG": "OGG"}
# None: every subtype libsndfile decodes for that container (FLAC is lossless at any depth).
CODECS: dict[str, frozenset[str] | None] = {
    "WAV": frozenset({"PCM_16", "ULAW", "ALAW"}),
    "MP3": frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}),
    "FLAC": None,
    "OGG": frozenset({"OPUS", "VORBIS"}),
}

Source = str | os.PathLike[str] | bytes  # a file, or a small upload still in memory


class InvalidAudio(InvalidArgument):
    """The audio is not what callscribe accepts; the message says what was found and what to send."""


def container_of(sound_format: str) -> str:
    """libsndfile's format name as callscribe reports it (WAVEX and RF64 are WAV)."""
    return CONTAINERS.get(sound_format, sound_format)


def check_accepted(container: str, codec: str, rate_hz: int, channels: int, frames: int) -> None:
    """InvalidAudio unless the header describes audio callscribe accepts (`frames` as libsndfile counts
    them: UNKNOWN_FRAMES when the header does not record the length)."""
    if container not in CODECS:
        raise InvalidAudio(f"unsupported audio format {container}: {ACCEPTED_HINT}")
    codecs = CODECS[container]
    if codecs is not None and codec not in codecs:
        raise InvalidAudio(f"unsupported {container} codec {codec}: {ACCEPTED_HINT}")
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise InvalidAudio(
            f"unsupported sample rate {rate_hz} Hz: resample to between {MIN_RATE_HZ} and {MAX_RATE_HZ} Hz "
            "(e.g. 16000 Hz)"
        )
    if channels not in (1, 2):
        raise InvalidAudio(f"unsupported channel count {channels}: send mono or stereo audio")
    if frames >= UNKNOWN_FRAMES:
        # libsndfile cannot read such a FLAC to its end (it fails seeking at EOF), so it cannot be verified.
        raise InvalidAudio(
            f"the {container} header does not record the audio length (was it written to a pipe?): "
            "re-encode it to a regular file, e.g. `ffmpeg -i in.flac out.flac`"
        )


def missing_at_open(container: str, src: Source) -> str:
    """What a complete file of this container would have and this one lacks, seen without decoding
    (WAV: data bytes; Ogg: the final page); "" when nothing is missing."""
    if container == "WAV":
        gap = wav_missing_bytes(src)
        return f"its data chunk declares {gap} more bytes than the file holds" if gap else ""
    if container == "OGG" and not ogg_ends_cleanly(src):
        return "the Ogg stream ends without its final page"
    return ""


def missing_after_decoding(container: str, declared_frames: int, decoded_frames: int) -> str:
    """What the decoded frames lack against the header's count ("" when nothing): FLAC's STREAMINFO count
    is exact; an MP3's is exact with a Xing/Info tag and an estimate without one, hence a tolerance (a cut
    at a frame boundary within it is undetectable). WAV and Ogg are checked at open (`missing_at_open`)."""
    if container == "MP3":
        if decoded_frames < declared_frames * (1 - MP3_SHORTFALL_TOLERANCE):
            return f"only {decoded_frames} of about {declared_frames} frames decode"
    elif container == "FLAC" and decoded_frames < declared_frames:
        return f"only {decoded_frames} of the {declared_frames} frames its header declares decode"
    return ""


def source_size(src: Source) -> int:
    return len(src) if isinstance(src, bytes) else os.stat(src).st_size


def open_raw(src: Source) -> BinaryIO:
    return io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115 - the caller closes it


def wav_data_chunk(fh: BinaryIO, size: int) -> tuple[int, int] | None:
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


def wav_missing_bytes(src: Source) -> int:
    """Declared minus present bytes of a RIFF/WAVE data chunk; 0 when not RIFF or the length is unknown."""
    size = source_size(src)
    with open_raw(src) as fh:
        chunk = wav_data_chunk(fh, size)
    if chunk is None or chunk[1] == STREAMED_WAV_SIZE:
        return 0  # RF64 keeps its sizes in a ds64 chunk (libsndfile checks those); a streamed WAV has none
    return max(0, chunk[1] - (size - chunk[0]))


def ogg_ends_cleanly(src: Source) -> bool:
    """True when the last Ogg page is complete and flagged end-of-stream (RFC 3533)."""
    size = source_size(src)
    with open_raw(src) as fh:
        fh.seek(max(0, size - OGG_TAIL_BYTES))
        tail = fh.read()
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        return False
    flags, segments = tail[at + 5], tail[at + 26]
    lacing = tail[at + 27 : at + 27 + segments]
    page_end = at + 27 + segments + sum(lacing)
    return len(lacing) == segments and page_end <= len(tail) and bool(flags & 0x04)


def empty() -> InvalidAudio:
    return InvalidAudio("the file is empty (0 bytes): send a recording with audio in it")


def no_frames(container: str) -> InvalidAudio:
    return InvalidAudio(f"the {container} file contains no audio frames (a header only?): send a recording with sound")


def truncated(container: str, missing: str) -> InvalidAudio:
    return InvalidAudio(
        f"the {container} file is truncated ({missing}): it was probably cut off in transfer; "
        "upload the complete file again"
    )


def corrupt(container: str, exc: sf.SoundFileError) -> InvalidAudio:
    return InvalidAudio(
        f"the {container} audio is corrupt or truncated ({reason(exc)}): upload the complete, undamaged file"
    )


def unrecognised(exc: sf.SoundFileError) -> InvalidAudio:
    return InvalidAudio(f"not a recognised audio file ({reason(exc)}): {ACCEPTED_HINT}")


def reason(exc: sf.SoundFileError) -> str:
    """libsndfile's text, without the temp-file path soundfile prefixes (it means nothing to the caller)."""
    text = str(getattr(exc, "error_string", exc)).strip().rstrip(".")
    return text.removeprefix("Error : ")
