"""Which audio callscribe accepts, and the completeness checks the decoders do not make: one policy.

Ingest validates uploads with it; VAD and ASR decode stored recordings with it (`decode.py`). Invariant 5
rests on the two agreeing: an upload ingest refuses gets a message a person can act on, and a recording it
stored always decodes downstream.

Two decoders, chosen here from the first bytes (`recognise`), never by letting a library guess:
libsndfile (through soundfile) for WAV of every codec it decodes (PCM 8-32 bit, float, mu-law, A-law,
IMA/MS ADPCM, GSM 6.10, G.721, ...), MP3, FLAC and Ogg (Opus, Vorbis); FFmpeg (through PyAV, `ffmpeg.py`)
with its demuxer named explicitly for what libsndfile lacks: MP4/M4A/3GP (AAC, AMR), AMR files (`#!AMR`),
G.729 in WAV (format tag 0x0083) and raw G.729, which has no header at all and is recognised only when the
upload declares it by its file name (`.g729`, `.729`: `raw_format_of`); downstream the declaration travels
in `ObjectRef.raw_format`. The bytes read here are container structure the decoders hide: a WAV data chunk
shorter than it declares (libsndfile clamps silently), an Ogg stream without its final page (libsndfile
takes the length from the last page present), an MP4 without its index (`moov`).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias, cast

import numpy as np

from callscribe.audio.sealed import SealedFile
from callscribe.kit.errors import InvalidArgument

SNDFILE = "libsndfile"
FFMPEG = "ffmpeg"

HEAD_BYTES = 64 * 1024  # read to recognise a file (a WAV fmt chunk may follow large LIST chunks)
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 48000
UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's count when a header does not record the length (FLAC piped out)
STREAMED_WAV_SIZE = 0xFFFFFFFF  # data size written by tools that could not seek back (ffmpeg to a pipe)
OGG_TAIL_BYTES = 65536  # an Ogg page is at most 27 + 255 + 255 * 255 = 65307 bytes
# Without a Xing/Info tag libsndfile estimates an MP3's length from its size and bitrate, so a few
# percent short is normal; a cut in the middle is far more than that.
MP3_SHORTFALL_TOLERANCE = 0.05

ACCEPTED_HINT = (
    "send WAV (PCM, float, mu-law, A-law, IMA or MS ADPCM, GSM 6.10, G.729), MP3, FLAC, Ogg (Opus or Vorbis), "
    "M4A/MP4/3GP (AAC or AMR), AMR, or raw G.729 named *.g729"
)
CONTAINERS = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "MP3": "MP3", "FLAC": "FLAC", "OGG": "OGG"}
# None: every subtype libsndfile decodes for that container (WAV: PCM 8-32 bit, float, mu-law, A-law,
# IMA/MS ADPCM, GSM 6.10, G.721, NMS ADPCM, MPEG layer III; FLAC is lossless at any depth), and for WAV
# also G.729, which FFmpeg decodes (WAV_FFMPEG_TAGS).
CODECS: dict[str, frozenset[str] | None] = {
    "WAV": None,
    "MP3": frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}),
    "FLAC": None,
    "OGG": frozenset({"OPUS", "VORBIS"}),
    "MP4": frozenset({"AAC", "AMR_NB", "AMR_WB"}),
    "AMR": frozenset({"AMR_NB", "AMR_WB"}),
    "RAW": frozenset({"G729"}),
}
# FFmpeg's decoder names as callscribe reports the codec (native and libopencore decoders alike).
FFMPEG_CODECS = {
    "aac": "AAC",
    "aac_fixed": "AAC",
    "amrnb": "AMR_NB",
    "libopencore_amrnb": "AMR_NB",
    "amrwb": "AMR_WB",
    "libopencore_amrwb": "AMR_WB",
    "g729": "G729",
}
# WAV format tags libsndfile does not decode and FFmpeg does: G.729 (8 kbit/s, 10-byte frames).
WAV_FFMPEG_TAGS = {0x0083: "G729"}
G729_FRAME_BYTES = 10  # one 10 ms frame at 8 kbit/s (Annex A; FFmpeg's raw demuxer reads no SID frames)
G729_BYTES_PER_SECOND = 1000
# Headerless formats: recognised only when declared (the upload's file name), never guessed from bytes.
RAW_FORMATS = {"G729": "g729"}  # declared name -> FFmpeg demuxer
RAW_EXTENSIONS = {".g729": "G729", ".729": "G729"}
# Beginnings that are a container (audio or not): bytes declared raw that start so are not raw audio.
_MAGICS = (
    b"RIFF", b"RF64", b"OggS", b"fLaC", b"ID3", b"#!AMR", b"%PDF", b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff",
    b"GIF8", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"{\\rtf", b"\x1aE\xdf\xa3", b"FORM", b".snd",
)  # fmt: skip
MP4_TOP_BOXES = frozenset(
    {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"pdin", b"moof", b"mfra", b"sidx",
     b"styp", b"udta", b"emsg", b"prft", b"junk", b"pnot"}
)  # fmt: skip


# A file, a small upload still in memory, or a sealed spool file (read only through its own readers).
Source: TypeAlias = str | os.PathLike[str] | bytes | SealedFile


class InvalidAudio(InvalidArgument):
    """The audio is not what callscribe accepts; the message says what was found and what to send."""


@dataclass(frozen=True)
class Recognised:
    """How a file is read: `reader` SNDFILE (libsndfile decides the container from the bytes) or FFMPEG
    with `demuxer` (FFmpeg's format name) for `container`."""

    container: str
    reader: str
    demuxer: str = ""


def raw_format_of(filename: str) -> str:
    """The headerless format a file name declares ("G729" for *.g729 and *.729, any case), else ""."""
    return RAW_EXTENSIONS.get(os.path.splitext(filename.strip())[1].lower(), "")


def check_raw_format(raw_format: str) -> None:
    """InvalidArgument unless `raw_format` is "" or a headerless format callscribe reads."""
    if raw_format and raw_format not in RAW_FORMATS:
        raise InvalidArgument(
            f"raw_format {raw_format!r} is not a headerless format callscribe reads: "
            f"{', '.join(sorted(RAW_FORMATS))}, or empty when the bytes have a header"
        )


def declared_raw_format(container: str, codec: str) -> str:
    """What a reader must be told to decode a recording with these facts: the codec of a headerless
    (RAW) recording, "" for every other (its bytes say what it is)."""
    return codec if container == "RAW" else ""


def recognise(head: bytes, raw_format: str = "") -> Recognised:
    """Which decoder reads a file that begins with `head` (a few KiB are enough; 64 KiB to find a WAV fmt
    chunk behind large LIST chunks). `raw_format` is what the upload declared for headerless audio: it
    is used only when the bytes have no container signature of their own."""
    check_raw_format(raw_format)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        fmt = wav_fmt(head)
        if fmt is not None and fmt.tag in WAV_FFMPEG_TAGS:
            return Recognised("WAV", FFMPEG, "wav")
        return Recognised("WAV", SNDFILE)
    if head[4:8] == b"ftyp":
        return Recognised("MP4", FFMPEG, "mov")
    if head.startswith(b"#!AMR\n") or head.startswith(b"#!AMR-WB\n"):
        return Recognised("AMR", FFMPEG, "amr")
    if raw_format and not head.startswith(_MAGICS):
        return Recognised("RAW", FFMPEG, RAW_FORMATS[raw_format])
    return Recognised("", SNDFILE)


@dataclass(frozen=True)
class WavFmt:
    """A RIFF/WAVE fmt chunk: the format tag (WAVE_FORMAT_EXTENSIBLE: its subformat's), average bytes
    per second and block align."""

    tag: int
    byte_rate: int
    block_align: int


def wav_fmt(head: bytes) -> WavFmt | None:
    """The fmt chunk of a RIFF/WAVE file that begins with `head`, None when no whole fmt chunk lies in it."""
    pos = 12
    while pos + 8 <= len(head):
        chunk_id, chunk_len = struct.unpack_from("<4sI", head, pos)
        if chunk_id == b"fmt ":
            if chunk_len < 16 or pos + 8 + 16 > len(head):
                return None
            tag, _channels, _rate, byte_rate, block_align = struct.unpack_from("<HHIIH", head, pos + 8)
            if tag == 0xFFFE and chunk_len >= 40 and pos + 8 + 26 <= len(head):
                (tag,) = struct.unpack_from("<H", head, pos + 8 + 24)
            return WavFmt(tag, byte_rate, block_align)
        pos += 8 + chunk_len + (chunk_len & 1)
    return None


def check_g729_wav(block_align: int, byte_rate: int) -> None:
    """A G.729 WAV must say what its frames are: 10-byte blocks at 1000 bytes/s (8 kbit/s). Files that
    say otherwise (FFmpeg writes a byte rate of 0) are misread by FFmpeg as 6.4 kbit/s frames."""
    if block_align != G729_FRAME_BYTES or byte_rate != G729_BYTES_PER_SECOND:
        raise InvalidAudio(
            f"the G.729 WAV header says {block_align}-byte blocks at {byte_rate} bytes/s, but G.729 at 8 kbit/s "
            f"is {G729_FRAME_BYTES}-byte frames at {G729_BYTES_PER_SECOND} bytes/s: fix the header (block align "
            f"{G729_FRAME_BYTES}, average bytes per second {G729_BYTES_PER_SECOND}) or upload the raw frames as *.g729"
        )


def looks_like_text(head: bytes) -> bool:
    """True when the first bytes are plain text (no NUL, nearly all printable): not encoded audio."""
    sample = head[:4096]
    if not sample or b"\x00" in sample:
        return False
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.97 * len(sample)


def mp4_boxes(src: Source, limit: int = 64) -> list[bytes]:
    """The types of an ISO-BMFF (MP4) file's first top-level boxes, in order, as far as they are whole
    and of known types (reads only box headers)."""
    size = source_size(src)
    types: list[bytes] = []
    with open_raw(src) as fh:
        pos = 0
        while pos + 8 <= size and len(types) < limit:
            fh.seek(pos)
            header = fh.read(16)
            if len(header) < 8:
                break
            box_len, box_type = struct.unpack_from(">I4s", header)
            if box_len == 1 and len(header) == 16:
                (box_len,) = struct.unpack_from(">Q", header, 8)
            elif box_len == 0:
                box_len = size - pos  # to the end of the file
            if box_type not in MP4_TOP_BOXES or box_len < 8:
                break
            types.append(box_type)
            pos += box_len
    return types


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
    at a frame boundary within it is undetectable). WAV and Ogg are checked at open (`missing_at_open`);
    the FFmpeg formats packet by packet (`missing_packets`, `cut_short`)."""
    if container == "MP3":
        if decoded_frames < declared_frames * (1 - MP3_SHORTFALL_TOLERANCE):
            return f"only {decoded_frames} of about {declared_frames} frames decode"
    elif container == "FLAC" and decoded_frames < declared_frames:
        return f"only {decoded_frames} of the {declared_frames} frames its header declares decode"
    return ""


def missing_packets(declared_packets: int, present_packets: int) -> str:
    """An MP4's index (`moov`) lists every packet: fewer present means the media data was cut ("" if none)."""
    if declared_packets and present_packets < declared_packets:
        return f"only {present_packets} of the {declared_packets} packets its index lists are present"
    return ""


