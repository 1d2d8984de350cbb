"""gRPC entry point of ingest: translates messages to calls on the Archiver, nothing more."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry, Counter, Gauge

from callscribe.ingest.convert import (
    audio_pb,
    audit_finding,
    info_from_proto,
    lock_pb,
    metadata_pb,
    object_pb,
    protection_pb,
    timestamp,
    tombstone_pb,
)
from callscribe.ingest.jobs import RedisJobs
from callscribe.ingest.model import Declared
from callscribe.ingest.upload.archive import Archiver, RecordingView
from callscribe.ingest.upload.wire import UploadMessage
from callscribe.kit.errors import (
    Cancelled,
    DeadlineExceeded,
    DomainError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from callscribe.kit.interceptors import caller_actor, resolve_tenant
from callscribe.kit.limits import MAX_CHUNK_BYTES
from callscribe.kit.text import unsafe_character
from callscribe.storage.trail import Trail
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

log = logging.getLogger(__name__)

_STATES = {
    "": c.PIPELINE_STATE_UNSPECIFIED,
    "archived": c.PIPELINE_STATE_ARCHIVED,
    "queued": c.PIPELINE_STATE_QUEUED,
    "vad": c.PIPELINE_STATE_VAD,
    "asr": c.PIPELINE_STATE_ASR,
    "indexing": c.PIPELINE_STATE_INDEXING,
    "done": c.PIPELINE_STATE_DONE,
    "failed": c.PIPELINE_STATE_FAILED,
    "unanalysable": c.PIPELINE_STATE_NOT_ANALYSABLE,
}


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
        self,
        archiver: Archiver,
        max_uploads: int,
        metrics: UploadMetrics,
        dead_letters: RedisJobs | None = None,
        max_uploads_per_tenant: int = 0,
        idle_seconds: float = 0.0,
        trail: Trail | None = None,
    ) -> None:
        self._archiver = archiver
        self._trail = trail
        self._dead_letters = dead_letters
        self._max_uploads = max_uploads
        self._metrics = metrics
        # Only uploads count against the limit: probes and reads must answer under load.
        self._upload_slots = threading.BoundedSemaphore(max_uploads)
        # One tenant may hold at most this many of the slots, so it can never lock the others out.
        self._per_tenant = max_uploads_per_tenant or max_uploads
        self._tenant_uploads: dict[str, int] = {}
        self._tenant_lock = threading.Lock()
        self._idle_seconds = idle_seconds

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
        if self._idle_seconds > 0:
            messages = _idle_guarded(messages, self._idle_seconds)
        first = next(messages, None)
        if first is None:
            raise InvalidArgument("empty stream: send a metadata message, then the audio chunks")
        if isinstance(first, memoryview) or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument("the first message must carry metadata (tenant, call_id, agent_id, ...), not audio")
        tenant = resolve_tenant(first.metadata.tenant)
        with self._tenant_slot(tenant.name):
            info = info_from_proto(first.metadata, tenant.name)
            declared = Declared(sha256=first.sha256.lower(), size_bytes=first.size_bytes)
            chunks = _chunks(messages, self._metrics.received)
            try:
                ack = self._archiver.upload(tenant, info, chunks, declared, connected=context.is_active)
            except InvalidArgument as exc:
                # A client that cancelled mid-upload leaves a truncated file behind it: that is CANCELLED,
                # not the client's bad audio. (A stream the client ended early is a truncated file: INVALID.)
                if not context.is_active():
                    raise Cancelled("the client went away before the upload finished; nothing was stored") from exc
                raise
        return pb.UploadRecordingResponse(
            recording_id=ack.record.recording_id,
            sha256=ack.record.sha256,
            object=object_pb(ack.record),
            lock=lock_pb(ack.record),
            duplicate=ack.duplicate,
            audio=audio_pb(ack.record),
            enqueued=ack.enqueued,
        )

    @contextlib.contextmanager
    def _tenant_slot(self, tenant: str) -> Iterator[None]:
        with self._tenant_lock:
            held = self._tenant_uploads.get(tenant, 0)
            if held >= self._per_tenant:
                raise ResourceExhausted(
                    f"tenant {tenant} already has {held} uploads in flight (at most {self._per_tenant} per tenant); "
                    "retry shortly with backoff"
                )
            self._tenant_uploads[tenant] = held + 1
        try:
            yield
        finally:
            with self._tenant_lock:
                left = self._tenant_uploads[tenant] - 1
                if left:
                    self._tenant_uploads[tenant] = left
                else:
                    del self._tenant_uploads[tenant]

    def GetRecording(self, request: pb.GetRecordingRequest, context: grpc.ServicerContext) -> pb.Recording:  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        _require_id(request.recording_id)
        try:
            return _recording(self._archiver.get(tenant, request.recording_id))
        except NotFound:
            tombstone = self._archiver.tombstone(tenant, request.recording_id)
            if tombstone is None:
                raise
            return pb.Recording(
                recording_id=request.recording_id, tenant=tenant.name, tombstone=tombstone_pb(tombstone)
            )

    def ListRecordings(self, request: pb.ListRecordingsRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        since = request.archived_from.ToDatetime(UTC) if request.HasField("archived_from") else None
        until = request.archived_to.ToDatetime(UTC) if request.HasField("archived_to") else None
        views, token = self._archiver.list_page(tenant, request.page_size, request.page_token, since, until)
        recordings, cut = _within_bytes([_recording(v) for v in views])
        if cut:
            token = recordings[-1].recording_id
        return pb.ListRecordingsResponse(recordings=recordings, next_page_token=token)

    def SetLegalHold(self, request: pb.SetLegalHoldRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        _require_id(request.recording_id)
        reason = _hold_reason(request.reason)
        trail = self._require_trail()
        found = self._archiver.get(tenant, request.recording_id).record  # NOT_FOUND before anything is recorded
        action = "hold.set" if request.legal_hold else "hold.release"
        actor = caller_actor().as_dict()
        details: dict[str, object] = {"legal_hold": request.legal_hold, "reason": reason, "tier": found.tier}
        if found.object is not None:
            details["object"] = {
                "bucket": found.object.bucket,
                "key": found.object.key,
                "version_id": found.object.version_id,
                "sha256": found.object.sha256,
            }
        # The entry first: a hold nobody can account for must not happen (no entry, no change).
        try:
            intent = trail.append(tenant, actor, action, [request.recording_id], details)
        except DomainError as exc:
            raise Unavailable(
                f"the legal hold was not changed: its access-trail entry could not be written ({exc.message}); retry"
            ) from exc
        try:
            record = self._archiver.set_legal_hold(tenant, request.recording_id, request.legal_hold)
        except DomainError as exc:
            failure = {"intent_seq": intent.entry.seq, "error": exc.message[:500]}
            try:
                trail.append(tenant, actor, action + ".failed", [request.recording_id], failure)
            except DomainError as follow_up:
                log.error(
                    "%s of %s/%s failed (%s) and the trail entry saying so could not be written (%s): entry %d "
                    "records the attempt",
                    action, tenant.name, request.recording_id, exc.message, follow_up.message, intent.entry.seq,
                )  # fmt: skip
            raise
        return pb.SetLegalHoldResponse(recording_id=record.recording_id, lock=lock_pb(record))

    def VerifyTrail(self, request: pb.VerifyTrailRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        result = self._require_trail().verify(tenant.name)
        reply = pb.VerifyTrailResponse(
            tenant=tenant.name,
            entries=result.entries,
            verified=result.verified,
            head_seq=result.verified,
            head_sha256=result.head_sha256,
        )
        if result.first_break is not None:
            reply.first_break.seq = result.first_break.seq
            reply.first_break.reason = result.first_break.reason
            found = result.first_break
            log.error("the access trail of %s is broken at entry %d: %s", tenant.name, found.seq, found.reason)
        return reply

    def ReadTrail(self, request: pb.ReadTrailRequest, context: grpc.ServicerContext) -> Iterator[pb.TrailEntry]:  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        last = request.last or 20
        if last > MAX_TRAIL_READ:
            raise InvalidArgument(f"last {last} is over {MAX_TRAIL_READ}")
        for stored in self._require_trail().last_entries(tenant.name, last):
            entry = stored.entry
            message = pb.TrailEntry(
                seq=entry.seq,
                tenant=entry.tenant,
                actor=pb.TrailActor(**{k: entry.actor.get(k, "") for k in ("kind", "name", "role")}),
                action=entry.action,
                targets=list(entry.targets),
                details_json=json.dumps(dict(entry.details), ensure_ascii=False, sort_keys=True),
                prev_sha256=entry.prev,
                sha256=stored.sha256,
            )
            message.time.FromDatetime(entry.when)
            yield message

    def _require_trail(self) -> Trail:
        if self._trail is None:
            raise Unavailable("this ingest server has no access trail configured")
        return self._trail

    def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        size = request.page_size or 100
        if size > 1000:
            raise InvalidArgument(f"page_size {size} is over 1000")
        token = request.page_token
        if token and not _is_entry_id(token):
            raise InvalidArgument(f"page_token {token!r} is not one this service returned")
        entries, next_token = self._dead().dead_letters(tenant.name, size, token)
        letters, cut = _within_bytes(
            [
                pb.DeadLetter(
                    recording_id=e.job.recording_id,
                    tenant=e.job.tenant,
                    reason=e.reason,
                    stage=e.stage,
                    attempts=e.attempts,
                    failed_at=timestamp(datetime.fromtimestamp(e.failed_at, UTC)),
                    entry_id=e.entry_id,
                )
                for e in entries
            ]
        )
        if cut:
            next_token = letters[-1].entry_id
        return pb.ListDeadLettersResponse(dead_letters=letters, next_page_token=next_token)

    def RequeueDeadLetters(self, request: pb.RequeueDeadLettersRequest, context: grpc.ServicerContext):  # noqa: N802
        tenant = resolve_tenant(request.tenant)
        if request.recording_id:
            _require_id(request.recording_id)
        elif not request.all:
            raise InvalidArgument("name a recording_id, or set all to requeue every dead letter of the tenant")
        ids = self._dead().requeue_dead(tenant.name, request.recording_id)
        if request.recording_id and not ids:
            raise NotFound(f"recording {request.recording_id} has no dead letter")
        log.info("requeued %d dead letter(s) of %s", len(ids), tenant.name)
        return pb.RequeueDeadLettersResponse(recording_ids=ids)

    def _dead(self) -> RedisJobs:
        if self._dead_letters is None:
            raise Unavailable("this ingest server has no job queue configured")
        return self._dead_letters


# A page stops at this many bytes as well as at its size, far below gRPC's 4 MiB message limit.
MAX_PAGE_BYTES = 1024 * 1024
MAX_TRAIL_READ = 1000
MAX_REASON_CHARS = 500


def _hold_reason(reason: str) -> str:
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument(f"reason is {len(reason)} characters; at most {MAX_REASON_CHARS}")
    bad = unsafe_character(reason)
    if bad is not None:
        raise InvalidArgument(f"reason contains {bad}: control and format characters are refused")
    return reason


M = TypeVar("M", bound=Message)


def _within_bytes(items: list[M]) -> tuple[list[M], bool]:
    """The leading items that fit MAX_PAGE_BYTES (at least one), and whether any were left out."""
    total = 0
    for n, item in enumerate(items):
        total += item.ByteSize() + 8  # the field tag and length in front of each
        if total > MAX_PAGE_BYTES and n > 0:
            return items[:n], True
    return items, False


def _is_entry_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit()


def _until_client_leaves(request_iterator: Iterator[UploadMessage]) -> Iterator[UploadMessage]:
    """The request stream, with a client that disconnects mid-stream reported as CANCELLED."""
    try:
        yield from request_iterator
    except grpc.RpcError as exc:
        raise Cancelled("the client went away before the upload finished; nothing was stored") from exc


_END = object()


def _idle_guarded(messages: Iterator[UploadMessage], idle_s: float) -> Iterator[UploadMessage]:
    """`messages`, ended with DEADLINE_EXCEEDED when the client sends nothing for `idle_s` seconds (a slow
    but moving upload is fine). A reader thread takes the messages; at most two wait, so flow control
    still holds the client back."""
    box: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            for message in messages:
                while not stop.is_set():
                    try:
                        box.put(message, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the handler thread, which raises it
            box.put(exc)

    reader = threading.Thread(target=read, name="upload-reader", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = box.get(timeout=idle_s)
            except queue.Empty:
                raise DeadlineExceeded(
                    f"nothing received for {idle_s:.0f} s: the upload was idle and is ended; nothing was stored. "
                    "Send the chunks without pausing, or resend the recording"
                ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


def _chunks(messages: Iterator[UploadMessage], received: Counter) -> Iterator[bytes | memoryview]:
    for message in messages:
        if isinstance(message, memoryview):  # a chunk-only message, read without a copy (wire.py)
            chunk: bytes | memoryview = message
        elif message.WhichOneof("payload") == "chunk":
            chunk = message.chunk  # each read of .chunk is a new copy: read it once
        else:
            raise InvalidArgument("metadata may only be sent once, in the first message")
        if len(chunk) > MAX_CHUNK_BYTES:
            raise ResourceExhausted(
                f"a chunk of {len(chunk)} bytes: at most {MAX_CHUNK_BYTES} (4 MiB) per message; send smaller chunks"
            )
        received.inc(len(chunk))
        yield chunk


def _require_id(rec_id: str) -> None:
    if not rec_id or len(rec_id) != 32 or any(ch not in "0123456789abcdef" for ch in rec_id):
        raise InvalidArgument(f"recording_id {rec_id!r} is not a recording id (32 lowercase hex characters)")


def _recording(view: RecordingView) -> pb.Recording:
    record = view.record
    return pb.Recording(
        recording_id=record.recording_id,
        tenant=record.tenant,
        metadata=metadata_pb(record),
        audio=audio_pb(record),
        object=object_pb(record),
        lock=lock_pb(record),
        tier=c.STORAGE_TIER_HOT if record.tier == "HOT" else c.STORAGE_TIER_COLD,
        state=_STATES.get(view.state, c.PIPELINE_STATE_UNSPECIFIED),
        state_detail=view.state_detail,
        archived_at=timestamp(record.archived_at),
        progress=_progress(view),
        moved_at=timestamp(record.moved_at),
        **_audit_fields(view.audit),
        protection=protection_pb(record),
    )


def _audit_fields(audit: dict[str, str] | None) -> dict:
    finding = audit_finding(audit)
    if finding is None:
        return {}
    integrity, verified_at, detail = finding
    return {"integrity": integrity, "verified_at": timestamp(verified_at), "integrity_detail": detail}


def _progress(view: RecordingView) -> pb.StageProgress | None:
    a = view.advance
    if a is None:
        return None
    return pb.StageProgress(
        stage=_STATES.get(view.state, c.PIPELINE_STATE_UNSPECIFIED),
        done_ms=a.done_ms,
        total_ms=a.total_ms,
        eta_seconds=a.eta_s,
        chunks_done=a.chunks_done,
        chunks_total=a.chunks_total,
    )
