"""The VAD service end to end: the real service (subprocess) on real S3, synthetic calls with known turns.

Accuracy: every planted turn must be covered by speech on its own channel (with the right role),
no segment may lie wholly in silence, and the boundary offsets are reported and bounded.
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import numpy as np
import psutil
import pytest
import soundfile as sf

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import vad_pb2 as pb

SPURIOUS_TOLERANCE_MS = 100
MIN_COVERAGE = 0.95
SPEECH_DBFS = -35.0
# Boundary offsets |detected - true speech| in ms. Measured (FSMN defaults): median ~316 clean / ~306 noisy,
# worst ~394 / ~404: FSMN pads starts by window + lookback (400 ms) and ends by up to ~300 ms by design.
MEDIAN_BOUND_MS = 400
WORST_BOUND_MS = 500
ROLE = {"agent": c.SPEAKER_ROLE_AGENT, "customer": c.SPEAKER_ROLE_CUSTOMER}


def _segments(response: pb.DetectSpeechResponse, channel: int) -> list[tuple[int, int]]:
    return [(s.start_ms, s.end_ms) for s in response.segments if s.channel == channel]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def speech_span(call, turn) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Where the turn's speech really is: espeak pads each clip with silence, the planted span includes it.

    First to last 10 ms frame of the turn above SPEECH_DBFS on the turn's channel.
    """
    samples, rate = sf.read(str(call.path), dtype="float32", always_2d=True)
    x = samples[turn.start_ms * rate // 1000 : turn.end_ms * rate // 1000, call.channel_of(turn.speaker)]
    hop = rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    loud = np.nonzero(10 * np.log10((frames**2).mean(axis=1) + 1e-12) > SPEECH_DBFS)[0]
    return turn.start_ms + int(loud[0]) * 10, turn.start_ms + (int(loud[-1]) + 1) * 10


@dataclass
class Checked:
    response: pb.DetectSpeechResponse
    spans: list[tuple[int, int]]  # true speech span of each turn
    offsets: list[tuple[str, int]]  # ("start" | "end", detected - true) per turn (stereo calls only)


@pytest.fixture(scope="module")
def detected(vad, audio) -> dict[str, Checked]:  # type: ignore[no-untyped-def]
    """Every synthetic call through the service once; boundary offsets against the true speech."""
    out = {}
    for name, call in audio.calls.items():
        response = vad.detect(data=call.data, layout=call.layout)
        spans = [speech_span(call, turn) for turn in call.turns]
        offsets: list[tuple[str, int]] = []
        if call.agent_side != "mono":
            for turn, span in zip(call.turns, spans, strict=True):
                hits = [s for s in _segments(response, call.channel_of(turn.speaker)) if _overlap(s, span)]
                if hits:
                    offsets += [("start", hits[0][0] - span[0]), ("end", hits[-1][1] - span[1])]
        out[name] = Checked(response, spans, offsets)
    return out


@pytest.mark.parametrize(
    "name",
    [
        "clean_left",
        "clean_right",
        "noisy_left",
        "telephone_left",
        "telephone_right",
        "noisy_telephone",
        "mono",
        "mono_telephone",
    ],
)
def test_planted_turns_found_on_their_channel(name, audio, detected):  # type: ignore[no-untyped-def]
    call = audio.calls[name]
    response = detected[name].response
    stereo = call.agent_side != "mono"
    assert [ch.channel for ch in response.channels] == ([0, 1] if stereo else [0])
    for ch in response.channels:
        mine = _segments(response, ch.channel)
        assert ch.segment_count == len(mine)
        assert ch.speech_ms == sum(e - s for s, e in mine)
    if stereo:
        agent = call.channel_of("agent")
        assert response.channels[agent].role == c.SPEAKER_ROLE_AGENT
        assert response.channels[1 - agent].role == c.SPEAKER_ROLE_CUSTOMER
    else:
        assert response.channels[0].role == c.SPEAKER_ROLE_MIXED
    assert all(s.role == response.channels[s.channel].role for s in response.segments)
    starts = [s.start_ms for s in response.segments]
    assert starts == sorted(starts)
    assert abs(response.duration_ms - call.turns[-1].end_ms) <= 700  # the call ends one 600 ms gap after
    assert response.audio.sample_rate_hz == (8000 if call.telephone else 16000)
    assert response.audio.codec == ("ULAW" if call.telephone else "PCM_16")

    for turn, span in zip(call.turns, detected[name].spans, strict=True):
        ch = call.channel_of(turn.speaker)
        covered = sum(_overlap(s, span) for s in _segments(response, ch))
        assert covered >= MIN_COVERAGE * (span[1] - span[0]), (
            f"{name}: {turn.speaker} speech {span} only {covered} ms covered on channel {ch}: {_segments(response, ch)}"
        )
    for seg in response.segments:
        own = [
            (t.start_ms - SPURIOUS_TOLERANCE_MS, t.end_ms + SPURIOUS_TOLERANCE_MS)
            for t in call.turns
            if call.channel_of(t.speaker) == seg.channel
        ]
        assert any(_overlap((seg.start_ms, seg.end_ms), t) for t in own), (
            f"{name}: segment {seg.start_ms}-{seg.end_ms} on channel {seg.channel} lies in silence; turns {own}"
        )


def test_boundary_offsets(audio, detected):  # type: ignore[no-untyped-def]
    """Detected minus true boundaries. FSMN pads by design (a start goes window + lookback = 400 ms
    back, an end stays lookahead + part of the end silence after the last speech), so the offsets
    are mostly negative at starts and positive at ends; the bounds are on their absolute values."""
    groups = {
        "clean": [n for n, call in audio.calls.items() if call.noise == 0 and call.agent_side != "mono"],
        "noisy": [n for n, call in audio.calls.items() if call.noise > 0 and call.agent_side != "mono"],
    }
    report = []
    for group, names in groups.items():
        pairs = [o for n in names for o in detected[n].offsets]
        starts = [v for kind, v in pairs if kind == "start"]
        ends = [v for kind, v in pairs if kind == "end"]
        absolute = [abs(v) for _, v in pairs]
        median, worst = statistics.median(absolute), max(absolute)
        report.append(
            f"{group}: |offset| median {median:.0f} ms, worst {worst} ms over {len(pairs)} boundaries "
            f"(start median {statistics.median(starts):+.0f} ms, end median {statistics.median(ends):+.0f} ms)"
        )
        assert median <= MEDIAN_BOUND_MS and worst <= WORST_BOUND_MS, "; ".join(report)
    print("\nVAD boundary offsets vs true speech: " + "; ".join(report))


def test_silence_gives_no_segments(vad, audio):  # type: ignore[no-untyped-def]
    response = vad.detect(data=audio.path("silence").read_bytes(), layout=c.CHANNEL_LAYOUT_MONO)
    assert list(response.segments) == []
    assert response.duration_ms == 10_000
    assert [(ch.speech_ms, ch.segment_count) for ch in response.channels] == [(0, 0)]


def test_unspecified_layout_is_mono_for_one_channel(vad, audio, detected):  # type: ignore[no-untyped-def]
    response = vad.detect(data=audio.calls["mono"].data)
    assert response == detected["mono"].response


@pytest.mark.parametrize(
    ("name", "layout", "words"),
    [
        ("clean_left", c.CHANNEL_LAYOUT_UNSPECIFIED, "set channel_layout"),
        ("clean_left", c.CHANNEL_LAYOUT_MONO, "needs 1 channel"),
        ("mono", c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT, "needs 2 channel"),
    ],
)
def test_layout_must_fit_the_audio(vad, audio, name, layout, words):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(data=audio.calls[name].data, layout=layout)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details()


def test_long_segments_are_split(vad, audio):  # type: ignore[no-untyped-def]
    call = audio.calls["clean_left"]
    response = vad.detect(data=call.data, layout=call.layout, max_single_segment_ms=2000)
    assert response.segments
    assert all(s.end_ms - s.start_ms <= 2000 for s in response.segments)
    assert sum(1 for s in response.segments if s.end_ms - s.start_ms >= 1900) >= len(call.turns)


def test_silero_engine(vad, audio):  # type: ignore[no-untyped-def]
    call = audio.calls["clean_right"]
    response = vad.detect(data=call.data, layout=call.layout, engine=pb.VAD_ENGINE_SILERO)
    for turn in call.turns:
        span = speech_span(call, turn)
        covered = sum(_overlap(s, span) for s in _segments(response, call.channel_of(turn.speaker)))
        assert covered >= MIN_COVERAGE * (span[1] - span[0])


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"max_single_segment_ms": 10}, "max_single_segment_ms 10 is out of range"),
        ({"max_end_silence_ms": 999_999}, "max_end_silence_ms 999999 is out of range"),
        ({"speech_noise_threshold": 7.5}, "speech_noise_threshold 7.5 is out of range"),
        ({"engine": 9}, "not a known engine"),
    ],
)
def test_out_of_range_options(vad, audio, options, words):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(data=audio.calls["mono"].data, **options)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details()