def cut_short(packet_bytes: int) -> str:
    """The last packet is shorter than its frame (the file ends inside it)."""
    return f"its last frame is cut short ({packet_bytes} bytes present)"


def check_finite(container: str, block: np.ndarray) -> None:
    """Float samples must be numbers: NaN or infinity is no sound, and would poison every later step.
    `block`: decoded samples."""
    if not np.isfinite(block).all():
        raise InvalidAudio(
            f"the {container} file holds samples that are not numbers (NaN or infinity): it is corrupt; "
            "export the recording again"
        )


def source_size(src: Source) -> int:
    if isinstance(src, bytes):
        return len(src)
    if isinstance(src, SealedFile):
        return src.size
    return os.stat(src).st_size


def open_raw(src: Source) -> BinaryIO:
    """A new file object over `src`'s bytes, at its start (its own position; the caller closes it)."""
    if isinstance(src, bytes):
        return io.BytesIO(src)
    if isinstance(src, SealedFile):
        return cast(BinaryIO, src.open())  # a seekable, read-only file object: what BinaryIO's readers use
    return open(src, "rb")  # noqa: SIM115 - the caller closes it


def source_name(src: Source) -> str:
    """How logs name `src` (never its bytes)."""
    if isinstance(src, bytes):
        return f"<{len(src)} bytes in memory>"
    return str(src) if isinstance(src, SealedFile) else os.fspath(src)


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


def corrupt(container: str, exc: BaseException | str) -> InvalidAudio:
    return InvalidAudio(
        f"the {container} audio is corrupt or truncated ({reason(exc)}): upload the complete, undamaged file"
    )


def unrecognised(exc: BaseException | str) -> InvalidAudio:
    return InvalidAudio(f"not a recognised audio file ({reason(exc)}): {ACCEPTED_HINT}")


def several_streams(container: str, count: int) -> InvalidAudio:
    return InvalidAudio(
        f"the {container} file holds {count} audio streams: send one recording per file (mono, or stereo "
        "with the agent on one side)"
    )


def reason(exc: BaseException | str) -> str:
    """The decoder's text, without the temp-file path soundfile and FFmpeg put in it (it means nothing to
    the caller)."""
    if isinstance(exc, str):
        return exc
    text = str(getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or exc).strip().rstrip(".")
    return text.removeprefix("Error : ")
