"""The ASR service end to end: a real subprocess (Whisper base int8 on the CPU), real S3 (SeaweedFS).

Whisper base on two CPU threads costs ~2 s per segment whatever its length (every window is padded to
30 s), so the tests transcribe few segments; the refusals never reach the model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from asr.conftest import (
    CALL_TIMEOUT_S,
    SENTENCES,
    Asr,
    Recordings,
    Speech,
    StartAsr,
    pcm_segment,
    wait_for,
    wer,
)
from callscribe.stack.services import service_env
from callscribe.v1 import asr_pb2 as pb
from callscribe.v1 import common_pb2 as c

MAX_WER = 0.10
COUNTED = [
    ("callscribe_asr_segments_total", 'engine="whisper"'),
    ("callscribe_asr_audio_seconds_total",),
    ("callscribe_asr_batch_size_sum",),
    ("callscribe_asr_inference_seconds_count",),
]


def ref_segment(ref: c.ObjectRef, channel: int, start_ms: int, end_ms: int, segment_id: str = "") -> pb.AsrSegment:
    return pb.AsrSegment(segment_id=segment_id, object=ref, channel=channel, start_ms=start_ms, end_ms=end_ms)


def test_health_is_not_serving_until_the_replicas_are_warm(asr: Asr) -> None:
    seen = asr.health_seen
    assert seen[-1] == "SERVING"
    assert "NOT_SERVING" in seen, f"health answers seen during the start: {seen}"
    assert seen.index("NOT_SERVING") < seen.index("SERVING")


def test_inline_pcm_segments_are_transcribed_in_order(asr: Asr, speech_audio: Speech) -> None:
    picked = [0, 1, 2, 3]
    segments = [pcm_segment(speech_audio.pcm[i], f"s{i}") for i in picked]
    before = {name: asr.metric(*name) for name in COUNTED}
    response = asr.transcribe(segments, language=c.LANGUAGE_EN)
    delta = {name: asr.metric(*name) - before[name] for name in COUNTED}
    assert delta[("callscribe_asr_segments_total", 'engine="whisper"')] == len(picked)
    audio_s = sum(len(speech_audio.pcm[i]) for i in picked) / 2 / 16000
    assert delta[("callscribe_asr_audio_seconds_total",)] == pytest.approx(audio_s, rel=1e-3)
    assert delta[("callscribe_asr_batch_size_sum",)] == len(picked)
    assert delta[("callscribe_asr_inference_seconds_count",)] >= 1
    results = list(response.results)
    assert [r.segment_id for r in results] == [f"s{i}" for i in picked]
    assert [r.index for r in results] == list(range(len(picked)))
    for r in results:
        assert r.engine == "whisper" and r.model
        assert r.language == c.LANGUAGE_EN
        assert r.avg_logprob < 0
    hypotheses = [r.text for r in results]
    score = wer([SENTENCES[i] for i in picked], hypotheses)
    assert score <= MAX_WER, f"WER {score:.2%}: {hypotheses}"


def test_object_ref_segments_of_a_stereo_call(asr: Asr, speech_audio: Speech, recordings: Recordings) -> None:
    ref = recordings.put("acme", speech_audio.call_path.read_bytes())
    turns = speech_audio.call_turns
    segments = [ref_segment(ref, Speech.channel_of(t), t.start_ms, t.end_ms, f"turn{i}") for i, t in enumerate(turns)]
    response = asr.transcribe(segments, language=c.LANGUAGE_EN, word_timestamps=True)
    results = list(response.results)
    assert [r.segment_id for r in results] == [f"turn{i}" for i in range(len(turns))]
    hypotheses = [r.text for r in results]
    score = wer([t.text for t in turns], hypotheses)
    assert score <= MAX_WER, f"WER {score:.2%}: {hypotheses}"
    for turn, result in zip(turns, results, strict=True):
        assert result.tokens, f"no word times for {result.text!r}"
        for token in result.tokens:  # in the call's time, inside the segment (500 ms slack)
            assert turn.start_ms - 500 <= token.start_ms <= token.end_ms <= turn.end_ms + 500, (turn, token)


def test_stream_sends_each_result_with_its_index(asr: Asr, speech_audio: Speech) -> None:
    request = pb.TranscribeRequest(
        segments=[pcm_segment(speech_audio.pcm[8], "a"), pcm_segment(speech_audio.pcm[9], "b")],
        language=c.LANGUAGE_EN,
    )
    results = list(asr.stub.TranscribeStream(request, metadata=asr.auth("acme"), timeout=CALL_TIMEOUT_S))
    assert sorted((r.index, r.segment_id) for r in results) == [(0, "a"), (1, "b")]
    by_index = {r.index: r.text for r in results}
    score = wer([SENTENCES[8], SENTENCES[9]], [by_index[0], by_index[1]])
    assert score <= MAX_WER, by_index


def test_concurrent_callers_each_get_their_own_results(asr: Asr, speech_audio: Speech) -> None:
    """8 callers at once, one sentence each: batched together, every caller gets its own transcript."""
    batches_before = asr.metric("callscribe_asr_batch_size_count")
    segments_before = asr.metric("callscribe_asr_batch_size_sum")
    callers = 8
    start = threading.Barrier(callers)

    def call(i: int) -> pb.TranscribeResponse:
        start.wait()
        return asr.transcribe([pcm_segment(speech_audio.pcm[i], f"caller{i}")], language=c.LANGUAGE_EN)

    with ThreadPoolExecutor(callers) as pool:
        responses = list(pool.map(call, range(callers)))
    texts = []
    for i, response in enumerate(responses):
        assert [r.segment_id for r in response.results] == [f"caller{i}"]
        texts.append(response.results[0].text)
    score = wer(list(SENTENCES[:callers]), texts)
    assert score <= MAX_WER, f"WER {score:.2%}: {texts}"
    for i, text in enumerate(texts):  # each transcript is closest to its own sentence
        assert min(range(callers), key=lambda j: wer([SENTENCES[j]], [text])) == i, (i, text)
    batches = asr.metric("callscribe_asr_batch_size_count") - batches_before
    segments = asr.metric("callscribe_asr_batch_size_sum") - segments_before
    assert segments == callers
    assert batches < callers, "the concurrent requests were never batched together"


def test_a_bad_segment_fails_only_its_request(
    asr: Asr, speech_audio: Speech, recordings: Recordings, tmp_path: Path
) -> None:
    """A request whose segment cannot be decoded (truncated FLAC) fails with a clear status; the
    requests sent at the same time are answered."""
    flac = tmp_path / "call.flac"
    subprocess.run(["sox", str(speech_audio.call_path), str(flac)], check=True, capture_output=True)
    data = flac.read_bytes()
    truncated = recordings.put("acme", data[: len(data) // 2])
    last = speech_audio.call_turns[-1]

    def bad() -> grpc.RpcError | None:
        segments = [
            pcm_segment(speech_audio.pcm[4], "good"),
            ref_segment(truncated, Speech.channel_of(last), last.start_ms, last.end_ms, "lost"),
        ]
        try:
            asr.transcribe(segments, language=c.LANGUAGE_EN)
        except grpc.RpcError as exc:
            return exc
        return None

    def good(i: int) -> str:
        return str(asr.transcribe([pcm_segment(speech_audio.pcm[i])], language=c.LANGUAGE_EN).results[0].text)

    with ThreadPoolExecutor(3) as pool:
        failed = pool.submit(bad)
        answers = [pool.submit(good, i) for i in (4, 5)]
        error = failed.result()
        texts = [a.result() for a in answers]
    assert error is not None, "the request with the truncated recording succeeded"
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "segment 1" in error.details() and "truncated" in error.details()
    assert wer([SENTENCES[4], SENTENCES[5]], texts) <= MAX_WER, texts


# --------------------------------------------------------------------------- refusals (nothing is queued)

ONE_MINUTE_PLUS = b"\x00\x00" * 16000 * 61


@pytest.mark.parametrize(
    ("name", "fields", "words"),
    [
        ("no segments", {"segments": []}, "segments is empty"),
        ("empty pcm", {"segments": [pcm_segment(b"")]}, "empty"),
        ("odd pcm bytes", {"segments": [pcm_segment(b"\x00\x01\x02")]}, "odd"),
        ("8 kHz pcm", {"segments": [pcm_segment(b"\x00\x00" * 800, rate=8000)]}, "16000"),
        ("pcm rate unset", {"segments": [pcm_segment(b"\x00\x00" * 800, rate=0)]}, "16000"),
        ("segment over 60 s", {"segments": [pcm_segment(ONE_MINUTE_PLUS)]}, "longer than the 60 s"),
        ("no audio", {"segments": [pb.AsrSegment(segment_id="x")]}, "set its audio"),
        ("other engine", {"engine": pb.ASR_ENGINE_FUNASR}, "not served here"),
        ("unknown engine", {"engine": 42}, "not a known AsrEngine"),
        ("unknown language", {"language": 42}, "not a known Language"),
        ("other model", {"model": "large-v3"}, "not loaded here"),
        ("nan hotword weight", {"hotwords": [c.Hotword(text="refund", weight=float("nan"))]}, "weight"),
    ],
)
def test_bad_requests_are_invalid_argument(
    asr: Asr, speech_audio: Speech, name: str, fields: dict[str, object], words: str
) -> None:
    request = pb.TranscribeRequest(segments=[pcm_segment(speech_audio.pcm[0])])
    for key, value in fields.items():
        if key == "segments":
            del request.segments[:]
            request.segments.extend(value)  # type: ignore[arg-type]
        elif key == "hotwords":
            request.hotwords.extend(value)  # type: ignore[arg-type]
        else:
            setattr(request, key, value)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        asr.stub.Transcribe(request, metadata=asr.auth("acme"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err.value.details())
    assert words in err.value.details(), err.value.details()
    assert time.monotonic() - started < 5, "a refusal must not wait for the model"


def test_bad_object_segments(asr: Asr, speech_audio: Speech, recordings: Recordings) -> None:
    ref = recordings.put("acme", speech_audio.call_path.read_bytes())
    long_call_ms = speech_audio.call_turns[-1].end_ms

    def refused(segment: pb.AsrSegment, tenant: str = "acme") -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as err:
            asr.transcribe([segment], tenant=tenant, timeout=30)
        return err.value

    zero = refused(ref_segment(ref, 0, 1000, 1000))
    assert zero.code() == grpc.StatusCode.INVALID_ARGUMENT and "empty" in zero.details()
    over = refused(ref_segment(ref, 0, 0, 61_000))
    assert over.code() == grpc.StatusCode.INVALID_ARGUMENT and "longer than" in over.details()
    channel = refused(ref_segment(ref, 2, 0, 1000))
    assert channel.code() == grpc.StatusCode.INVALID_ARGUMENT and "channel 2" in channel.details()
    past = refused(ref_segment(ref, 0, long_call_ms + 5000, long_call_ms + 6000))
    assert past.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside the recording" in past.details()

    other = refused(ref_segment(ref, 0, 0, 1000), tenant="globex")
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED, other.details()
    assert "recordings/globex/" in other.details()

    wrong = c.ObjectRef()
    wrong.CopyFrom(ref)
    wrong.sha256 = "0" * 64
    lost = refused(ref_segment(wrong, 0, 0, 1000))
    assert lost.code() == grpc.StatusCode.DATA_LOSS, lost.details()
    assert ref.sha256 in lost.details()

    missing = c.ObjectRef()
    missing.CopyFrom(ref)
    missing.key = "recordings/acme/nothing-here/audio"
    gone = refused(ref_segment(missing, 0, 0, 1000))
    assert gone.code() == grpc.StatusCode.NOT_FOUND, gone.details()


def test_unauthenticated_call_is_refused(asr: Asr, speech_audio: Speech) -> None:
    request = pb.TranscribeRequest(segments=[pcm_segment(speech_audio.pcm[0])])
    with pytest.raises(grpc.RpcError) as err:
        asr.stub.Transcribe(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# --------------------------------------------------------------------------- other instances


def test_full_queue_is_resource_exhausted_at_once(start_asr: StartAsr, speech_audio: Speech) -> None:
    busy = start_asr("tiny-queue", max_queue_segments="3", max_batch_size="1", max_wait_ms="0", language="en")
    # three requests (Whisper packs one request's segments into one window: a batch of 1 would take them all)
    waiting = [
        busy.stub.Transcribe.future(
            pb.TranscribeRequest(segments=[pcm_segment(speech_audio.pcm[i])]),
            metadata=busy.auth("acme"),
            timeout=CALL_TIMEOUT_S,
        )
        for i in range(3)
    ]
    try:
        wait_for(lambda: busy.metric("callscribe_asr_queue_depth") == 2, 30, "1 segment running, 2 queued")
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            busy.transcribe([pcm_segment(speech_audio.pcm[3]), pcm_segment(speech_audio.pcm[4])], timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        assert "retry" in err.value.details()
        assert time.monotonic() - started < 3.0, "RESOURCE_EXHAUSTED must come at once"
        assert busy.metric("callscribe_asr_errors_total", 'reason="resource_exhausted"') == 1
    finally:
        for future in waiting:
            future.cancel()  # queued segments are dropped
    wait_for(lambda: busy.metric("callscribe_asr_queue_depth") == 0, 30, "the cancelled segments to leave the queue")


@pytest.mark.parametrize("model", ["/nonexistent/whisper-model", "empty-dir"])
def test_unloadable_model_exits_non_zero(asr_state, tmp_path: Path, model: str) -> None:  # type: ignore[no-untyped-def]
    if model == "empty-dir":
        model = str(tmp_path / "empty-model")
        Path(model).mkdir()
    env = service_env("asr", asr_state("bad-model"))
    env.update({"ASR_MODEL": model, "ASR_DEVICES": "cpu"})
    proc = subprocess.run(
        [sys.executable, "-m", "callscribe.asr"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "not serving" in output and model in output, output


def test_gpu_replicas_when_a_gpu_is_present(start_asr: StartAsr, speech_audio: Speech) -> None:
    try:
        import ctranslate2

        gpus = ctranslate2.get_cuda_device_count()
    except ImportError:
        gpus = 0
    if gpus == 0:
        pytest.skip("no CUDA device: the GPU replica path is exercised only where one is visible")
    gpu = start_asr("gpu", devices="auto", language="en")
    results = gpu.transcribe([pcm_segment(speech_audio.pcm[i], str(i)) for i in range(4)]).results
    assert wer(list(SENTENCES[:4]), [r.text for r in results]) <= MAX_WER


# --------------------------------------------------------------------------- metrics


def test_metrics(asr: Asr) -> None:
    invalid = asr.metric("callscribe_asr_errors_total", 'reason="invalid_argument"')
    with pytest.raises(grpc.RpcError):
        asr.transcribe([])
    assert asr.metric("callscribe_asr_errors_total", 'reason="invalid_argument"') == invalid + 1
    assert asr.metric("callscribe_asr_queue_depth") == 0
    body = urllib.request.urlopen(asr.metrics_url, timeout=5).read().decode()
    for family in ("callscribe_asr_batch_size_bucket", "callscribe_asr_inference_seconds_bucket",
                   "callscribe_asr_grpc_requests_total"):  # fmt: skip
        assert family in body, family


# --------------------------------------------------------------------------- FunASR through the service


def test_funasr_service_runs_the_batched_path_with_its_batch_size_and_precision(
    start_asr: StartAsr, speech_audio: Speech, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """ASR_MAX_BATCH_SIZE and ASR_PRECISION reach the FunASR engine (it used to keep FunASR's own 16)."""
    from callscribe.asr.engines.funasr_testmodel import build_random_paraformer

    model = build_random_paraformer(tmp_path_factory.mktemp("svc-paraformer"), size="tiny", seed=5)
    funasr = start_asr(
        "funasr-bf16", engine="funasr", model=str(model), precision="bf16", max_batch_size="48", log_level="INFO"
    )
    segments = [pcm_segment(speech_audio.pcm[i], f"s{i}") for i in range(3)]
    response = funasr.stub.Transcribe(
        pb.TranscribeRequest(segments=segments, language=c.LANGUAGE_ZH, word_timestamps=True),
        metadata=funasr.auth("acme"),
        timeout=120,
    )
    results = list(response.results)
    assert [r.segment_id for r in results] == ["s0", "s1", "s2"]
    assert all(r.engine == "funasr" and r.text for r in results)
    assert all(r.tokens for r in results), "word timestamps were asked for"
    text = Path(funasr.process.log_path).read_text()
    assert "batches of up to 48, batched Paraformer path, bf16" in text, text[-2000:]
