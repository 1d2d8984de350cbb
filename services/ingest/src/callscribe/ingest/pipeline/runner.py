"""One recording through the pipeline: verify, VAD, ASR, index. Every stage is safe to re-run.

The worker (``worker.py``) decides what happens on failure; this module only says which stage
failed, why, and what kind of failure it was (``StageError.kind``): a fault of the recording (no retry
helps), a transient failure (a retry may help; it counts toward the dead letters), pressure (the
service is busy, restarting or stopping: no fault of the recording, never counted), or released (this
worker is stopping and gives the job back).

Work done is kept (``WorkStore``): VAD's segments and the ASR results of each finished chunk are
saved with the job's progress under deterministic keys, so a retry starts where the last try
stopped. A long call is transcribed as a sequence of bounded chunks (at most ``chunk_seconds`` of
speech and ``chunk_segments`` segments each), so the ASR batcher serves other calls between them
and no single request can exceed its queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from callscribe.audio.policy import declared_raw_format
from callscribe.ingest.convert import audio_pb, audit_finding, metadata_pb, object_pb
from callscribe.ingest.model import ArchivedRecording, Job, StageAdvance
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.errors import DomainError, ErrorKind
from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.v1 import asr_pb2, asr_pb2_grpc, common_pb2, indexer_pb2, indexer_pb2_grpc, vad_pb2, vad_pb2_grpc

log = logging.getLogger(__name__)

# Kinds of failure (StageError.kind).
FAULT = "fault"  # of the recording: no retry can help
TRANSIENT = "transient"  # a retry may help; counts toward the dead letters
PRESSURE = "pressure"  # the service is busy, restarting or stopping: wait, never counted
UNANALYSABLE = "unanalysable"  # VAD or ASR refuse the audio itself: kept as sent, final, not a dead letter
RELEASED = "released"  # this worker is stopping: the job goes back to the queue, never counted

# The service says it cannot take the request now (overloaded, restarting, shutting down).
PRESSURE_CODES = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
# Codes after which the same request can succeed later.
TRANSIENT_CODES = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAUTHENTICATED,  # a token being rotated; after max attempts it is a dead letter anyway
}
_POLL_S = 0.2  # how often a call in flight looks whether the worker is stopping


class StageError(Exception):
    def __init__(self, stage: str, reason: str, kind: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind not in (FAULT, UNANALYSABLE)


# Stages that read the audio: their INVALID_ARGUMENT is about the recording's bytes (or its layout).
_AUDIO_STAGES = ("vad", "asr")


def kind_of(code: grpc.StatusCode, stage: str = "") -> str:
    if code in PRESSURE_CODES:
        return PRESSURE
    if code in TRANSIENT_CODES:
        return TRANSIENT
    if code == grpc.StatusCode.INVALID_ARGUMENT and stage in _AUDIO_STAGES:
        return UNANALYSABLE
    return FAULT


class WorkStore(Protocol):
    """Where a job's finished work is kept between tries (``jobs.RedisJobs``)."""

    def load_work(self, recording_id: str, sha256: str) -> dict[str, bytes]: ...
    def save_work(self, recording_id: str, sha256: str, name: str, value: bytes) -> None: ...
    def audit_of(self, recording_id: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class Chunking:
    seconds: float = 60.0
    segments: int = 16


def chunks(segments: Sequence[common_pb2.Segment], limits: Chunking) -> list[range]:
    """Consecutive index ranges of `segments`, each at most `limits.segments` long and at most
    `limits.seconds` of speech (a single longer segment makes its own chunk)."""
    out: list[range] = []
    start, speech_ms = 0, 0
    for i, seg in enumerate(segments):
        length = seg.end_ms - seg.start_ms
        if i > start and (i - start >= limits.segments or speech_ms + length > limits.seconds * 1000):
            out.append(range(start, i))
            start, speech_ms = i, 0
        speech_ms += length
    if start < len(segments):
        out.append(range(start, len(segments)))
    return out


# What the worker is told as a job moves on: (stage, detail, progress inside the stage).
Progress = Callable[[str, str, StageAdvance | None], None]


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
        work: WorkStore,
        chunking: Chunking = Chunking(),
    ) -> None:
        self._store = store
        self._vad = vad
        self._asr = asr
        self._indexer = indexer
        self._token = token
        self._timeouts = timeouts
        self._work = work
        self._chunking = chunking
        self.stopping = threading.Event()  # set: calls in flight are cancelled and their jobs released

    def process(self, job: Job, progress: Progress) -> Outcome:
        record = self._verify(job)
        metadata = metadata_pb(record)  # layout, language and hotwords as the contracts spell them
        assert record.object is not None  # _verify
        # Where the audio is now (a recording moved to the cold tier is read there), not where the job says.
        ref = common_pb2.ObjectRef(
            bucket=record.object.bucket,
            key=record.object.key,
            version_id=record.object.version_id,
            sha256=record.object.sha256,
            raw_format=declared_raw_format(record.audio.container, record.audio.codec),  # headerless: say how
        )
        auth = self._auth(job.tenant)
        kept = self._work.load_work(job.recording_id, job.sha256)
        speech = vad_pb2.DetectSpeechResponse()
        if "vad" in kept:
            speech.ParseFromString(kept["vad"])
            log.info("%s: VAD kept from an earlier try (%d segments)", job.recording_id, len(speech.segments))
        else:
            progress("vad", "", StageAdvance(0, record.audio.duration_ms))
            speech = self._call(
                "vad",
                self._vad.DetectSpeech,
                vad_pb2.DetectSpeechRequest(object=ref, channel_layout=metadata.channel_layout),
                auth,
                self._timeouts.vad_s,
            )
            self._work.save_work(job.recording_id, job.sha256, "vad", speech.SerializeToString())
        results = self._transcribe(job, speech.segments, ref, metadata, auth, kept, progress)
        progress("indexing", "", None)
        call = call_document(record, metadata, speech, results, self._work.audit_of(job.recording_id))
        self._call(
            "indexing",
            self._indexer.IndexCall,
            indexer_pb2.IndexCallRequest(call=call, key_id=record.sealed.key_id if record.sealed else ""),
            auth,
            self._timeouts.indexer_s,
        )
        return Outcome(len(speech.segments), len(call.utterances), int(speech.duration_ms))

    def _transcribe(
        self,
        job: Job,
        segments: Sequence[common_pb2.Segment],
        ref: common_pb2.ObjectRef,
        metadata: common_pb2.RecordingMetadata,
        auth: tuple[tuple[str, str], ...],
        kept: dict[str, bytes],
        progress: Progress,
    ) -> list[asr_pb2.SegmentResult]:
        """Every segment's result, chunk by chunk; chunks finished in an earlier try are not sent again."""
        parts = chunks(segments, self._chunking)
        total_ms = sum(seg.end_ms - seg.start_ms for seg in segments)
        done_ms, sent_ms, started = 0, 0, time.monotonic()
        results: list[asr_pb2.SegmentResult] = []
        for n, part in enumerate(parts):
            name = f"asr:{n}:{part.start}-{part.stop}"
            reply = asr_pb2.TranscribeResponse()
            if name in kept:
                reply.ParseFromString(kept[name])
            else:
                elapsed = time.monotonic() - started
                eta = (total_ms - done_ms) * elapsed / sent_ms if sent_ms else 0.0
                progress(
                    "asr",
                    _asr_detail(n, len(parts), done_ms, total_ms, eta),
                    StageAdvance(done_ms, total_ms, eta, n, len(parts)),
                )
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
                        for seg in (segments[i] for i in part)
                    ],
                    language=metadata.language or common_pb2.LANGUAGE_AUTO,
                    hotwords=metadata.hotwords,
                    word_timestamps=True,
                )
                reply = self._call("asr", self._asr.Transcribe, request, auth, self._timeouts.asr_s)
                if sorted(r.index for r in reply.results) != list(range(len(part))):
                    raise StageError("asr", f"{len(reply.results)} results for {len(part)} segments", TRANSIENT)
                self._work.save_work(job.recording_id, job.sha256, name, reply.SerializeToString())
                sent_ms += sum(segments[i].end_ms - segments[i].start_ms for i in part)
            done_ms += sum(segments[i].end_ms - segments[i].start_ms for i in part)
            results.extend(sorted(reply.results, key=lambda r: r.index))
        return results

    def _verify(self, job: Job) -> ArchivedRecording:
        """The archived record must exist and carry the job's fingerprint; VAD then checks the bytes against it."""
        try:
            record = self._store.find(job.tenant, job.recording_id)
        except DomainError as exc:
            raise StageError("verify", exc.message, PRESSURE if exc.kind is ErrorKind.UNAVAILABLE else FAULT) from exc
        if record is None or record.object is None:
            raise StageError("verify", f"recording {job.recording_id} is not in the archive", FAULT)
        if record.erased:
            raise StageError("verify", f"recording {job.recording_id} was erased: nothing of it is processed", FAULT)
        if record.sha256 != job.sha256 or record.object.sha256 != job.sha256:
            raise StageError(
                "verify",
                f"FINGERPRINT MISMATCH: the archive says SHA-256 {record.sha256}, the job says {job.sha256}",
                FAULT,
            )
        return record

    def _auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"), (ACTING_TENANT_HEADER, tenant))

    def _call(self, stage, method, request, metadata, timeout):  # type: ignore[no-untyped-def]
        """The call, cancelled (and the job released) as soon as the worker is stopping."""
        if self.stopping.is_set():
            raise StageError(stage, "the worker is stopping", RELEASED)
        future = method.future(request, metadata=metadata, timeout=timeout)
        while not future.done():
            if self.stopping.wait(_POLL_S):
                future.cancel()
                raise StageError(stage, "the worker is stopping", RELEASED)
        try:
            return future.result()
        except grpc.RpcError as exc:
            code = exc.code()
            raise StageError(stage, f"{code.name}: {exc.details()}", kind_of(code, stage)) from exc



