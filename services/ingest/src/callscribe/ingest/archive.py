"""Service layer of ingest: archive an upload, read, list and hold recordings.

Collaborators come in as arguments (ports below); the composition root wires the real ones.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from callscribe.ingest.audio import AudioFacts
from callscribe.ingest.model import ArchivedRecording, Job, LockPolicy, RecordingInfo, recording_id
from callscribe.kit.errors import InvalidArgument, NotFound, Unavailable
from callscribe.kit.tenants import Tenant

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


class RecordingStore(Protocol):
    def find(self, tenant: str, rec_id: str) -> ArchivedRecording | None: ...
    def put_locked(self, record: ArchivedRecording, path: Path, policy: LockPolicy) -> ArchivedRecording: ...
    def set_legal_hold(self, tenant: str, rec_id: str, on: bool) -> ArchivedRecording: ...
    def list_ids(
        self, tenant: str, start_after: str, since: datetime | None, until: datetime | None
    ) -> Iterator[tuple[str, datetime]]: ...
    def list_all(self) -> Iterator[tuple[str, str]]: ...


class JobQueue(Protocol):
    def enqueue(self, job: Job) -> bool: ...
    def state(self, recording_id: str) -> tuple[str, str] | None: ...
    def unknown(self, recording_ids: list[str]) -> list[str]: ...


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


class Archiver:
    def __init__(
        self,
        store: RecordingStore,
        queue: JobQueue,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._locks = KeyedLocks()

    def archive(
        self, tenant: Tenant, info: RecordingInfo, path: Path, size: int, sha256: str, facts: AudioFacts
    ) -> UploadAck:
        """Store the validated upload locked (or find it already stored), then enqueue its job."""
        layout = info.layout_for(facts.channels)
        rec_id = recording_id(tenant.name, sha256)
        with self._locks.hold(rec_id):
            stored = self._store.find(tenant.name, rec_id)
            duplicate = stored is not None
            if stored is None:
                now = self._clock().replace(microsecond=0)
                record = ArchivedRecording(rec_id, tenant.name, info, facts, layout, size, sha256, now)
                policy = LockPolicy(tenant.retention_mode, now + timedelta(days=tenant.retention_days))
                stored = self._store.put_locked(record, path, policy)
        return UploadAck(stored, duplicate, self._enqueue(stored))

    def _enqueue(self, record: ArchivedRecording) -> bool:
        assert record.object is not None  # put_locked and find always set it
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
            # The audio is safe and acknowledged; reconciliation will enqueue it later.
            log.warning("recording %s archived but not enqueued: %s", record.recording_id, exc.message)
            return False

    def get(self, tenant: Tenant, rec_id: str) -> RecordingView:
        record = self._store.find(tenant.name, rec_id)
        if record is None:
            raise NotFound(f"recording {rec_id} not found for tenant {tenant.name}")
        return self._view(record)

    def _view(self, record: ArchivedRecording) -> RecordingView:
        try:
            progress = self._queue.state(record.recording_id)
        except Unavailable as exc:
            return RecordingView(record, "", f"pipeline state unknown: {exc.message}")
        if progress is None:
            return RecordingView(record, "archived", "archived; not queued yet (reconciliation will queue it)")
        return RecordingView(record, progress[0], progress[1])

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

    def reconcile(self, batch: int = 500) -> int:
        """Enqueue every archived recording the queue has never heard of; returns how many were queued."""
        queued = 0
        pending: list[tuple[str, str]] = []
        for item in self._store.list_all():
            pending.append(item)
            if len(pending) == batch:
                queued += self._enqueue_unknown(pending)
                pending = []
        return queued + (self._enqueue_unknown(pending) if pending else 0)

    def _enqueue_unknown(self, items: list[tuple[str, str]]) -> int:
        tenants = dict((rec_id, tenant) for tenant, rec_id in items)
        queued = 0
        for rec_id in self._queue.unknown(list(tenants)):
            record = self._store.find(tenants[rec_id], rec_id)
            if record is not None and self._enqueue(record):
                log.info("reconciliation queued %s/%s", record.tenant, rec_id)
                queued += 1
        return queued

    def set_legal_hold(self, tenant: Tenant, rec_id: str, on: bool) -> ArchivedRecording:
        record = self._store.set_legal_hold(tenant.name, rec_id, on)
        log.info("legal hold %s on %s/%s", "set" if on else "released", tenant.name, rec_id)
        return record


class KeyedLocks:
    """Serialises work per key inside this process (two uploads of the same bytes at once)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