# --------------------------------------------------------------------------- from S3


def test_object_ref_gives_the_same_answer(vad, audio, recordings, detected):  # type: ignore[no-untyped-def]
    call = audio.calls["telephone_left"]
    ref = recordings.put("acme", call.data)
    assert ref.version_id
    response = vad.detect(ref=ref, layout=call.layout)
    assert response == detected["telephone_left"].response
    assert response.audio.size_bytes == len(call.data)


def test_object_ref_sha_mismatch_is_data_loss(vad, audio, recordings):  # type: ignore[no-untyped-def]
    ref = recordings.put("acme", audio.calls["mono"].data)
    wrong = "0" * 64
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(ref=c.ObjectRef(bucket=ref.bucket, key=ref.key, version_id=ref.version_id, sha256=wrong))
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert ref.sha256 in err.value.details() and wrong in err.value.details()


def test_object_ref_missing_is_not_found(vad, audio, recordings):  # type: ignore[no-untyped-def]
    ref = recordings.put("acme", audio.calls["mono"].data)
    missing_key = c.ObjectRef(
        bucket=ref.bucket, key=ref.key.replace("/audio", "/nothing"), version_id=ref.version_id, sha256=ref.sha256
    )
    for bad in (missing_key,):
        with pytest.raises(grpc.RpcError) as err:
            vad.detect(ref=bad)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
        assert "does not exist" in err.value.details()


