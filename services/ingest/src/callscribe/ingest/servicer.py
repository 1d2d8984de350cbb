"""gRPC entry point of ingest: translates messages to calls on the Archiver, nothing more."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry, Counter, Gauge

from callscribe.ingest.archive import Archiver, RecordingView
from callscribe.ingest.jobs import DeadLetters
from callscribe.ingest.model import ArchivedRecording, Declared, RecordingInfo
from callscribe.ingest.wire import UploadMessage
from callscribe.kit.errors import Cancelled, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from callscribe.kit.interceptors import resolve_tenant
from callscribe.kit.names import LANGUAGE_NAMES, LANGUAGES, LAYOUT_NAMES
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

log = logging.getLogger(__name__)

_LAYOUTS = {c.CHANNEL_LAYOUT_UNSPECIFIED: "", **LAYOUT_NAMES}  # unspecified: stored as "" (not said)
_LAYOUT_ENUM = {name: value for value, name in _LAYOUTS.items()}
_LANGUAGES = {c.LANGUAGE_UNSPECIFIED: "auto", **LANGUAGE_NAMES}  # unspecified: recognise the language
_STATES = {
    "": c.PIPELINE_STATE_UNSPECIFIED,
    "archived": c.PIPELINE_STATE_ARCHIVED,
    "queued": c.PIPELINE_STATE_QUEUED,
    "vad": c.PIPELINE_STATE_VAD,
    "asr": c.PIPELINE_STATE_ASR,
    "indexing": c.PIPELINE_STATE_INDEXING,
    "done": c.PIPELINE_STATE_DONE,
    "failed": c.PIPELINE_STATE_FAILED,
}
_MODES = {"COMPLIANCE": c.LOCK_MODE_COMPLIANCE, "GOVERNANCE": c.LOCK_MODE_GOVERNANCE}


class UploadMetrics:
    """callscribe_ingest_* upload figures: what operators watch and what scaling could use."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge("callscribe_ingest_uploads_in_flight", "uploads being received", registry=registry)
        self.received = Counter("callscribe_ingest_received_bytes", "audio bytes received", registry=registry)
        self.outcomes = Counter(
            "callscribe_ingest_uploads", "finished uploads by outcome", ["outcome"], registry=registry
        )


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(
        self, archiver: Archiver, max_uploads: int, metrics: UploadMetrics, dead_letters: DeadLetters | None = None
    ) -> None:
        self._archiver = archiver
        self._dead_letters = dead_letters
        self._max_uploads = max_uploads
        self._metrics = metrics
        # Only uploads count against the limit: probes and reads must answer under load.
        self._upload_slots = threading.BoundedSemaphore(max_uploads)

    def UploadRecording(self, request_iterator: Iterator[UploadMessage], context: grpc.ServicerContext):  # noqa: N802
        if not self._upload_slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"{self._max_uploads} uploads already in flight on this server; retry shortly with backoff"
            )
        outcome = "refused"
        try:
            with self._metrics.in_flight.track_inprogress():
                response = self._upload(request_iterator, context)
            outcome = "duplicate" if response.duplicate else "archived"
            return response
        finally:
            self._metrics.outcomes.labels(outcome).inc()
            self._upload_slots.release()

    def _upload(
        self, request_iterator: Iterator[UploadMessage], context: grpc.ServicerContext
    ) -> pb.UploadRecordingResponse:
        messages = _until_client_leaves(request_iterator)
        first = next(messages, None)
        if first is None:
            raise InvalidArgument("empty stream: send a metadata message, then the audio chunks")
        if isinstance(first, memoryview) or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument("the first message must carry metadata (tenant, call_id, agent_id, ...), not audio")
        tenant = resolve_tenant(first.metadata.tenant)
        info = _info_from_proto(first.metadata, tenant.name)
        declared = Declared(sha256=first.sha256.lower(), size_bytes=first.size_bytes)
        chunks = _chunks(messages, self._metrics.received)
        ack = self._archiver.upload(tenant, info, chunks, declared, connected=context.is_active)
        return pb.UploadRecordingResponse(
            recording_id=ack.record.recording_id,
            sha256=ack.record.sha256,
            object=_object(ack.record),
            lock=_lock(ack.record),
            duplicate=ack.duplicate,
            audio=_audio(ack.record),
            enqueued=ack.enqueued,
        )

    def GetRecording(self, request: pb.GetRecordingRequest, context: grpc.ServicerContext) -> pb.Recording:  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        _require_id(request.recording_id)
        return _recording(self._archiver.get(tenant, request.recording_id))

    def ListRecordings(self, request: pb.ListRecordingsRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        since = request.archived_from.ToDatetime(UTC) if request.HasField("archived_from") else None
        until = request.archived_to.ToDatetime(UTC) if request.HasField("archived_to") else None
        views, token = self._archiver.list_page(tenant, request.page_size, request.page_token, since, until)
        return pb.ListRecordingsResponse(recordings=[_recording(v) for v in views], next_page_token=token)

    def SetLegalHold(self, request: pb.SetLegalHoldRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        _require_id(request.recording_id)
        record = self._archiver.set_legal_hold(tenant, request.recording_id, request.legal_hold)
        return pb.SetLegalHoldResponse(recording_id=record.recording_id, lock=_lock(record))

    def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        size = request.page_size or 100
        if size > 1000:
            raise InvalidArgument(f"page_size {size} is over 1000")
        token = request.page_token
        if token and not _is_entry_id(token):
            raise InvalidArgument(f"page_token {token!r} is not one this service returned")
        entries, next_token = self._dead().page(tenant.name, size, token)
        return pb.ListDeadLettersResponse(
            dead_letters=[
                pb.DeadLetter(
                    recording_id=e.job.recording_id,
                    tenant=e.job.tenant,
                    reason=e.reason,
                    stage=e.stage,
                    attempts=e.attempts,
                    failed_at=_timestamp(datetime.fromtimestamp(e.failed_at, UTC)),
                    entry_id=e.entry_id,
                )
                for e in entries
            ],
            next_page_token=next_token,
        )

    def RequeueDeadLetters(self, request: pb.RequeueDeadLettersRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        if request.recording_id:
            _require_id(request.recording_id)
        elif not request.all:
            raise InvalidArgument("name a recording_id, or set all to requeue every dead letter of the tenant")
        ids = self._dead().requeue(tenant.name, request.recording_id)
        if request.recording_id and not ids:
            raise NotFound(f"recording {request.recording_id} has no dead letter")
        log.info("requeued %d dead letter(s) of %s", len(ids), tenant.name)
        return pb.RequeueDeadLettersResponse(recording_ids=ids)

    def _dead(self) -> DeadLetters:
        if self._dead_letters is None:
            raise Unavailable("this ingest server has no job queue configured")
        return self._dead_letters


def _is_entry_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit()


def _until_client_leaves(request_iterator: Iterator[UploadMessage]) -> Iterator[UploadMessage]:
    """The request stream, with a client that disconnects mid-stream reported as CANCELLED."""
    try:
        yield from request_iterator
    except grpc.RpcError as exc:
        raise Cancelled("the client went away before the upload finished; nothing was stored") from exc


def _chunks(messages: Iterator[UploadMessage], received: Counter) -> Iterator[bytes | memoryview]:
    for message in messages:
        if isinstance(message, memoryview):  # a chunk-only message, read without a copy (wire.py)
            chunk: bytes | memoryview = message
        elif message.WhichOneof("payload") == "chunk":
            chunk = message.chunk  # each read of .chunk is a new copy: read it once
        else:
            raise InvalidArgument("metadata may only be sent once, in the first message")
        received.inc(len(chunk))
        yield chunk


def _require_id(rec_id: str) -> None:
    if not rec_id or len(rec_id) != 32 or any(ch not in "0123456789abcdef" for ch in rec_id):
        raise InvalidArgument(f"recording_id {rec_id!r} is not a recording id (32 lowercase hex characters)")


def _info_from_proto(meta: c.RecordingMetadata, tenant: str) -> RecordingInfo:
    if meta.channel_layout not in _LAYOUTS:
        raise InvalidArgument(f"channel_layout {meta.channel_layout} is not a known value")
    if meta.language not in _LANGUAGES:
        raise InvalidArgument(f"language {meta.language} is not a known value")
    return RecordingInfo(
        tenant=tenant,
        call_id=meta.call_id,
        agent_id=meta.agent_id,
        customer_id=meta.customer_id,
        started_at=meta.started_at.ToDatetime(UTC) if meta.HasField("started_at") else None,
        channel_layout=_LAYOUTS[meta.channel_layout],
        language=_LANGUAGES[meta.language],
        hotwords=tuple((h.text, h.weight) for h in meta.hotwords),
        labels=dict(meta.labels),
        filename=meta.filename,
    )


def _timestamp(value) -> Timestamp | None:  # type: ignore[no-untyped-def]
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _metadata(record: ArchivedRecording) -> c.RecordingMetadata:
    info = record.info
    return c.RecordingMetadata(
        tenant=record.tenant,
        call_id=info.call_id,
        agent_id=info.agent_id,
        customer_id=info.customer_id,
        started_at=_timestamp(info.started_at),
        channel_layout=_LAYOUT_ENUM[record.channel_layout],
        language=LANGUAGES[info.language],
        hotwords=[c.Hotword(text=t, weight=w) for t, w in info.hotwords],
        labels=info.labels,
        filename=info.filename,
    )


def _object(record: ArchivedRecording) -> c.ObjectRef:
    obj = record.object
    if obj is None:
        return c.ObjectRef()
    return c.ObjectRef(bucket=obj.bucket, key=obj.key, version_id=obj.version_id, sha256=obj.sha256)


def _lock(record: ArchivedRecording) -> c.LockInfo:
    lock = record.lock
    if lock is None:
        return c.LockInfo()
    return c.LockInfo(
        mode=_MODES.get(lock.mode, c.LOCK_MODE_UNSPECIFIED),
        retain_until=_timestamp(lock.retain_until),
        legal_hold=lock.legal_hold,
    )


def _audio(record: ArchivedRecording) -> c.AudioFacts:
    a = record.audio
    return c.AudioFacts(
        container=a.container,
        codec=a.codec,
        sample_rate_hz=a.sample_rate_hz,
        channels=a.channels,
        duration_ms=a.duration_ms,
        size_bytes=record.size_bytes,
    )


def _recording(view: RecordingView) -> pb.Recording:
    record = view.record
    return pb.Recording(
        recording_id=record.recording_id,
        tenant=record.tenant,
        metadata=_metadata(record),
        audio=_audio(record),
        object=_object(record),
        lock=_lock(record),
        tier=c.STORAGE_TIER_HOT if record.tier == "HOT" else c.STORAGE_TIER_COLD,
        state=_STATES.get(view.state, c.PIPELINE_STATE_UNSPECIFIED),
        state_detail=view.state_detail,
        archived_at=_timestamp(record.archived_at),
    )


# Public names for the pipeline worker, which builds the indexer's Call from the same record.
metadata_pb = _metadata
object_pb = _object
audio_pb = _audio
