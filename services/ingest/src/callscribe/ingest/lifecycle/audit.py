"""The integrity audit (issue 18): every stored copy of every recording, in every tier, read back and hashed,
compared with the SHA-256 recorded at ingest.

Rate-limited (bytes per second, all reads together) and resumable: a scheduled round keeps a checkpoint in
Redis after each recording, so a restart goes on where it stopped. A mismatch or a missing copy is an alarm,
never repaired: a counter, an ERROR log line, the call document's `integrity` flag (UpdateStorage), and a
locked entry in the audit trail (`audit/<tenant>/<id>/<time>.json` in the hot bucket).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.model import recording_prefix
from callscribe.ingest.s3store import AUDIO, S3RecordingStore
from callscribe.kit.errors import DomainError
from callscribe.kit.tenants import TenantRegistry
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.errors import IntegrityError, ObjectMissing, StorageUnavailable
from callscribe.storage.location import ObjectRef

log = logging.getLogger(__name__)

OK, MISMATCH, MISSING, UNREADABLE = "OK", "MISMATCH", "MISSING", ""
_SEVERITY = {OK: 0, UNREADABLE: 1, MISSING: 2, MISMATCH: 3}


@dataclass(frozen=True)
class AuditEvent:
    tenant: str
    recording_id: str
    integrity: str  # OK, MISMATCH, MISSING; "" when a copy could not be read this time (S3 away): no finding
    detail: str
    bytes_hashed: int
    verified_at: datetime


class Throttle:
    """At most `rate` bytes per second, whoever reads (a simple pacing clock, shared by threads)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def take(self, size: int) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + size / self._rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


class Auditor:
    def __init__(
        self,
        store: S3RecordingStore,
        tenants: TenantRegistry,
        state: LifecycleRedis,
        index: IndexClient,
        bytes_per_second: float,
        trail_days: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[AuditEvent], None] = lambda event: None,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._state = state
        self._index = index
        self._throttle = Throttle(bytes_per_second)
        self._trail_days = trail_days
        self._clock = clock
        self._observe = observe

    def run(self, tenant: str | None = None, recording_id: str = "") -> Iterator[AuditEvent]:
        """One recording, one tenant's recordings, or (neither) a round over every tenant that resumes from
        the last checkpoint and clears it when complete."""
        if recording_id:
            assert tenant is not None
            yield self._done(self.audit_one(tenant, recording_id))
            return
        scheduled = tenant is None
        start = self._state.audit_checkpoint() if scheduled else ""
        for name in [tenant] if tenant else self._tenants.names():
            if start and name < start.split("/", 1)[0]:
                continue
            after = start.split("/", 1)[1] if start and start.split("/", 1)[0] == name else ""
            for rec_id, _archived in self._store.list_ids(name, after, None, None):
                event = self._done(self.audit_one(name, rec_id))
                if scheduled:
                    self._state.set_audit_checkpoint(f"{name}/{rec_id}")
                yield event
        if scheduled:
            self._state.set_audit_checkpoint("")

    def _done(self, event: AuditEvent) -> AuditEvent:
        self._observe(event)
        return event

    def audit_one(self, tenant: str, rec_id: str) -> AuditEvent:
        """Hash every stored copy of the recording's audio (every version in the hot tier, every one in the cold
        tier); the one read now (the location) must be there."""
        started = self._clock()
        key = recording_prefix(tenant, rec_id) + AUDIO
        findings: list[tuple[str, str]] = []
        hashed = 0
        try:
            location = self._store.location(tenant, rec_id)
            record = self._store.find_hot(tenant, rec_id) if location is None else None
            # What the stored bytes must hash to: an encrypted recording's ciphertext SHA-256 (no key needed).
            if location is not None:
                sha256 = location.stored_sha256 or location.sha256
            else:
                sha256 = record.stored_sha256 if record else ""
            if not sha256:
                return AuditEvent(tenant, rec_id, MISSING, f"{key}: no copy and no location", 0, started)
            cold = self._store.require_cold()
            copies = [(self._store.hot, v.version_id) for v in self._store.hot.versions(key) if _is_copy(v, key)]
            copies += [(cold, v.version_id) for v in cold.versions(key) if _is_copy(v, key)]
            if location is not None and (cold, location.version_id) not in copies:
                findings.append((MISSING, f"COLD s3://{cold.name}/{key} version {location.version_id}: not there"))
            if location is None and not copies:
                findings.append((MISSING, f"HOT s3://{self._store.hot.name}/{key}: no version"))
            for bucket, version in copies:
                finding, size = self._check(bucket, ObjectRef(bucket.name, key, version, sha256, bucket.tier))
                hashed += size
                findings.append(finding)
        except DomainError as exc:  # S3 away while listing: no finding this time
            findings.append((UNREADABLE, f"could not be audited now: {exc.message}"))
        worst = max((f[0] for f in findings), key=lambda r: _SEVERITY[r], default=OK)
        detail = "; ".join(text for _result, text in findings)
        event = AuditEvent(tenant, rec_id, worst, detail, hashed, started)
        if worst != UNREADABLE:
            self._record(event)
        return event

    def _check(self, bucket: LockedBucket, ref: ObjectRef) -> tuple[tuple[str, str], int]:
        where = f"{bucket.tier.value} {ref.describe()}"
        try:
            size = bucket.read_verified(ref, lambda data: self._throttle.take(len(data)), reader="the lifecycle")
        except IntegrityError as exc:
            return (MISMATCH, f"{where}: {exc.message}"), 0
        except ObjectMissing:
            return (MISSING, f"{where}: missing"), 0
        except StorageUnavailable as exc:
            # S3 away, or S3 up but unable to give these bytes back (bitrot detected, a damaged needle: MinIO
            # and SeaweedFS then answer 500 for that object only). Asked for the object's facts: if S3 answers
            # those, the bytes are what is broken.
            try:
                there = bucket.stat(ref.key, ref.version_id) is not None
            except StorageUnavailable:
                return (UNREADABLE, f"{where}: not readable now ({exc.message})"), 0
            if not there:
                return (MISSING, f"{where}: missing"), 0
            return (MISMATCH, f"{where}: S3 has the object but cannot return its bytes ({exc.message})"), 0
        return (OK, f"{where}: {size} bytes OK"), size

    def _record(self, event: AuditEvent) -> None:
        """The finding where people and tools look: Redis (status), the index (search, Kibana), and for a
        failure the ERROR log and the locked audit trail."""
        self._state.record_audit(event.recording_id, event.integrity, event.verified_at.timestamp(), event.detail)
        if event.integrity != OK:
            log.error("INTEGRITY %s: %s/%s: %s", event.integrity, event.tenant, event.recording_id, event.detail)
            entry = {
                "recording_id": event.recording_id,
                "tenant": event.tenant,
                "integrity": event.integrity,
                "detail": event.detail,
                "verified_at": event.verified_at.isoformat(),
            }
            until = (event.verified_at + timedelta(days=self._trail_days)).replace(microsecond=0)
            self._store.put_audit_entry(
                event.tenant, event.recording_id, event.verified_at, entry, Lock("COMPLIANCE", until)
            )
        try:
            self._index.audited(event.tenant, event.recording_id, event.integrity, event.verified_at)
        except DomainError as exc:
            log.warning(
                "%s/%s: the index will learn the audit's finding next round: %s",
                event.tenant,
                event.recording_id,
                exc.message,
            )


def _is_copy(version, key: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(version.key == key and not version.delete_marker)