def test_object_ref_missing_version_is_not_found(vad, audio, recordings):  # type: ignore[no-untyped-def]
    ref = recordings.put("acme", audio.calls["mono"].data)
    other = recordings.put("acme", audio.calls["mono_telephone"].data)  # a real version id of another object
    bad = c.ObjectRef(bucket=ref.bucket, key=ref.key, version_id=other.version_id, sha256=ref.sha256)
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(ref=bad)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()


@pytest.mark.parametrize(
    ("mutate", "code", "words"),
    [
        (lambda r: {"key": r.key.replace("recordings/acme/", "recordings/globex/")}, "PERMISSION_DENIED", "acme"),
        (lambda r: {"key": "recordings/acme/../globex/x/audio"}, "PERMISSION_DENIED", "recordings/acme/"),
        (lambda r: {"bucket": "someone-elses"}, "PERMISSION_DENIED", "not a callscribe recordings bucket"),
        (lambda r: {"version_id": ""}, "INVALID_ARGUMENT", "version_id is required"),
        (lambda r: {"sha256": "abc"}, "INVALID_ARGUMENT", "not a lowercase hex SHA-256"),
    ],
)
def test_object_ref_refused(vad, audio, recordings, mutate, code, words):  # type: ignore[no-untyped-def]
    ref = recordings.put("acme", audio.calls["mono"].data)
    fields = {"bucket": ref.bucket, "key": ref.key, "version_id": ref.version_id, "sha256": ref.sha256}
    fields.update(mutate(ref))
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(ref=c.ObjectRef(**fields))
    assert err.value.code().name == code
    assert words in err.value.details()


def test_other_tenants_recording_is_permission_denied(vad, audio, recordings):  # type: ignore[no-untyped-def]
    ref = recordings.put("globex", audio.calls["mono"].data)
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(ref=ref, tenant="acme")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert vad.detect(ref=ref, tenant="globex").segments


def test_request_without_audio_is_invalid(vad):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        vad.detect()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "set the audio" in err.value.details()


