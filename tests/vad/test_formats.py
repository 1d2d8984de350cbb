"""The VAD service on recorder formats (issue 17): the synthetic telephone calls re-encoded as a recorder
would write them (AAC in M4A, AMR-NB, GSM 6.10 WAV), read from S3 like an archived recording, find the
same planted turns as the WAV; raw G.729 is read only with the ObjectRef.raw_format ingest declares.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import grpc
import numpy as np
import pytest
import soundfile as sf

from callscribe.v1 import common_pb2 as c

MIN_COVERAGE = 0.9  # of each planted turn's true speech, on its channel (lossy codecs blur the edges)
SPURIOUS_TOLERANCE_MS = 150
SPEECH_DBFS = -35.0


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def _amr_nb(src: Path, dst: Path) -> None:
    """AMR-NB 12.2 kbit/s with PyAV's encoder (sox and ffmpeg here have none)."""
    pcm, rate = sf.read(src, dtype="int16")
    out = av.open(str(dst), "w", format="amr")
    stream = out.add_stream("libopencore_amrnb", rate=rate, layout="mono")
    stream.bit_rate = 12200
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        out.mux(packet)
    out.close()


@pytest.fixture(scope="module")
def recorded(audio, tmp_path_factory):  # type: ignore[no-untyped-def]
    """name -> (the call it encodes, its bytes)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("recorder formats need ffmpeg on PATH")
    d = tmp_path_factory.mktemp("vad-formats")
    stereo, mono = audio.calls["telephone_left"], audio.calls["mono_telephone"]
    _run("ffmpeg", "-loglevel", "error", "-i", stereo.path, "-c:a", "aac", "-b:a", "32k", d / "call.m4a")
    _run("sox", mono.path, "-e", "signed-integer", "-b", "16", d / "mono16.wav")
    _amr_nb(d / "mono16.wav", d / "call.amr")
    _run("sox", mono.path, "-e", "gsm-full-rate", d / "gsm.wav")
    return {
        "aac.m4a": (stereo, (d / "call.m4a").read_bytes()),
        "amrnb.amr": (mono, (d / "call.amr").read_bytes()),
        "gsm.wav": (mono, (d / "gsm.wav").read_bytes()),
    }


def _speech_span(call, turn) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """First to last 10 ms frame of the turn above SPEECH_DBFS in the original WAV."""
    samples, rate = sf.read(str(call.path), dtype="float32", always_2d=True)
    x = samples[turn.start_ms * rate // 1000 : turn.end_ms * rate // 1000, call.channel_of(turn.speaker)]
    hop = rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    loud = np.nonzero(10 * np.log10((frames**2).mean(axis=1) + 1e-12) > SPEECH_DBFS)[0]
    return turn.start_ms + int(loud[0]) * 10, turn.start_ms + (int(loud[-1]) + 1) * 10


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [("aac.m4a", "MP4", "AAC"), ("amrnb.amr", "AMR", "AMR_NB"), ("gsm.wav", "WAV", "GSM610")],
)
def test_recorder_format_finds_the_planted_turns(vad, recordings, recorded, name, container, codec):  # type: ignore[no-untyped-def]
    call, data = recorded[name]
    wav = vad.detect(ref=recordings.put("acme", call.data), layout=call.layout)
    response = vad.detect(ref=recordings.put("acme", data), layout=call.layout)
    assert (response.audio.container, response.audio.codec, response.audio.sample_rate_hz) == (container, codec, 8000)
    assert response.audio.channels == wav.audio.channels
    assert abs(response.duration_ms - wav.duration_ms) <= 100, (response.duration_ms, wav.duration_ms)
    for turn in call.turns:
        span = _speech_span(call, turn)
        channel = call.channel_of(turn.speaker)
        covered = sum(_overlap((s.start_ms, s.end_ms), span) for s in response.segments if s.channel == channel)
        assert covered >= MIN_COVERAGE * (span[1] - span[0]), f"{name}: {turn.speaker} {span} only {covered} ms"
    for seg in response.segments:
        own = [
            (t.start_ms - SPURIOUS_TOLERANCE_MS, t.end_ms + SPURIOUS_TOLERANCE_MS)
            for t in call.turns
            if call.channel_of(t.speaker) == seg.channel
        ]
        assert any(_overlap((seg.start_ms, seg.end_ms), t) for t in own), f"{name}: {seg} lies in silence"


def test_raw_g729_is_read_with_its_declared_format(vad, recordings):  # type: ignore[no-untyped-def]
    frames = np.random.default_rng(3).integers(0, 256, 500 * 10, dtype=np.uint8).tobytes()  # 5 s of frames
    ref = recordings.put("acme", frames)
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(ref=ref, layout=c.CHANNEL_LAYOUT_MONO)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a recognised audio file" in err.value.details()
    ref.raw_format = "G723"
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(ref=ref, layout=c.CHANNEL_LAYOUT_MONO)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_format 'G723' is not a headerless format" in err.value.details()
    ref.raw_format = "G729"
    response = vad.detect(ref=ref, layout=c.CHANNEL_LAYOUT_MONO)
    assert (response.audio.container, response.audio.codec, response.audio.sample_rate_hz) == ("RAW", "G729", 8000)
    assert response.duration_ms == 5000


def test_24_bit_wav_is_accepted(vad, audio):  # type: ignore[no-untyped-def]
    """Refused before issue 17 ("unsupported WAV codec PCM_24"): every WAV codec libsndfile decodes is read."""
    response = vad.detect(data=audio.path("pcm24").read_bytes(), layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT)
    assert (response.audio.codec, response.audio.channels) == ("PCM_24", 2)
    assert response.duration_ms == 3000
    assert response.segments, "the 3 s of the clean call hold speech"
