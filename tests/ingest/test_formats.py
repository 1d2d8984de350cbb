"""Every format a call recorder writes (issue 17): made here, uploaded to the real ingest, archived as sent,
and decoded the way VAD and ASR decode it (`callscribe.audio.decode`, 16 kHz) to the same duration.

Files are made with sox, ffmpeg and PyAV's encoders from one spoken sentence padded to exactly 3 s.
G.729 has no encoder in sox, ffmpeg or PyAV here: its files are synthetic 10-byte frames (valid
G.729 syntax, noise to the ear), in a WAV header written here and raw (`*.g729`). Truncated, lying
and non-audio variants are refused with INVALID_ARGUMENT and nothing stored, in both upload modes.
A one-hour AAC recording is decoded by both paths in a subprocess with its peak memory growth bounded.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import av
import grpc
import numpy as np
import pytest
import soundfile as sf

from callscribe.audio.decode import AudioClips, AudioStream
from callscribe.audio.policy import Source, declared_raw_format
from callscribe.audio.sealed import CHUNK_BYTES, TAG_BYTES, SealedFile, SealedFileError, SealedWriter
from callscribe.ingest.model import AudioFacts
from callscribe.ingest.upload.audio import validate
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

SECONDS = 3
STEREO = c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT
HOUR_GROWTH_BOUND_MIB = 16  # a whole-hour array would be 110 MiB (8 kHz float32) or 220 MiB (16 kHz)


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def _ffmpeg(*args: str | Path) -> None:
    _run("ffmpeg", "-loglevel", "error", "-y", *args)


def _pyav_encode(src: Path, dst: Path, fmt: str, codec: str, rate: int, bit_rate: int) -> None:
    """Encode a mono 16-bit WAV with PyAV (for codecs the system tools cannot write: AMR-NB)."""
    pcm, src_rate = sf.read(src, dtype="int16")
    assert src_rate == rate
    out = av.open(str(dst), "w", format=fmt)
    stream = out.add_stream(codec, rate=rate, layout="mono")
    stream.bit_rate = bit_rate
    for at in range(0, len(pcm), rate):
        frame = av.AudioFrame.from_ndarray(pcm[at : at + rate].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


def g729_frames(seconds: float, seed: int = 7) -> bytes:
    """Synthetic G.729 (8 kbit/s): one 10-byte frame per 10 ms, any 80 bits being a valid frame."""
    return np.random.default_rng(seed).integers(0, 256, int(seconds * 100) * 10, dtype=np.uint8).tobytes()


def g729_wav(frames: bytes, byte_rate: int = 1000, declared_data: int | None = None) -> bytes:
    """G.729 in RIFF/WAVE as recorders write it: format tag 0x0083, 10-byte blocks, 1000 bytes/s."""
    fmt = struct.pack("<HHIIHH", 0x0083, 1, 8000, byte_rate, 10, 0)
    fact = struct.pack("<I", len(frames) // 10 * 80)
    data_len = len(frames) if declared_data is None else declared_data
    body = (
        b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"fact" + struct.pack("<I", 4) + fact
        + b"data" + struct.pack("<I", data_len) + frames
    )  # fmt: skip
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class Format:
    name: str  # the file name uploaded (its extension declares raw G.729)
    container: str
    codec: str
    rate: int
    channels: int
    tol_ms: int  # lossy codecs add encoder delay and padding; GSM and ADPCM fill whole blocks


FORMATS = [
    Format("float.wav", "WAV", "FLOAT", 16000, 1, 20),
    Format("pcm24.wav", "WAV", "PCM_24", 16000, 2, 20),
    Format("pcm32.wav", "WAV", "PCM_32", 8000, 1, 20),
    Format("u8.wav", "WAV", "PCM_U8", 8000, 1, 20),
    Format("gsm.wav", "WAV", "GSM610", 8000, 1, 60),
    Format("ima.wav", "WAV", "IMA_ADPCM", 8000, 1, 60),
    Format("msadpcm.wav", "WAV", "MS_ADPCM", 8000, 1, 60),
    Format("g729.wav", "WAV", "G729", 8000, 1, 20),
    Format("call.g729", "RAW", "G729", 8000, 1, 20),
    Format("call.729", "RAW", "G729", 8000, 1, 20),
    Format("amrnb.amr", "AMR", "AMR_NB", 8000, 1, 60),
    Format("aac.m4a", "MP4", "AAC", 8000, 1, 100),
    Format("aac-stereo-faststart.m4a", "MP4", "AAC", 16000, 2, 100),
    Format("amrnb.3gp", "MP4", "AMR_NB", 8000, 1, 60),
    Format("opus.ogg", "OGG", "OPUS", 16000, 1, 150),
    Format("speech.mp3", "MP3", "MPEG_LAYER_III", 8000, 1, 150),
    Format("stereo48k.flac", "FLAC", "PCM_16", 48000, 2, 20),
]


@pytest.fixture(scope="session")
def recorder_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every format of FORMATS and the broken variants, by file name."""
    missing = [tool for tool in ("espeak-ng", "sox", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"recorder formats need {', '.join(missing)} on PATH")
    d = tmp_path_factory.mktemp("recorder-formats")
    _run("espeak-ng", "-v", "en-us", "-w", d / "speech.wav", "thank you for calling, how can I help you today")
    base16, base8 = d / "base16.wav", d / "base8.wav"
    _run("sox", d / "speech.wav", "-r", "16000", "-c", "1", "-b", "16", base16, "pad", "0", "4", "trim", "0", "3")
    _run("sox", base16, "-r", "8000", base8)
    stereo16 = d / "stereo16.wav"
    _run("sox", "-M", base16, base16, stereo16)
    _run("sox", base16, "-e", "floating-point", "-b", "32", d / "float.wav")
    _run("sox", stereo16, "-b", "24", d / "pcm24.wav")
    _run("sox", base8, "-e", "signed-integer", "-b", "32", d / "pcm32.wav")
    _run("sox", base8, "-e", "unsigned-integer", "-b", "8", d / "u8.wav")
    _run("sox", base8, "-e", "gsm-full-rate", d / "gsm.wav")
    _run("sox", base8, "-e", "ima-adpcm", d / "ima.wav")
    _run("sox", base8, "-e", "ms-adpcm", d / "msadpcm.wav")
    _pyav_encode(base8, d / "amrnb.amr", "amr", "libopencore_amrnb", 8000, 12200)
    _pyav_encode(base8, d / "amrnb.3gp", "3gp", "libopencore_amrnb", 8000, 12200)
    _ffmpeg("-i", base8, "-c:a", "aac", "-b:a", "24k", d / "aac.m4a")  # index (moov) after the media data
    _ffmpeg("-i", stereo16, "-c:a", "aac", "-b:a", "48k", "-movflags", "+faststart", d / "aac-stereo-faststart.m4a")
    _ffmpeg("-i", base16, "-c:a", "libopus", "-b:a", "24k", d / "opus.ogg")
    _ffmpeg("-i", base8, "-c:a", "libmp3lame", "-b:a", "16k", d / "speech.mp3")
    _run("sox", stereo16, "-r", "48000", d / "stereo48k.flac")
    # A video with sound, its index first and over 64 KiB: refused from its first bytes.
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=4:size=320x240:rate=25", "-f", "lavfi", "-i", "sine=duration=4",
        "-c:v", "mpeg4", "-q:v", "2", "-c:a", "aac", "-movflags", "+faststart", d / "video.mp4",
    )  # fmt: skip
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    frames = g729_frames(SECONDS)
    files["g729.wav"] = g729_wav(frames)
    files["call.g729"] = files["call.729"] = frames
    return files


