"""The pipeline worker's pure parts: failure kinds, ASR chunking, admission, the progress line."""

from __future__ import annotations

import grpc
import pytest

from callscribe.ingest.model import StageAdvance
from callscribe.ingest.pipeline.runner import (
    FAULT,
    PRESSURE,
    TRANSIENT,
    UNANALYSABLE,
    Chunking,
    StageError,
    _asr_detail,
    chunks,
    kind_of,
)
from callscribe.ingest.pipeline.worker import Admission
from callscribe.v1 import common_pb2


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, PRESSURE),  # "ASR busy": backpressure, never counted
        (grpc.StatusCode.UNAVAILABLE, PRESSURE),  # restarting, stopping, unreachable
        (grpc.StatusCode.DEADLINE_EXCEEDED, TRANSIENT),
        (grpc.StatusCode.INTERNAL, TRANSIENT),
        (grpc.StatusCode.CANCELLED, TRANSIENT),
        (grpc.StatusCode.INVALID_ARGUMENT, FAULT),  # the recording itself: no retry helps
        (grpc.StatusCode.DATA_LOSS, FAULT),
        (grpc.StatusCode.NOT_FOUND, FAULT),
    ],
)
def test_failure_kinds(code: grpc.StatusCode, kind: str) -> None:
    assert kind_of(code) == kind
    assert StageError("asr", "x", kind).retryable is (kind != FAULT)


def test_audio_the_services_refuse_is_not_analysable_and_never_retried() -> None:
    assert kind_of(grpc.StatusCode.INVALID_ARGUMENT, "vad") == UNANALYSABLE
    assert kind_of(grpc.StatusCode.INVALID_ARGUMENT, "asr") == UNANALYSABLE
    assert kind_of(grpc.StatusCode.INVALID_ARGUMENT, "indexing") == FAULT  # a bad document is a bug: dead letter
    assert kind_of(grpc.StatusCode.RESOURCE_EXHAUSTED, "vad") == PRESSURE
    assert StageError("vad", "x", UNANALYSABLE).retryable is False


def _segments(*lengths_ms: int) -> list[common_pb2.Segment]:
    out, at = [], 0
    for length in lengths_ms:
        out.append(common_pb2.Segment(start_ms=at, end_ms=at + length))
        at += length + 500
    return out


def test_chunks_are_bounded_by_speech_and_by_segments_and_cover_every_segment_once() -> None:
    segs = _segments(*([10_000] * 30))  # 300 s of speech in 10 s segments
    parts = chunks(segs, Chunking(seconds=60, segments=32))
    assert [len(p) for p in parts] == [6, 6, 6, 6, 6]
    assert [i for p in parts for i in p] == list(range(30))
    parts = chunks(segs, Chunking(seconds=1000, segments=4))
    assert [len(p) for p in parts] == [4] * 7 + [2]


def test_a_segment_longer_than_a_chunk_makes_its_own_chunk_and_none_is_empty() -> None:
    segs = _segments(5_000, 200_000, 5_000)
    assert [list(p) for p in chunks(segs, Chunking(seconds=60, segments=32))] == [[0], [1], [2]]
    assert chunks([], Chunking()) == []


def test_admission_halves_once_per_burst_and_grows_back_by_successes() -> None:
    now = [0.0]
    adm = Admission(8, cooldown_s=1.0, clock=lambda: now[0])
    assert adm.limit == 8
    adm.pressure()
    adm.pressure()  # the same burst of refusals: counted once
    assert adm.limit == 4
    now[0] = 1.5
    adm.pressure()
    now[0] = 3.0
    adm.pressure()
    now[0] = 4.5
    adm.pressure()
    assert adm.limit == 1  # never below one job
    for _ in range(20):
        adm.success()
    assert adm.limit == 8  # never above the configured concurrency


def test_the_progress_line_says_chunk_speech_percent_and_an_estimate() -> None:
    assert _asr_detail(0, 10, 0, 310_000, 0.0) == "chunk 1/10, 0 of 310 s of speech (0%)"
    line = _asr_detail(3, 10, 93_000, 310_000, 72.3)
    assert line == "chunk 4/10, 93 of 310 s of speech (30%), about 72 s left"


def test_stage_progress_round_trips_through_the_state_hash() -> None:
    advance = StageAdvance(93_000, 310_000, 72.25, 3, 10)
    fields = advance.fields()
    assert all(isinstance(v, str) for v in fields.values())  # what Redis gives back
    assert StageAdvance.from_fields({"state": "asr", **fields}) == StageAdvance(93_000, 310_000, 72.2, 3, 10)
    assert StageAdvance.from_fields({"state": "queued"}) is None
