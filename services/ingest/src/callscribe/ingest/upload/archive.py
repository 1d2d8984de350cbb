"""Service layer of ingest: archive an upload, read, list and hold recordings.

Collaborators come in as arguments (ports below); the composition root wires the real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from callscribe.audio.policy import raw_format_of
from callscribe.ingest.locks import KeyedLocks
from callscribe.ingest.model import (
    AlreadyArchived,
    ArchivedRecording,
    AudioFacts,
    AudioWriter,
    Declared,
    Job,
    LockPolicy,
    RecordingInfo,
    StageAdvance,
    UploadLimits,
    recording_id,
)
from callscribe.ingest.upload.spool import UploadSpool
from callscribe.kit.errors import Cancelled, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from callscribe.kit.tenants import Tenant

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


class RecordingStore(Protocol):
    def find(self, tenant: str, rec_id: str) -> ArchivedRecording | None: ...
    def lookup_first(self, size_bytes: int) -> bool: ...
    def open_audio(
        self, tenant: str, rec_id: str, sha256: str, call_id: str, policy: LockPolicy, customer_id: str = ""
    ) -> AudioWriter: ...
    def stream_audio(self, writer: AudioWriter, record: ArchivedRecording) -> bool: ...
    def commit_audio(
        self, writer: AudioWriter, record: ArchivedRecording, policy: LockPolicy, looked_up: bool
    ) -> str: ...
    def stored(
        self, record: ArchivedRecording, version_id: str, policy: LockPolicy, writer: object = None
    ) -> ArchivedRecording: ...
    def set_legal_hold(self, tenant: str, rec_id: str, on: bool) -> ArchivedRecording: ...
    def list_ids(
        self, tenant: str, start_after: str, since: datetime | None, until: datetime | None
    ) -> Iterator[tuple[str, datetime]]: ...
    def tombstone(self, tenant: str, rec_id: str) -> dict | None: ...


class JobQueue(Protocol):
    def enqueue(self, job: Job) -> bool: ...
    def state(self, recording_id: str) -> tuple[str, str, StageAdvance | None] | None: ...
    def audit_of(self, recording_id: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class UploadAck:
    record: ArchivedRecording
    duplicate: bool
    enqueued: bool


@dataclass(frozen=True)
class RecordingView:
    record: ArchivedRecording
    state: str  # "" when the queue could not be asked
    state_detail: str
    advance: StageAdvance | None = None
    audit: dict[str, str] | None = None  # the integrity audit's last finding (integrity, verified_at, detail)


class Archiver:
    def __init__(
        self,
        store: RecordingStore,
        queue: JobQueue,
        limits: UploadLimits,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        hot_lock_grace_days: float | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._limits = limits
        self._clock = clock
        # Tiering on (INGEST_HOT_LOCK_GRACE_DAYS set): hot copies are locked hot_days + this, not the retention.
        self._hot_grace_days = hot_lock_grace_days
        self._locks = KeyedLocks()

    def upload(
        self,
        tenant: Tenant,
        info: RecordingInfo,
        chunks: Iterable[bytes],
        declared: Declared,
        connected: Callable[[], bool] = lambda: True,
    ) -> UploadAck:
        """Receive, validate, archive locked (or find it archived), enqueue. Nothing stays behind on error.

        `connected` tells whether the client is still there once its stream has ended.
        """
        chunks = _checked_end(chunks, connected)
        info.check()
        declared.check(self._limits.max_bytes)
        # A declared SHA-256 streams the bytes to S3 as they arrive: the spool need not keep them.
        spool = self._new_spool(keep_bytes=not declared.sha256, raw_format=raw_format_of(info.filename))
        try:
            if declared.sha256:
                rec_id = recording_id(tenant.name, declared.sha256)
                with self._locks.hold(rec_id):
                    ack = self._upload_streaming(tenant, info, chunks, declared, spool, rec_id)
            else:
                self._receive(chunks, spool)
                sha256, facts = spool.finish()
                rec_id = recording_id(tenant.name, sha256)
                with self._locks.hold(rec_id):
                    ack = self._archive_spooled(tenant, info, spool, sha256, facts, rec_id)
        finally:
            spool.discard()
        return replace(ack, enqueued=self._enqueue(ack.record))

    def _receive(self, chunks: Iterable[bytes], spool: UploadSpool, writer: AudioWriter | None = None) -> None:
        for chunk in chunks:
            spool.append(chunk)
            if writer is not None:
                writer.write(chunk)

    def _upload_streaming(
        self,
        tenant: Tenant,
        info: RecordingInfo,
        chunks: Iterable[bytes],
        declared: Declared,
        spool: UploadSpool,
        rec_id: str,
    ) -> UploadAck:
        # A recording small enough for one PUT is written only if absent (the store says so at commit):
        # looking it up first would cost a request on every upload to spare one on a duplicate.
        looked_up, existing = self._look_up_first(tenant, rec_id, declared.size_bytes)
        if existing is not None:
            self._receive(chunks, spool)
            declared.verify(spool.finish()[0], spool.size)
            return UploadAck(existing, duplicate=True, enqueued=False)
        policy = self._policy(tenant)
        writer = self._store.open_audio(tenant.name, rec_id, declared.sha256, info.call_id, policy, info.customer_id)
        try:
            streamed: ArchivedRecording | None = None
            decided = not declared.size_bytes  # whether to stream the PUT is decided once, when known
            for chunk in chunks:
                spool.append(chunk)
                writer.write(chunk)
                if not decided and (facts := spool.final_facts(declared.size_bytes)) is not None:
                    decided = True
                    streamed = self._start_stream(tenant, info, facts, declared, rec_id, writer, policy)
            sha256, facts = spool.finish()
            declared.verify(sha256, spool.size)
            if streamed is not None and streamed.audio != facts:
                raise RuntimeError(f"recording {rec_id}: facts changed after its PUT started: {facts}")
            return self._commit(tenant, info, spool, sha256, facts, rec_id, writer, policy, looked_up, streamed)
        except BaseException:
            writer.abort()
            raise

    def _start_stream(
        self,
        tenant: Tenant,
        info: RecordingInfo,
        facts: AudioFacts,
        declared: Declared,
        rec_id: str,
        writer: AudioWriter,
        policy: LockPolicy,
    ) -> ArchivedRecording | None:
        """The record, if its PUT started now: what it will be once the declared bytes arrived (the
        first bytes told everything: `UploadSpool.final_facts`)."""
        layout = info.layout_for(facts.channels)  # refused now rather than after every byte
        record = ArchivedRecording(
            rec_id, tenant.name, info, facts, layout, declared.size_bytes, declared.sha256, self._now(),
            retention=_retention(policy),
        )  # fmt: skip
        return record if self._store.stream_audio(writer, record) else None

    def _look_up_first(self, tenant: Tenant, rec_id: str, size_bytes: int) -> tuple[bool, ArchivedRecording | None]:
        """(whether the recording was looked up now, what was found) for an upload of `size_bytes`;
        one the store writes only if absent is not looked up (`RecordingStore.lookup_first`)."""
        if not self._store.lookup_first(size_bytes):
            return False, None
        return True, _not_erased(self._store.find(tenant.name, rec_id))

    def _archive_spooled(
        self, tenant: Tenant, info: RecordingInfo, spool: UploadSpool, sha256: str, facts: AudioFacts, rec_id: str
    ) -> UploadAck:
        looked_up, existing = self._look_up_first(tenant, rec_id, spool.size)
        if existing is not None:
            return UploadAck(existing, duplicate=True, enqueued=False)
        info.layout_for(facts.channels)  # refuse before anything reaches S3
        policy = self._policy(tenant)
        writer = self._store.open_audio(tenant.name, rec_id, sha256, info.call_id, policy, info.customer_id)
        try:
            for block in spool.read_back():
                writer.write(block)
            return self._commit(tenant, info, spool, sha256, facts, rec_id, writer, policy, looked_up)
        except BaseException:
            writer.abort()
            raise

    def _commit(
        self,
        tenant: Tenant,
        info: RecordingInfo,
        spool: UploadSpool,
        sha256: str,
        facts: AudioFacts,
        rec_id: str,
        writer: AudioWriter,
        policy: LockPolicy,
        looked_up: bool,
        streamed: ArchivedRecording | None = None,
    ) -> UploadAck:
        """Commit the audio; `streamed`: the record its PUT started with (else it is made now)."""
        if streamed is None:
            layout = info.layout_for(facts.channels)
            record = ArchivedRecording(
                rec_id, tenant.name, info, facts, layout, spool.size, sha256, self._now(), retention=_retention(policy)
            )
        else:
            record = streamed
        try:
            version_id = self._store.commit_audio(writer, record, policy, looked_up)
        except AlreadyArchived:
            writer.abort()
            existing = _not_erased(self._store.find(tenant.name, rec_id))
            if existing is None:
                raise Unavailable(
                    f"S3 says recording {rec_id} exists but it cannot be read yet; retry the upload"
                ) from None
            return UploadAck(existing, duplicate=True, enqueued=False)
        durable = replace(record, archived_at=self._now())  # a streamed PUT's record was made when it started
        return UploadAck(self._store.stored(durable, version_id, policy, writer), duplicate=False, enqueued=False)

    def _policy(self, tenant: Tenant) -> LockPolicy:
        """The recording's retention, and (tiering on) the shorter lock of its hot copies."""
        now = self._now()
        until = now + timedelta(days=tenant.retention_days)
        hot_until = None
        if self._hot_grace_days is not None:
            candidate = now + timedelta(days=tenant.hot_days + self._hot_grace_days)
            hot_until = candidate if candidate < until else None
        return LockPolicy(tenant.retention_mode, until, hot_until)

    def _now(self) -> datetime:
        return self._clock().replace(microsecond=0)

    def _new_spool(self, keep_bytes: bool, raw_format: str) -> UploadSpool:
        limits = self._limits
        return UploadSpool(limits.spool_dir, limits.max_bytes, limits.memory_bytes, keep_bytes, raw_format)

    def _enqueue(self, record: ArchivedRecording) -> bool:
        if record.object is None:
            raise ValueError(f"recording {record.recording_id} has no stored object")
        job = Job(
            record.recording_id,
            record.tenant,
            record.object.bucket,
            record.object.key,
            record.object.version_id,
            record.sha256,
        )
        try:
            self._queue.enqueue(job)
            return True
        except Unavailable as exc:
            # The audio is safe and acknowledged; the pipeline's reconciliation will enqueue it later.
            log.warning("recording %s archived but not enqueued: %s", record.recording_id, exc.message)
            return False

    def get(self, tenant: Tenant, rec_id: str) -> RecordingView:
        record = self._store.find(tenant.name, rec_id)
        if record is None:
            raise NotFound(f"recording {rec_id} not found for tenant {tenant.name}")
        return self._view(record)

    def tombstone(self, tenant: Tenant, rec_id: str) -> dict | None:
        """What retention expiry left of the recording, if it expired."""
        return self._store.tombstone(tenant.name, rec_id)

    def _view(self, record: ArchivedRecording) -> RecordingView:
        if record.erased:
            return RecordingView(record, "", "erased (GDPR/PIPL): nothing of it is processed or readable any more")
        try:
            progress = self._queue.state(record.recording_id)
            audit = self._queue.audit_of(record.recording_id) or None
        except Unavailable as exc:
            return RecordingView(record, "", f"pipeline state unknown: {exc.message}")
        if progress is None:
            return RecordingView(
                record, "archived", "archived; not queued yet (reconciliation will queue it)", audit=audit
            )
        return RecordingView(record, *progress, audit=audit)

    def list_page(
        self, tenant: Tenant, page_size: int, page_token: str, since: datetime | None, until: datetime | None
    ) -> tuple[list[RecordingView], str]:
        if page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size {page_size} is over the maximum of {MAX_PAGE_SIZE}")
        if since and until and since >= until:
            raise InvalidArgument("archived_from must be before archived_to")
        limit = page_size or DEFAULT_PAGE_SIZE
        views: list[RecordingView] = []
        next_token = ""
        for rec_id, _ in self._store.list_ids(tenant.name, page_token, since, until):
            if len(views) == limit:
                next_token = views[-1].record.recording_id
                break
            record = self._store.find(tenant.name, rec_id)
            if record is not None:
                views.append(self._view(record))
        return views, next_token

    def set_legal_hold(self, tenant: Tenant, rec_id: str, on: bool) -> ArchivedRecording:
        record = self._store.set_legal_hold(tenant.name, rec_id, on)
        log.info("legal hold %s on %s/%s", "set" if on else "released", tenant.name, rec_id)
        return record


def _not_erased(record: ArchivedRecording | None) -> ArchivedRecording | None:
    """An archived recording an upload is a duplicate of; one that was erased cannot be archived again (its
    locked ciphertext keeps the name until its retention ends)."""
    if record is not None and record.erased:
        raise FailedPrecondition(
            f"recording {record.recording_id} was erased (GDPR/PIPL): the same audio cannot be archived again "
            "while its erased copy is under retention"
        )
    return record


def _checked_end(chunks: Iterable[bytes], connected: Callable[[], bool]) -> Iterator[bytes]:
    yield from chunks
    if not connected():
        raise Cancelled("the client went away before the upload finished; nothing was stored")


def _retention(policy: LockPolicy) -> LockPolicy:
    """What the record keeps of the policy: the retention itself (the hot lock is on the objects)."""
    return LockPolicy(policy.mode, policy.retain_until)