def test_token_required(vad, audio):  # type: ignore[no-untyped-def]
    request = pb.DetectSpeechRequest(inline_audio=audio.calls["mono"].data)
    for md in ((), (("authorization", "Bearer nope"),)):
        with pytest.raises(grpc.RpcError) as err:
            vad.stub.DetectSpeech(request, metadata=md, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# --------------------------------------------------------------------------- bad input


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD_INPUT = {
    "corrupt": (lambda a: b"%PDF-1.7\n" + bytes(range(256)) * 400, "not a recognised audio file"),
    "truncated_wav": (lambda a: _truncated(a.calls["clean_left"].data), "truncated"),
    "alac_m4a": (lambda a: a.path("alac").read_bytes(), "unsupported MP4 codec ALAC"),
    "rate96k": (lambda a: a.path("rate96k").read_bytes(), "unsupported sample rate 96000 Hz"),
    "header_only": (lambda a: a.path("header_only").read_bytes(), "no audio frames"),
    "empty": (lambda a: b"", "inline_audio is empty"),
    "over_limit": (lambda a: b"RIFF" + b"\0" * (4 * 1024 * 1024), "over the 4 MiB limit"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_invalid_argument(vad, audio, detected, poll, case):  # type: ignore[no-untyped-def]
    make, words = BAD_INPUT[case]
    with pytest.raises(grpc.RpcError) as err:
        vad.detect(data=make(audio), layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert words in err.value.details()
    poll(lambda: not list(vad.spool_dir.glob("*.vad")), 10, "the temp file to be removed")
    call = audio.calls["clean_left"]
    assert vad.detect(data=call.data, layout=call.layout) == detected["clean_left"].response


# --------------------------------------------------------------------------- load


def test_concurrent_callers_get_their_own_answers(vad, audio, detected):  # type: ignore[no-untyped-def]
    names = list(audio.calls)[:8]
    assert len(names) == 8
    barrier = threading.Barrier(len(names))

    def one(name: str) -> pb.DetectSpeechResponse:
        call = audio.calls[name]
        barrier.wait(timeout=30)
        return vad.detect(data=call.data, layout=call.layout)

    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(one, names))
    for name, answer in zip(names, answers, strict=True):
        assert answer == detected[name].response, name


def test_busy_is_resource_exhausted(start_vad, audio, recordings, long_call):  # type: ignore[no-untyped-def]
    small = start_vad("busy", workers="1", queue_size="1")
    ref = recordings.put_file("acme", long_call(audio, 10))
    callers = 5
    barrier = threading.Barrier(callers)

    def one(_: int) -> tuple[str, float, str]:
        barrier.wait(timeout=30)
        started = time.monotonic()
        try:
            small.detect(ref=ref, layout=c.CHANNEL_LAYOUT_MONO)
            return "OK", time.monotonic() - started, ""
        except grpc.RpcError as exc:
            return exc.code().name, time.monotonic() - started, exc.details()

    with ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(one, range(callers)))
    codes = sorted(code for code, _, _ in results)
    assert codes == ["OK", "OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"], results
    for code, seconds, details in results:
        if code == "RESOURCE_EXHAUSTED":
            assert "VAD busy" in details and "retry with backoff" in details
            assert seconds < 1.0, f"a busy answer took {seconds:.2f} s: it must come at once"
    # Once the load is gone the instance serves again.
    assert small.detect(data=audio.calls["mono"].data).segments


def test_worker_crash_is_unavailable_and_the_pool_recovers(start_vad, audio, recordings, long_call, poll):  # type: ignore[no-untyped-def]
    crashy = start_vad("crash", workers="1", queue_size="1")
    ref = recordings.put_file("acme", long_call(audio, 10))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(crashy.detect, ref=ref, layout=c.CHANNEL_LAYOUT_MONO)
        server = psutil.Process(crashy.process.pid)

        def workers() -> list[psutil.Process]:
            return [p for p in server.children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]

        time.sleep(1.0)  # mid-request (10 minutes of audio take a few seconds)
        for worker in poll(workers, 10, "a worker process"):
            worker.kill()
        with pytest.raises(grpc.RpcError) as err:
            pending.result(timeout=60)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "worker process died" in err.value.details()
    assert crashy.detect(data=audio.calls["mono"].data).segments


def test_metrics(vad, detected):  # type: ignore[no-untyped-def]
    text = urllib.request.urlopen(vad.metrics_url, timeout=10).read().decode()
    for name in (
        "callscribe_vad_audio_seconds_total",
        "callscribe_vad_rtf_bucket",
        "callscribe_vad_segments_total",
        "callscribe_vad_queue_depth",
    ):
        assert name in text, name
    assert 'callscribe_vad_errors_total{reason="invalid_argument"}' in text or "callscribe_vad_errors" in text


# --------------------------------------------------------------------------- long audio


# 2 hours took 65 s on the 2-core CI machine (RTF ~0.009): 30 minutes keeps the suite fast; the
# memory bound is per block, not per length (bench/vad.py measures the 2-hour file).
LONG_MINUTES = 30
RSS_HEADROOM_MIB = 150


@pytest.mark.long_audio
def test_long_recording_memory_is_bounded(vad, audio, recordings, long_call):  # type: ignore[no-untyped-def]
    path = long_call(audio, LONG_MINUTES)
    ref = recordings.put_file("acme", path)
    vad.detect(data=audio.calls["mono_telephone"].data)  # every worker warm before the baseline
    baseline = vad.rss_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, vad.rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        response = vad.detect(ref=ref, layout=c.CHANNEL_LAYOUT_MONO, timeout=600)
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - started
    growth = (peak - baseline) / 2**20
    print(
        f"\n{LONG_MINUTES} min mono 8 kHz mu-law ({path.stat().st_size / 2**20:.0f} MiB) in {seconds:.1f} s "
        f"(RTF {seconds / (LONG_MINUTES * 60):.4f}); RSS baseline {baseline / 2**20:.0f} MiB, "
        f"peak {peak / 2**20:.0f} MiB (+{growth:.0f} MiB)"
    )
    assert response.duration_ms == LONG_MINUTES * 60_000
    # One call per minute: its turns are found every minute.
    assert len({s.start_ms // 60_000 for s in response.segments}) == LONG_MINUTES
    assert growth < RSS_HEADROOM_MIB, f"RSS grew by {growth:.0f} MiB processing {LONG_MINUTES} min"