def _decoded_16k(data: bytes, raw_format: str, tmp_path: Path) -> tuple[int, int]:
    """(16 kHz frames, channels) as the VAD decodes the archived bytes, front to back."""
    path = tmp_path / "archived.audio"  # the services spool a recording under a name that says nothing
    path.write_bytes(data)
    with AudioStream(path, raw_format=raw_format) as stream:
        frames = 0
        for block in stream.blocks():
            assert block.dtype == np.float32 and np.isfinite(block).all()
            frames += len(block)
        channels = stream.info.channels
    with AudioClips(path, raw_format=raw_format) as clips:  # the ASR's cut of one segment
        assert len(clips.clip(channels - 1, 1000, 2000)) == 16000
    return frames, channels


def _upload(ingest, tenant: str, meta: c.RecordingMetadata, data: bytes, declare: bool) -> pb.UploadRecordingResponse:  # type: ignore[no-untyped-def]
    first = pb.UploadRecordingRequest(metadata=meta)
    if declare:
        first.sha256, first.size_bytes = hashlib.sha256(data).hexdigest(), len(data)
    chunks = [pb.UploadRecordingRequest(chunk=data[at : at + 64 * 1024]) for at in range(0, len(data), 64 * 1024)]
    return ingest.stub.UploadRecording(iter([first, *chunks]), metadata=ingest.auth(tenant), timeout=60)


