"""Tests for callscribe.ingest.upload.audio on real files made with espeak-ng, sox and ffmpeg."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from callscribe.audio.policy import ACCEPTED_HINT, Source
from callscribe.ingest.upload.audio import (
    HEADER_PROBE_BYTES,
    AudioFacts,
    InvalidAudio,
    probe,
    validate,
)
from callscribe.ingest.upload.spool import UploadSpool

SECONDS = 3  # every fixture is padded/trimmed to exactly this length


def _run(*args: str | Path) -> bytes:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True).stdout


def _cut(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(src.read_bytes()[:n])
    return dst


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture file by name; all are made once per session in one temp folder."""
    missing = [tool for tool in ("espeak-ng", "sox", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"audio fixtures need {', '.join(missing)} on PATH")
    d = tmp_path_factory.mktemp("audio")
    base = d / "base.wav"
    _run(
        "espeak-ng",
        "-v",
        "en-us",
        "-w",
        d / "speech.wav",
        "thank you for calling, how can I help you today",
    )
    # Pad then trim so the known length is exact whatever espeak-ng produced.
    _run(
        "sox",
        d / "speech.wav",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        base,
        "pad",
        "0",
        "4",
        "trim",
        "0",
        "3",
    )
    _run("sox", base, "-r", "8000", "-e", "u-law", d / "ulaw.wav")
    _run("sox", base, "-r", "8000", "-e", "a-law", d / "alaw.wav")
    _run("sox", "-M", base, base, d / "stereo.wav")
    _run("sox", base, d / "mono.flac")
    # 48 kHz stereo: 144000 frames, more than one 64k-frame decode block.
    _run("sox", d / "stereo.wav", "-r", "48000", d / "hi.flac")
    _run("sox", base, d / "vorbis.ogg")
    _run(
        "ffmpeg",
        "-loglevel",
        "error",
        "-i",
        base,
        "-c:a",
        "libmp3lame",
        d / "speech.mp3",
    )
    _run("ffmpeg", "-loglevel", "error", "-i", base, "-c:a", "libopus", d / "opus.ogg")
    _run("sox", base, "-b", "24", d / "pcm24.wav")
    _run("sox", base, "-r", "96000", d / "r96.wav")
    _run("sox", "-M", base, base, base, base, d / "quad.wav")
    video = (
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=1:size=160x120:rate=10",
        "-c:v",
        "mpeg4",
    )
    _run("ffmpeg", "-loglevel", "error", *video, d / "video.mp4")
    # Written to a pipe ffmpeg cannot seek back, so sizes stay unknown (WAV 0xFFFFFFFF, FLAC total 0).
    for ext in ("wav", "flac"):
        streamed = _run("ffmpeg", "-loglevel", "error", "-i", base, "-f", ext, "-")
        (d / f"streamed.{ext}").write_bytes(streamed)
    _write_broken(d)
    return {p.name: p for p in d.iterdir()}


def _write_broken(d: Path) -> None:
    wav = (d / "base.wav").read_bytes()
    data_at = wav.find(b"data")
    (d / "empty.wav").write_bytes(b"")
    (d / "header_only.wav").write_bytes(wav[: data_at + 8])
    (d / "notes.txt").write_text("customer called about invoice 42\n" * 4000)
    (d / "random.bin").write_bytes(b"\x00" + os.urandom(100_000))  # never an MPEG sync by chance
    (d / "doc.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 3000 + b"%%EOF\n")
    (d / "cut.wav").write_bytes(wav[: len(wav) // 2])
    declared = struct.unpack("<I", wav[data_at + 4 : data_at + 8])[0]
    (d / "lying.wav").write_bytes(wav[: data_at + 4] + struct.pack("<I", declared * 3) + wav[data_at + 8 :])
    for name in ("mono.flac", "opus.ogg", "vorbis.ogg", "speech.mp3"):
        _cut(d / name, d / f"cut.{name}", (d / name).stat().st_size // 2)


ACCEPTED = [
    # file, container, codec, rate, channels, duration tolerance ms (lossy codecs add encoder padding)
    ("base.wav", "WAV", "PCM_16", 16000, 1, 50),
    ("ulaw.wav", "WAV", "ULAW", 8000, 1, 50),
    ("alaw.wav", "WAV", "ALAW", 8000, 1, 50),
    ("stereo.wav", "WAV", "PCM_16", 16000, 2, 50),
    ("mono.flac", "FLAC", "PCM_16", 16000, 1, 50),
    ("hi.flac", "FLAC", "PCM_16", 48000, 2, 50),
    ("speech.mp3", "MP3", "MPEG_LAYER_III", 16000, 1, 150),
    ("opus.ogg", "OGG", "OPUS", 16000, 1, 150),
    ("vorbis.ogg", "OGG", "VORBIS", 16000, 1, 150),
    ("streamed.wav", "WAV", "PCM_16", 16000, 1, 50),
    ("pcm24.wav", "WAV", "PCM_24", 16000, 1, 50),  # refused before issue 17: every WAV codec libsndfile decodes
]


@pytest.mark.parametrize(("name", "container", "codec", "rate", "channels", "tol_ms"), ACCEPTED)
def test_accepted_formats_report_true_facts(
    audio: dict[str, Path],
    name: str,
    container: str,
    codec: str,
    rate: int,
    channels: int,
    tol_ms: int,
) -> None:
    facts = validate(audio[name])
    assert (facts.container, facts.codec, facts.sample_rate_hz, facts.channels) == (
        container,
        codec,
        rate,
        channels,
    )
    assert abs(facts.duration_ms - SECONDS * 1000) <= tol_ms
    assert facts.frames == pytest.approx(SECONDS * rate, abs=tol_ms * rate // 1000)
    head = probe(audio[name], complete=True)
    assert isinstance(head, AudioFacts)
    assert (head.container, head.codec, head.sample_rate_hz, head.channels) == (
        container,
        codec,
        rate,
        channels,
    )


REJECTED = [
    # file, words the message must contain
    ("empty.wav", ["empty"]),
    ("header_only.wav", ["no audio"]),
    ("notes.txt", ["not a recognised audio file", ACCEPTED_HINT]),
    ("random.bin", ["not a recognised audio file", ACCEPTED_HINT]),
    ("doc.pdf", ["not a recognised audio file", ACCEPTED_HINT]),
    ("video.mp4", ["not a recognised audio file", ACCEPTED_HINT]),
    (
        "cut.wav",
        [
            "WAV",
            "truncated",
            "more bytes than the file holds",
            "upload the complete file",
        ],
    ),
    ("lying.wav", ["WAV", "truncated", "more bytes than the file holds"]),
    ("cut.mono.flac", ["FLAC", "corrupt or truncated", "upload the complete"]),
    ("cut.opus.ogg", ["OGG", "truncated", "final page"]),
    ("cut.vorbis.ogg", ["OGG", "truncated", "final page"]),
    ("cut.speech.mp3", ["MP3", "truncated", "frames decode"]),
    ("r96.wav", ["unsupported sample rate 96000 Hz", "8000", "48000"]),
    ("quad.wav", ["unsupported channel count 4", "mono or stereo"]),
    ("streamed.flac", ["does not record the audio length", "re-encode"]),
]


@pytest.mark.parametrize(("name", "words"), REJECTED)
def test_validate_rejects_with_informative_message(audio: dict[str, Path], name: str, words: list[str]) -> None:
    with pytest.raises(InvalidAudio) as caught:
        validate(audio[name])
    for word in words:
        assert word in caught.value.message
    assert str(audio[name]) not in caught.value.message  # the server's temp path means nothing to the caller


@pytest.mark.parametrize("name", ["r96.wav", "quad.wav", "notes.txt", "doc.pdf", "random.bin"])
def test_probe_rejects_early_on_a_header_sized_prefix(audio: dict[str, Path], name: str, tmp_path: Path) -> None:
    prefix = _cut(audio[name], tmp_path / ("prefix." + name), HEADER_PROBE_BYTES)
    assert prefix.stat().st_size == HEADER_PROBE_BYTES
    with pytest.raises(InvalidAudio, match="unsupported|not a recognised"):
        probe(prefix, complete=False)


def test_probe_reads_facts_from_a_partial_wav(audio: dict[str, Path], tmp_path: Path) -> None:
    partial = _cut(audio["base.wav"], tmp_path / "partial.wav", 4096)
    facts = probe(partial, complete=False)
    assert facts is not None
    assert (facts.container, facts.codec, facts.sample_rate_hz, facts.channels) == (
        "WAV",
        "PCM_16",
        16000,
        1,
    )
    assert 0 < facts.frames < SECONDS * 16000  # only what has arrived so far


@pytest.mark.parametrize(
    ("name", "size"),
    [("base.wav", 8), ("opus.ogg", 1000), ("notes.txt", 100), ("empty.wav", 0)],
)
def test_probe_waits_for_more_bytes_when_too_few_to_decide(
    audio: dict[str, Path], tmp_path: Path, name: str, size: int
) -> None:
    partial = _cut(audio[name], tmp_path / ("few." + name), size)
    assert probe(partial, complete=False) is None
    with pytest.raises(InvalidAudio):
        probe(partial, complete=True)  # the same bytes as a whole upload are definitely not audio


def test_probe_complete_header_only_wav_has_no_audio(audio: dict[str, Path]) -> None:
    with pytest.raises(InvalidAudio, match="no audio frames"):
        probe(audio["header_only.wav"], complete=True)


# --------------------------------------------------------------------------- byte-exact WAV


def _long_wavs(d: Path) -> dict[str, Path]:
    """10 s files (over HEADER_PROBE_BYTES at 8 kHz mu-law too), each codec, plus broken ones."""
    base = d / "long.wav"
    _run("sox", "-n", "-r", "16000", "-b", "16", "-c", "1", base, "synth", "10", "sine", "300-3000")
    files = {"pcm16": base}
    _run("sox", base, "-r", "8000", "-e", "u-law", d / "ulaw.wav")
    _run("sox", base, "-r", "8000", "-e", "a-law", d / "alaw.wav")
    _run("sox", "-M", base, base, d / "stereo.wav")
    files.update(ulaw=d / "ulaw.wav", alaw=d / "alaw.wav", stereo=d / "stereo.wav")
    wav = base.read_bytes()
    data_at = wav.find(b"data")
    declared = struct.unpack("<I", wav[data_at + 4 : data_at + 8])[0]
    variants = {
        "cut": wav[: len(wav) - 1000],
        "lying": wav[: data_at + 4] + struct.pack("<I", declared * 3) + wav[data_at + 8 :],
        "odd_size": wav[: data_at + 4] + struct.pack("<I", declared - 1) + wav[data_at + 8 :],
        "trailing_chunk": wav + b"LIST" + struct.pack("<I", 4) + b"INFO",
        "list_first": wav[:12] + b"LIST" + struct.pack("<I", 6) + b"INFOab" + wav[12:],
    }
    for name, data in variants.items():
        (d / f"{name}.wav").write_bytes(data)
        files[name] = d / f"{name}.wav"
    return files


def _spooled(path: Path, d: Path, keep_bytes: bool) -> tuple[object, UploadSpool]:
    spool = UploadSpool(d, 1 << 30, memory_bytes=0, keep_bytes=keep_bytes)
    data = path.read_bytes()
    for i in range(0, len(data), 16 * 1024):
        spool.append(data[i : i + 16 * 1024])
    try:
        outcome: object = spool.finish()
    except InvalidAudio as exc:
        outcome = str(exc)
    return outcome, spool


@pytest.mark.parametrize(
    "name", ["pcm16", "ulaw", "alaw", "stereo", "cut", "lying", "odd_size", "trailing_chunk", "list_first"]
)
def test_byte_exact_wav_checked_by_size_says_what_decoding_says(name: str, tmp_path: Path) -> None:
    """A streamed upload (keep_bytes=False) of PCM-16 / mu-law / A-law WAV keeps only its head: the
    facts and errors are those of decoding the whole file, and no spool file remains."""
    files = _long_wavs(tmp_path)
    work = tmp_path / "spool"
    work.mkdir()
    by_size, fast = _spooled(files[name], work, keep_bytes=False)
    decoded, full = _spooled(files[name], work, keep_bytes=True)
    assert by_size == decoded
    assert fast._wav is not None and fast.path is None, "only the head was kept"
    assert full._wav is None
    if name in ("cut", "lying"):
        assert isinstance(by_size, str) and "truncated" in by_size
    else:
        sha, facts = by_size  # type: ignore[misc]
        assert facts.frames > 0 and facts.duration_ms >= 9990
    full.discard()
    fast.discard()
    assert list(work.iterdir()) == []


def test_other_formats_are_kept_and_decoded(audio: dict[str, Path], tmp_path: Path) -> None:
    for name in ("hi.flac", "streamed.wav"):
        assert audio[name].stat().st_size > HEADER_PROBE_BYTES
        outcome, spool = _spooled(audio[name], tmp_path, keep_bytes=False)
        assert spool._wav is None and spool.path is not None, name
        assert outcome == _spooled(audio[name], tmp_path, keep_bytes=True)[0]
        assert not isinstance(outcome, str), outcome
        spool.discard()


# --------------------------------------------------------------------------- one policy for ingest and the services


def _decoded_by_the_services(path: Source) -> tuple[int, str]:
    """What VAD (AudioStream, every block) and ASR (AudioClips, opened) make of a stored file:
    (16 kHz frames, "") when it decodes, (0, message) when it is refused."""
    from callscribe.audio.decode import AudioClips, AudioStream
    from callscribe.kit.errors import InvalidArgument

    try:
        with AudioStream(path) as stream:
            frames = sum(len(block) for block in stream.blocks())
        with AudioClips(path):
            pass
    except InvalidArgument as exc:
        return 0, exc.message
    return frames, ""


@pytest.mark.parametrize("name", [row[0] for row in ACCEPTED] + [row[0] for row in REJECTED])
def test_ingest_and_the_services_give_every_file_the_same_verdict(audio: dict[str, Path], name: str) -> None:
    """Invariant 5 downstream: what ingest stores decodes in VAD and ASR; what it refuses, they refuse
    with the same message (one policy, callscribe.audio.policy)."""
    try:
        facts = validate(audio[name])
    except InvalidAudio as exc:
        frames, message = _decoded_by_the_services(audio[name])
        assert frames == 0, f"ingest refused {name} ({exc.message}) but the services decode it"
        assert message == exc.message
        return
    frames, message = _decoded_by_the_services(audio[name])
    assert message == "", f"ingest accepted {name} but the services refuse it: {message}"
    assert abs(frames - facts.duration_ms * 16) <= 16 * 20  # the same audio, at 16 kHz, within 20 ms


@pytest.mark.parametrize("name", [row[0] for row in ACCEPTED] + [row[0] for row in REJECTED])
def test_a_sealed_spool_file_gets_the_verdict_of_the_plain_file(
    audio: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """Issue 19: spool files are sealed (`callscribe.audio.sealed`). Read through the sealed file, ingest and
    the services say what they say of the plain file: the same facts, or the same refusal."""
    from callscribe.audio.sealed import SealedWriter

    data = audio[name].read_bytes()
    writer = SealedWriter.create(tmp_path, ".upload", chunk_bytes=4096)  # small chunks: reads cross them
    writer.write(data)
    sealed = writer.finish()

    def verdict(src: Source) -> AudioFacts | str:
        try:
            return validate(src)
        except InvalidAudio as exc:
            return exc.message

    expected = verdict(audio[name])
    assert verdict(sealed) == expected
    assert _decoded_by_the_services(sealed) == _decoded_by_the_services(audio[name])
    if isinstance(expected, AudioFacts):
        assert probe(sealed, complete=True) == probe(audio[name], complete=True)
