"""One recording through the pipeline: verify, VAD, ASR, index. Every stage is safe to re-run.

The worker (``worker.py``) decides what happens on failure; this module only says which stage
failed, why, and whether trying again can help (``StageError.retryable``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from callscribe.ingest.convert import audio_pb, metadata_pb, object_pb
from callscribe.ingest.model import ArchivedRecording, Job
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.errors import DomainError, ErrorKind
from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.v1 import asr_pb2, asr_pb2_grpc, common_pb2, indexer_pb2, indexer_pb2_grpc, vad_pb2, vad_pb2_grpc

log = logging.getLogger(__name__)

# Codes after which the same request can succeed later (a server restarting, overloaded, or slow).
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAUTHENTICATED,  # a token being rotated; after max attempts it is a dead letter anyway
}


class StageError(Exception):
    def __init__(self, stage: str, reason: str, retryable: bool) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Timeouts:
    vad_s: float
    asr_s: float
    indexer_s: float


@dataclass(frozen=True)
class Outcome:
    segments: int
    utterances: int
    audio_ms: int


class Pipeline:
    """Drives one recording through VAD, ASR and the indexer, acting for its tenant."""

    def __init__(
        self,
        store: S3RecordingStore,
        vad: vad_pb2_grpc.VadServiceStub,
        asr: asr_pb2_grpc.AsrServiceStub,
        indexer: indexer_pb2_grpc.IndexerServiceStub,
        token: str,
        timeouts: Timeouts,
    ) -> None:
        self._store = store
        self._vad = vad
        self._asr = asr
        self._indexer = indexer
        self._token = token
        self._timeouts = timeouts

    def process(self, job: Job, progress: Callable[[str], None]) -> Outcome:
        record = self._verify(job)
        metadata = metadata_pb(record)  # layout, language and hotwords as the contracts spell them
        ref = common_pb2.ObjectRef(bucket=job.bucket, key=job.key, version_id=job.version_id, sha256=job.sha256)
        auth = self._auth(job.tenant)
        progress("vad")
        speech = self._call(
            "vad",
            self._vad.DetectSpeech,
            vad_pb2.DetectSpeechRequest(object=ref, channel_layout=metadata.channel_layout),
            auth,
            self._timeouts.vad_s,
        )
        progress("asr")
        results: list[asr_pb2.SegmentResult] = []
        if speech.segments:
            request = asr_pb2.TranscribeRequest(
                segments=[
                    asr_pb2.AsrSegment(
                        segment_id=f"{seg.channel}:{seg.start_ms}",
                        object=ref,
                        start_ms=seg.start_ms,
                        end_ms=seg.end_ms,
                        channel=seg.channel,
                        role=seg.role,
                    )
                    for seg in speech.segments
                ],
                language=metadata.language or common_pb2.LANGUAGE_AUTO,
                hotwords=metadata.hotwords,
                word_timestamps=True,
            )
            reply = self._call("asr", self._asr.Transcribe, request, auth, self._timeouts.asr_s)
            results = sorted(reply.results, key=lambda r: r.index)
            if [r.index for r in results] != list(range(len(speech.segments))):
                raise StageError("asr", f"{len(results)} results for {len(speech.segments)} segments", True)
        progress("indexing")
        call = self._call_document(record, metadata, speech.segments, results)
        self._call(
            "indexing", self._indexer.IndexCall, indexer_pb2.IndexCallRequest(call=call), auth, self._timeouts.indexer_s
        )
        return Outcome(len(speech.segments), len(call.utterances), int(speech.duration_ms))

    def _verify(self, job: Job) -> ArchivedRecording:
        """The archived record must exist and carry the job's fingerprint; VAD then checks the bytes against it."""
        try:
            record = self._store.find(job.tenant, job.recording_id)
        except DomainError as exc:
            raise StageError("verify", exc.message, retryable=exc.kind is ErrorKind.UNAVAILABLE) from exc
        if record is None or record.object is None:
            raise StageError("verify", f"recording {job.recording_id} is not in the archive", retryable=False)
        if record.sha256 != job.sha256 or record.object.sha256 != job.sha256:
            raise StageError(
                "verify",
                f"FINGERPRINT MISMATCH: the archive says SHA-256 {record.sha256}, the job says {job.sha256}",
                retryable=False,
            )
        return record

    def _auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"), (ACTING_TENANT_HEADER, tenant))

    @staticmethod
    def _call(stage, method, request, metadata, timeout):  # type: ignore[no-untyped-def]
        try:
            return method(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            raise StageError(stage, f"{code.name}: {exc.details()}", retryable=code in RETRYABLE) from exc

    @staticmethod
    def _call_document(
        record: ArchivedRecording,
        metadata: common_pb2.RecordingMetadata,
        segments: list,
        results: list[asr_pb2.SegmentResult],
    ) -> indexer_pb2.Call:
        if not metadata.HasField("started_at"):
            metadata.started_at.FromDatetime(record.archived_at)
        call = indexer_pb2.Call(
            recording_id=record.recording_id,
            tenant=record.tenant,
            metadata=metadata,
            audio=audio_pb(record),
            object=object_pb(record),
            tier=common_pb2.STORAGE_TIER_HOT if record.tier == "HOT" else common_pb2.STORAGE_TIER_COLD,
        )
        for seg, result in zip(segments, results, strict=True):
            if not result.text.strip():
                continue
            call.utterances.append(
                indexer_pb2.Utterance(
                    channel=seg.channel,
                    role=seg.role,
                    start_ms=seg.start_ms,
                    end_ms=seg.end_ms,
                    text=result.text.strip(),
                    confidence=result.confidence,
                    language=result.language,
                    tokens=result.tokens,
                    engine=result.engine,
                )
            )
        return call