MODES = pytest.mark.parametrize("declare", [False, True], ids=["spooled", "streamed"])


@MODES
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_recorder_format_is_archived_as_sent_and_decodes_to_its_duration(
    ingest, archive, make_metadata, recorder_files, tmp_path, fmt: Format, declare: bool
):  # type: ignore[no-untyped-def]
    data = recorder_files[fmt.name]
    layout = STEREO if fmt.channels == 2 else c.CHANNEL_LAYOUT_MONO
    tenant = "globex" if declare else "acme"  # one recording per tenant and mode: never a duplicate
    ack = _upload(ingest, tenant, make_metadata(filename=fmt.name, channel_layout=layout), data, declare)
    facts = ack.audio
    assert (facts.container, facts.codec, facts.sample_rate_hz, facts.channels) == (
        fmt.container,
        fmt.codec,
        fmt.rate,
        fmt.channels,
    )
    assert abs(facts.duration_ms - SECONDS * 1000) <= fmt.tol_ms, facts.duration_ms
    assert facts.size_bytes == len(data)
    assert ack.sha256 == hashlib.sha256(data).hexdigest()
    stored = archive.read(ack.object.key, ack.object.version_id)
    assert stored == data, "the archive keeps the bytes as sent (no transcoding)"
    frames, channels = _decoded_16k(stored, declared_raw_format(facts.container, facts.codec), tmp_path)
    assert channels == fmt.channels
    assert abs(frames / 16 - facts.duration_ms) <= 20, (frames / 16, facts.duration_ms)


def test_raw_g729_needs_its_declaration_downstream(recorder_files, tmp_path):  # type: ignore[no-untyped-def]
    """Headerless bytes say nothing: without ObjectRef.raw_format the services refuse them."""
    from callscribe.kit.errors import InvalidArgument

    path = tmp_path / "raw.audio"
    path.write_bytes(recorder_files["call.g729"])
    with pytest.raises(InvalidArgument, match="not a recognised audio file"), AudioStream(path) as stream:
        list(stream.blocks())
    with AudioStream(path, raw_format="G729") as stream:
        assert sum(len(b) for b in stream.blocks()) == SECONDS * 16000
    with pytest.raises(InvalidArgument, match="raw_format 'G723' is not a headerless format"):
        AudioStream(path, raw_format="G723")


# --------------------------------------------------------------------------- sealed spool files (issue 19)


def _sealed(data: bytes, directory: Path, chunk_bytes: int) -> SealedFile:
    writer = SealedWriter.create(directory, ".audio", chunk_bytes)
    for at in range(0, len(data), 16 * 1024):
        writer.write(data[at : at + 16 * 1024])
    return writer.finish()