def call_document(
    record: ArchivedRecording,
    metadata: common_pb2.RecordingMetadata,
    speech: vad_pb2.DetectSpeechResponse,
    results: Sequence[asr_pb2.SegmentResult],
    audit: Mapping[str, str] | None = None,
) -> indexer_pb2.Call:
    """The Call the indexer receives: the archive's facts (where the audio is now: a moved recording's cold
    copy and when it moved), an utterance for every segment the ASR heard words in (with the VAD's side, voice
    and role confidence), the VAD's diarization of a mono recording, and the integrity audit's last finding
    (`audit`, as the lifecycle keeps it), so that indexing a call again never forgets them."""
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
    if record.moved_at is not None:
        call.moved_at.FromDatetime(record.moved_at)
    finding = audit_finding(audit)
    if finding is not None:
        call.integrity = finding[0]
        call.verified_at.FromDatetime(finding[1])
    if speech.HasField("diarization"):
        call.diarization.CopyFrom(speech.diarization)
    for seg, result in zip(speech.segments, results, strict=True):
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
                speaker=seg.speaker,
                role_confidence=seg.role_confidence,
            )
        )
    return call


def _asr_detail(chunk: int, chunks_total: int, done_ms: int, total_ms: int, eta_s: float) -> str:
    """ "chunk 3/10, 96 of 310 s of speech (31%), about 40 s left": what `callscribe status` shows."""
    pct = 100 * done_ms // total_ms if total_ms else 0
    text = f"chunk {chunk + 1}/{chunks_total}, {done_ms / 1000:.0f} of {total_ms / 1000:.0f} s of speech ({pct}%)"
    if eta_s > 0:
        text += f", about {eta_s:.0f} s left"
    return text
