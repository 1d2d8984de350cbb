"""The pipeline worker's pure parts: failure kinds, ASR chunking, admission, the progress line."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import grpc
import pytest

from callscribe.ingest.convert import metadata_pb
from callscribe.ingest.model import ArchivedRecording, AudioFacts, RecordingInfo, StageAdvance
from callscribe.ingest.pipeline.runner import (
    FAULT,
    PRESSURE,
    TRANSIENT,
    UNANALYSABLE,
    Chunking,
    StageError,
    _asr_detail,
    call_document,
    chunks,
    kind_of,
)
from callscribe.ingest.pipeline.worker import Admission
from callscribe.v1 import asr_pb2, common_pb2, vad_pb2


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


AGENT, CUSTOMER = common_pb2.SPEAKER_ROLE_AGENT, common_pb2.SPEAKER_ROLE_CUSTOMER


def test_the_call_carries_the_vads_diarization_and_each_utterances_voice() -> None:
    """A diarized mono call reaches the indexer with the VAD's diarization and, on every utterance, the voice,
    role and role confidence of its segment; segments the ASR heard nothing in make no utterance."""
    record = ArchivedRecording(
        "ab" * 16, "acme", RecordingInfo("acme", "call-1", "agent-1", zh_script="traditional"),
        AudioFacts("WAV", "PCM_16", 8000, 1, 80_000, 10_000), "MONO", 160_044, "cd" * 32,
        datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
    )  # fmt: skip
    diarization = common_pb2.Diarization(
        status=common_pb2.DIARIZATION_STATUS_DIARIZED,
        agent_rule="first_speaker",
        speakers=[common_pb2.SpeakerSpeech(speaker=1, role=common_pb2.SPEAKER_ROLE_AGENT, speech_ms=3000)],
    )
    speech = vad_pb2.DetectSpeechResponse(
        segments=[
            common_pb2.Segment(role=AGENT, start_ms=0, end_ms=3000, speaker=1, role_confidence=0.9),
            common_pb2.Segment(role=CUSTOMER, start_ms=3500, end_ms=5000, speaker=2, role_confidence=0.6),
            common_pb2.Segment(role=AGENT, start_ms=6000, end_ms=6400, speaker=1, role_confidence=0.8),
        ],
        diarization=diarization,
    )  # fmt: skip
    results = [asr_pb2.SegmentResult(text=t) for t in (" 您好 ", "我要退费", " ")]
    call = call_document(record, metadata_pb(record), speech, results)
    assert call.diarization == diarization
    assert [(u.text, u.role, u.speaker, round(u.role_confidence, 2)) for u in call.utterances] == [
        ("您好", AGENT, 1, 0.9),
        ("我要退费", CUSTOMER, 2, 0.6),
    ]
    assert call.metadata.started_at.ToJsonString() == "2026-12-05T09:00:00Z"  # none given: the archive time
    assert call.metadata.zh_script == "traditional"  # the upload's script reaches the indexer
    stereo = call_document(record, metadata_pb(record), vad_pb2.DetectSpeechResponse(), [])
    assert not stereo.HasField("diarization") and not stereo.utterances
    assert not stereo.HasField("moved_at") and stereo.integrity == common_pb2.INTEGRITY_UNSPECIFIED
    # A moved and audited recording indexed again keeps where it is and what the audit found.
    moved = replace(record, tier="COLD", moved_at=datetime(2026, 12, 6, tzinfo=UTC))
    again = call_document(
        moved,
        metadata_pb(moved),
        vad_pb2.DetectSpeechResponse(),
        [],
        {"integrity": "MISMATCH", "verified_at": "1765000000"},
    )
    assert again.tier == common_pb2.STORAGE_TIER_COLD and again.moved_at.ToJsonString() == "2026-12-06T00:00:00Z"
    assert again.integrity == common_pb2.INTEGRITY_MISMATCH and again.verified_at.seconds == 1765000000