def _decoded(src: Source, raw_format: str) -> tuple[np.ndarray, np.ndarray, AudioFacts]:
    """What the VAD (every block), the ASR (one clip of the last channel) and ingest's check make of `src`."""
    with AudioStream(src, raw_format=raw_format) as stream:
        blocks = np.concatenate(list(stream.blocks()))
        channels = stream.info.channels
    with AudioClips(src, raw_format=raw_format) as clips:
        clip = clips.clip(channels - 1, 1000, 2000)
    return blocks, clip, validate(src, raw_format)


@pytest.mark.parametrize("chunk_bytes", [CHUNK_BYTES, 1000], ids=["64KiB-chunks", "1000-byte-chunks"])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_a_sealed_spool_file_decodes_as_the_plain_file(recorder_files, tmp_path, fmt: Format, chunk_bytes: int):  # type: ignore[no-untyped-def]
    """Every format through libsndfile's and FFmpeg's custom I/O over the sealed file: the same facts and
    the same samples as from the plain file (1000-byte chunks: every read crosses chunk boundaries)."""
    data = recorder_files[fmt.name]
    raw_format = declared_raw_format(fmt.container, fmt.codec)
    plain = tmp_path / "plain.audio"
    plain.write_bytes(data)
    sealed = _sealed(data, tmp_path, chunk_bytes)
    blocks, clip, facts = _decoded(sealed, raw_format)
    plain_blocks, plain_clip, plain_facts = _decoded(plain, raw_format)
    assert (facts.container, facts.codec, facts.channels) == (fmt.container, fmt.codec, fmt.channels)
    assert facts == plain_facts
    np.testing.assert_array_equal(blocks, plain_blocks)
    np.testing.assert_array_equal(clip, plain_clip)
    assert len(clip) == 16000


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_a_sealed_spool_file_changed_on_disk_fails_as_such_not_as_bad_audio(
    recorder_files, tmp_path, fmt: Format, where: str
):  # type: ignore[no-untyped-def]
    """One flipped byte in a chunk the decoders read: SealedFileError from ingest's check and from the VAD's
    decoding, whichever decoder reads the format (libsndfile drops its callbacks' exceptions: the reader
    keeps them)."""
    data = recorder_files[fmt.name]
    raw_format = declared_raw_format(fmt.container, fmt.codec)
    sealed = _sealed(data, tmp_path, 1000)
    raw = bytearray(sealed.path.read_bytes())
    chunks = -(-len(data) // 1000)
    index = {"first": 0, "middle": chunks // 2, "last": chunks - 1}[where]
    raw[index * (1000 + TAG_BYTES) + 3] ^= 0x80
    sealed.path.write_bytes(bytes(raw))
    what = rf"chunk {index} of {chunks} does not authenticate"
    with pytest.raises(SealedFileError, match=what):
        validate(sealed, raw_format)
    with pytest.raises(SealedFileError, match=what), AudioStream(sealed, raw_format=raw_format) as stream:
        for _ in stream.blocks():
            pass


def _cut(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


REFUSED = {
    # name: (file name uploaded, make bytes from the files, words the message holds)
    "m4a-cut-no-index": ("aac.m4a", lambda f: _cut(f["aac.m4a"], 0.5), ["MP4", "truncated", "no moov box"]),
    "m4a-faststart-cut": (
        "aac-stereo-faststart.m4a",
        lambda f: _cut(f["aac-stereo-faststart.m4a"], 0.6),
        ["MP4", "truncated"],
    ),
    "amr-cut-mid-frame": ("amrnb.amr", lambda f: f["amrnb.amr"][:-7], ["AMR", "truncated", "last frame"]),
    "3gp-cut": ("amrnb.3gp", lambda f: _cut(f["amrnb.3gp"], 0.5), ["MP4", "truncated"]),
    "raw-g729-cut-mid-frame": ("call.g729", lambda f: f["call.g729"][:-3], ["raw G729", "truncated", "cut short"]),
    "g729-wav-cut": ("g729.wav", lambda f: _cut(f["g729.wav"], 0.5), ["WAV", "truncated", "more bytes"]),
    "g729-wav-lying": (
        "g729.wav",
        lambda f: g729_wav(g729_frames(SECONDS), declared_data=SECONDS * 2000),
        ["WAV", "truncated", "3000 more bytes"],
    ),
    "g729-wav-bad-byte-rate": (
        "g729.wav",
        lambda f: g729_wav(g729_frames(SECONDS), byte_rate=0),
        ["G.729 WAV header says 10-byte blocks at 0 bytes/s"],
    ),
    "gsm-wav-cut": ("gsm.wav", lambda f: _cut(f["gsm.wav"], 0.5), ["WAV", "truncated"]),
    "ima-wav-cut": ("ima.wav", lambda f: _cut(f["ima.wav"], 0.5), ["WAV", "truncated"]),
    "float-wav-cut": ("float.wav", lambda f: _cut(f["float.wav"], 0.7), ["WAV", "truncated"]),
    "float-wav-nan": (
        "float.wav",
        lambda f: f["float.wav"][:-400] + np.full(100, np.nan, dtype="<f4").tobytes(),
        ["not numbers (NaN or infinity)"],
    ),
    "text-named-g729": ("notes.g729", lambda f: b"customer called about invoice 42\n" * 300, ["text, not raw G729"]),
    "pdf-named-g729": ("doc.g729", lambda f: b"%PDF-1.4\n" + bytes(range(256)) * 40, ["not a recognised audio file"]),
    "video-mp4": ("clip.mp4", lambda f: f["video.mp4"], ["not a recognised audio file", "holds video"]),
    "amr-magic-only": ("x.amr", lambda f: b"#!AMR\n", ["AMR", "no audio frames"]),
}


@MODES
@pytest.mark.parametrize("case", list(REFUSED))
def test_truncated_lying_and_non_audio_recorder_files_are_refused(
    ingest, archive, make_metadata, recorder_files, poll, case: str, declare: bool
):  # type: ignore[no-untyped-def]
    filename, make, words = REFUSED[case]
    data = make(recorder_files)
    before = archive.versions()
    with pytest.raises(grpc.RpcError) as err:
        _upload(ingest, "acme", make_metadata(filename=filename), data, declare)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    for word in words:
        assert word in err.value.details()
    poll(lambda: ingest.metric("callscribe_ingest_uploads_in_flight") == 0, 10, "the upload to finish")
    poll(lambda: not list(ingest.spool_dir.glob("*.upload")), 10, "the spool file to be removed")
    assert archive.versions() - before == set(), "a refused upload left an object version in S3"
    assert archive.multipart_uploads() == []


@pytest.mark.parametrize(
    ("filename", "key", "words"),
    [
        ("clip.mp4", "video.mp4", "holds video"),
        ("notes.g729", None, "text, not raw G729"),
    ],
)
def test_non_audio_is_refused_after_its_first_chunk(
    ingest, make_metadata, recorder_files, filename: str, key: str | None, words: str
):  # type: ignore[no-untyped-def]
    """The early probe (first 64 KiB) refuses a video or text file before the rest is sent."""
    data = recorder_files[key] if key else b"Dear customer, this is not a recording. " * 5000
    assert len(data) > 128 * 1024
    more = threading.Event()
    rest_sent: list[bool] = []

    def gen():  # type: ignore[no-untyped-def]
        yield pb.UploadRecordingRequest(metadata=make_metadata(filename=filename))
        yield pb.UploadRecordingRequest(chunk=data[: 128 * 1024])
        more.wait(30)
        rest_sent.append(True)
        yield pb.UploadRecordingRequest(chunk=data[128 * 1024 :])

    try:
        with pytest.raises(grpc.RpcError) as err:
            ingest.stub.UploadRecording(gen(), metadata=ingest.auth("acme"), timeout=30)
        assert rest_sent == [], "refused only after the client sent everything"
    finally:
        more.set()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details()


# --------------------------------------------------------------------------- memory on a one-hour call

_MEASURE = textwrap.dedent(
    """
    import sys, threading, tracemalloc
    import psutil
    from callscribe.audio.decode import AudioStream
    from callscribe.ingest.upload.audio import validate

    warm, path, which, sealed, spool = sys.argv[1:6]
    if sealed == "sealed":  # as the spool holds them: sealed files, streamed in (bounded memory)
        from pathlib import Path
        from callscribe.audio.sealed import SealedWriter

        def seal(p):
            writer = SealedWriter.create(Path(spool), ".audio")
            with open(p, "rb") as fh:
                while block := fh.read(1 << 20):
                    writer.write(block)
            return writer.finish()

        warm, path = seal(warm), seal(path)

    def run(p):
        if which == "services":
            with AudioStream(p) as stream:
                return sum(len(block) for block in stream.blocks()) / 16000
        return validate(p).duration_ms / 1000

    run(warm)  # a one-minute call first: FFmpeg's code and tables are paged in, whatever the length
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    done = threading.Event()

    def sample():
        global peak
        while not done.wait(0.005):
            peak = max(peak, proc.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    tracemalloc.start()
    seconds = run(path)
    traced_peak = tracemalloc.get_traced_memory()[1]  # every numpy array and Python object, exactly
    tracemalloc.stop()
    done.set()
    sampler.join()
    peak = max(peak, proc.memory_info().rss)
    print(seconds, (peak - base) / 2**20, traced_peak / 2**20)
    """
)


@pytest.fixture(scope="module")
def aac_calls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(one minute, one hour) of 8 kHz mono AAC in M4A."""
    d = tmp_path_factory.mktemp("hour")
    paths = []
    for name, seconds in (("minute.m4a", 60), ("hour.m4a", 3600)):
        tone = f"sine=frequency=440:sample_rate=8000:duration={seconds}"
        _ffmpeg("-f", "lavfi", "-i", tone, "-c:a", "aac", "-b:a", "16k", d / name)
        paths.append(d / name)
    return paths[0], paths[1]


@pytest.mark.parametrize("sealed", ["plain", "sealed"])
@pytest.mark.parametrize("which", ["services", "ingest"])
def test_one_hour_call_decodes_in_bounded_memory(
    aac_calls: tuple[Path, Path], which: str, sealed: str, tmp_path: Path
) -> None:
    """A one-hour AAC call (8 kHz mono, 7 MB) decoded to 16 kHz by the services' path, and validated by
    ingest's full check, each in a fresh process after a one-minute call: the RSS (sampled every 5 ms) and
    the peak of Python/numpy allocations (tracemalloc) grow by less than HOUR_GROWTH_BOUND_MIB (a
    whole-file array would be 110-220 MiB). `sealed`: read from a sealed spool file (issue 19), as the
    services and ingest read it."""
    minute, hour = aac_calls
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(minute), str(hour), which, sealed, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    seconds, growth_mib, traced_mib = float(out[0]), float(out[1]), float(out[2])
    assert abs(seconds - 3600) < 0.2, seconds
    assert growth_mib < HOUR_GROWTH_BOUND_MIB, f"peak RSS grew by {growth_mib:.1f} MiB decoding one hour"
    assert traced_mib < HOUR_GROWTH_BOUND_MIB, f"Python/numpy allocations peaked at {traced_mib:.1f} MiB"
    print(
        f"one hour of {sealed} AAC through {which}: peak RSS growth {growth_mib:.1f} MiB, "
        f"traced peak {traced_mib:.1f} MiB"
    )
