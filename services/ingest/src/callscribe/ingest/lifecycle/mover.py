"""Hot -> cold tiering that never unlocks (issue 18; the argument is in the README, "Storage lifecycle").

One recording moves in steps, each safe to repeat after a crash at any point:

1. copy the hot copy's bytes into the cold tier (`LockedBucket.copy_in`: the source hashes to the recording's
   SHA-256 while it is read, or nothing is committed), locked until the end of the recording's retention and
   never earlier than any copy's lock, with the SHA-256, the record and the legal hold; a copy left by an
   earlier try is used again if it verifies and is locked long enough;
2. read the cold copy back and hash it;
3. write the new location (`location.json`, a new locked version): from here on every reader reads the cold
   copy; before here the hot one;
4. tell the index (UpdateStorage); if the indexer is not there it is remembered and told next pass;
5. release the hot copies once their (short) hot lock has ended and the index knows: later passes.

While a recording cannot be moved (the cold S3 is down, its copy fails to verify) its hot lock is extended
whenever less than `extend_before_days` is left, so a copy of it is locked at every moment. Two replicas never
work on one recording at once (a lease in Redis); every step also checks what is there before it writes.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from callscribe.ingest.convert import object_ref_pb
from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.model import ArchivedRecording, Location, StoredObject, recording_prefix
from callscribe.ingest.s3store import AUDIO, LOCATION, SHA_META, SIDECAR, S3RecordingStore
from callscribe.kit.errors import DomainError
from callscribe.kit.tenants import Tenant, TenantRegistry
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.errors import IntegrityError, ObjectLocked
from callscribe.storage.location import ObjectRef, Tier

log = logging.getLogger(__name__)

# The steps a test may have the process killed at (INGEST_LIFECYCLE_KILL_AT): kill -9 at every step.
STEPS = ("leased", "copied", "verified", "located", "indexed", "releasing")

MOVED, EXTENDED, RELEASED, FAILED, BUSY = "MOVED", "HOT_LOCK_EXTENDED", "HOT_RELEASED", "FAILED", "BUSY"


@dataclass(frozen=True)
class MoveEvent:
    tenant: str
    recording_id: str
    outcome: str
    detail: str = ""
    object: StoredObject | None = None
    size_bytes: int = 0
    retain_until: datetime | None = None


@dataclass(frozen=True)
class MoverConfig:
    extend_before_days: float = 14.0  # a hot lock with less than this left, on a recording not moved yet, is extended
    extend_days: float = 30.0  # by this much from now
    part_size: int = 16 * 1024 * 1024
    lease_seconds: float = 900.0
    concurrency: int = 4  # recordings moved at once by one replica (hashing overlaps S3's answers)
    kill_at: str = ""  # a step of STEPS: SIGKILL this process there (fault-injection tests only)


class Mover:
    def __init__(
        self,
        store: S3RecordingStore,
        tenants: TenantRegistry,
        state: LifecycleRedis,
        index: IndexClient,
        config: MoverConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[MoveEvent], None] = lambda event: None,
    ) -> None:
        self._store = store
        self._cold: LockedBucket = store.require_cold()
        self._tenants = tenants
        self._state = state
        self._index = index
        self._config = config
        self._clock = clock
        self._observe = observe
        self._owner = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # -- a pass -----------------------------------------------------------------------------------
    def run(
        self, tenant: str | None = None, older_than_days: float | None = None, limit: int = 0
    ) -> Iterator[MoveEvent]:
        """One tiering pass: index updates left from before, then every recording of `tenant` (all: None)
        archived at least `older_than_days` ago (default: the tenant's hot_days) moves, and the hot copies of
        moved recordings whose lock ended are released. One event per recording something happened to."""
        self._retry_index_updates(tenant)
        done = 0
        width = self._config.concurrency
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="mover") as pool:
            pending: set[Future[MoveEvent | None]] = set()
            for spec, rec_id, move, listed in self._candidates(tenant, older_than_days):
                # `concurrency` recordings at once; with a limit, never more in flight than may still count
                while pending and (len(pending) >= width or (limit and done + len(pending) >= limit)):
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for event in self._finished(finished):
                        done += 1
                        yield event
                if limit and done >= limit:
                    break
                pending.add(pool.submit(self.handle, spec, rec_id, move=move, listed_without_location=listed))
            for event in self._finished(pending):
                yield event

    def _candidates(
        self, tenant: str | None, older_than_days: float | None
    ) -> Iterator[tuple[Tenant, str, bool, bool]]:
        """(tenant, recording id, due to move, listed without a location) of every recording with a hot copy:
        one listing of the hot bucket says which have one (a released recording has nothing left to do)."""
        for name in [tenant] if tenant else self._tenants.names():
            spec = self._tenants.get(name)
            if spec is None:
                continue
            days = spec.hot_days if older_than_days is None else older_than_days
            cutoff = self._clock() - timedelta(days=days)
            for rec_id, names, archived_at, _size in self._store.inventory(name):
                if AUDIO in names and archived_at is not None:
                    yield spec, rec_id, archived_at <= cutoff, LOCATION not in names

    def _finished(self, futures: set[Future[MoveEvent | None]]) -> Iterator[MoveEvent]:
        for future in as_completed(futures):
            event = future.result()
            if event is not None:
                self._observe(event)
                yield event

    def handle(
        self, tenant: Tenant, rec_id: str, *, move: bool = True, listed_without_location: bool = False
    ) -> MoveEvent | None:
        """Whatever the recording needs now: moved (when `move`), its hot lock extended, its hot copy released.

        `listed_without_location`: a listing just saw no `location.json`, so it is not looked up again; should
        another replica have moved it since, its cold copy is found, and the location looked up then."""
        if not self._state.acquire(rec_id, self._owner, self._config.lease_seconds):
            return MoveEvent(tenant.name, rec_id, BUSY, "another lifecycle replica is working on it")
        try:
            self._step("leased")
            return self._handle(tenant, rec_id, move, listed_without_location)
        except (DomainError, ObjectLocked) as exc:
            reason = _reason(exc)
            log.warning("%s/%s: %s", tenant.name, rec_id, reason)
            return MoveEvent(tenant.name, rec_id, FAILED, reason)
        finally:
            self._state.release(rec_id, self._owner)

    def _handle(self, tenant: Tenant, rec_id: str, move: bool, listed_without_location: bool) -> MoveEvent | None:
        location = None if listed_without_location else self._store.location(tenant.name, rec_id)
        if location is not None:
            return self._release(tenant, rec_id, location)
        record = self._store.find_hot(tenant.name, rec_id)
        if record is None or record.object is None:
            return None
        if not move:
            return self._keep_locked(record, "")
        try:
            return self._move(tenant, record)
        except (DomainError, ObjectLocked) as exc:
            reason = _reason(exc)
            log.warning("%s/%s: not moved: %s", tenant.name, rec_id, reason)
            return self._keep_locked(record, reason) or MoveEvent(tenant.name, rec_id, FAILED, reason)

    # -- the move -----------------------------------------------------------------------------------
    def _move(self, tenant: Tenant, record: ArchivedRecording) -> MoveEvent | None:
        assert record.object is not None and record.lock is not None
        # The stored bytes are copied as they are (an encrypted recording's ciphertext: no key needed) and checked
        # against the stored SHA-256.
        hot_ref = ObjectRef(
            record.object.bucket, record.object.key, record.object.version_id, record.stored_sha256, Tier.HOT
        )
        mode, policy_end = record.retention_end()
        until = max(t for t in (policy_end, record.lock.retain_until) if t is not None)  # never earlier than a copy
        lock = Lock(mode or tenant.retention_mode, until, record.lock.legal_hold)
        version = self._usable_copy(record, lock)
        if version is not None and self._store.location(record.tenant, record.recording_id) is not None:
            return None  # moved by another replica since it was listed
        if version is None:
            version = self._cold.copy_in(
                self._store.hot,
                hot_ref,
                record.object.key,
                self._store.cold_metadata(record),
                lock,
                part_size=self._config.part_size,
                storage_class=tenant.cold_storage_class,
                size=record.stored_size,
            )
            self._step("copied")
            self._verify_copy(record, version, lock)
        self._step("verified")
        if self._store.needs_cold_sidecar(record) and not self._cold_sidecar_ok(record, lock):
            self._store.put_cold_sidecar(record, lock)
        moved_at = self._clock().replace(microsecond=0)
        location = Location(
            "COLD", self._cold.name, record.object.key, version, record.sha256, record.stored_size, moved_at,
            lock.mode, until, record.archived_at, record.stored_sha256 if record.sealed is not None else "",
        )  # fmt: skip
        self._store.write_location(record, location)
        self._step("located")
        log.info("%s/%s moved to %s version %s", record.tenant, record.recording_id, self._cold.name, version)
        cold = StoredObject(self._cold.name, record.object.key, version, record.sha256)
        detail = self._tell_index(record.tenant, record.recording_id, cold, moved_at)
        self._step("indexed")
        return MoveEvent(record.tenant, record.recording_id, MOVED, detail, cold, record.size_bytes, until)

    def _usable_copy(self, record: ArchivedRecording, lock: Lock) -> str | None:
        """A cold copy an earlier try left (crashed after copying): its version if it hashes right and is locked
        at least as long as `lock`; else None and a new copy is made (a too-short one stays as it is: locked)."""
        assert record.object is not None
        for version in self._cold.versions(record.object.key):
            if version.key != record.object.key or version.delete_marker or version.size != record.stored_size:
                continue
            stat = self._cold.stat(version.key, version.version_id)
            if stat is None or stat.metadata.get(SHA_META, "").lower() != record.sha256:
                continue
            if not _locked_enough(stat.lock, lock):
                log.warning(
                    "%s: cold copy %s is locked only until %s (needs %s): not used",
                    record.recording_id, version.version_id, stat.lock.retain_until, lock.retain_until,
                )  # fmt: skip
                continue
            try:
                self._verify_copy(record, version.version_id, lock)
            except IntegrityError as exc:
                log.error("%s: an earlier cold copy does not verify: %s", record.recording_id, exc.message)
                continue
            return version.version_id
        return None

    def _verify_copy(self, record: ArchivedRecording, version: str, lock: Lock) -> None:
        """The cold copy, read back, hashes to the recording's SHA-256, and S3 locked it as asked."""
        assert record.object is not None
        ref = ObjectRef(self._cold.name, record.object.key, version, record.stored_sha256, Tier.COLD)
        locks: list[Lock] = []
        size = self._cold.read_verified(ref, lambda data: None, reader="the lifecycle", on_lock=locks.append)
        if size != record.stored_size:
            raise IntegrityError(f"{ref.describe()}: {size} bytes, the record says {record.stored_size}")
        if not locks or not _locked_enough(locks[0], lock):
            got = locks[0] if locks else None
            raise IntegrityError(
                f"{ref.describe()}: S3 locked the copy {got}, not {lock.mode} until {lock.retain_until}: refused "
                "(the hot copy stays the one read; check the cold bucket's Object Lock)"
            )

    def _cold_sidecar_ok(self, record: ArchivedRecording, lock: Lock) -> bool:
        stat = self._cold.stat(recording_prefix(record.tenant, record.recording_id) + SIDECAR)
        return stat is not None and _locked_enough(stat.lock, lock)

    def _tell_index(self, tenant: str, rec_id: str, obj: StoredObject, moved_at: datetime) -> str:
        try:
            indexed = self._index.moved(tenant, rec_id, object_ref_pb(obj), moved_at)
        except DomainError as exc:
            self._state.index_pending(tenant, rec_id, True)
            return f"the index is told later ({exc.message})"
        self._state.index_pending(tenant, rec_id, False)
        return "" if indexed else "not indexed yet: the pipeline indexes it with its cold location"

    def _retry_index_updates(self, only_tenant: str | None) -> None:
        for tenant, rec_id in self._state.all_index_pending():
            if only_tenant and tenant != only_tenant:
                continue
            try:
                record = self._store.find(tenant, rec_id)
            except DomainError as exc:
                log.warning("index updates wait for the next pass: %s", exc.message)
                return
            if record is None or record.object is None or record.moved_at is None:
                self._state.index_pending(tenant, rec_id, False)
                continue
            detail = self._tell_index(tenant, rec_id, record.object, record.moved_at)
            if detail.startswith("the index is told later"):
                return  # the indexer is still away: the rest waits for the next pass
            log.info("%s/%s: the index now knows its cold location", tenant, rec_id)

    # -- keeping a hot copy locked ----------------------------------------------------------------------
    def _keep_locked(self, record: ArchivedRecording, reason: str) -> MoveEvent | None:
        """Extend the hot copies' lock of a recording not moved yet when less than `extend_before_days` is
        left (never past what it needs: its retention's end)."""
        assert record.object is not None and record.lock is not None
        now = self._clock()
        current = record.lock.retain_until
        if current is None or current - now > timedelta(days=self._config.extend_before_days):
            return None
        _mode, policy_end = record.retention_end()
        until = now + timedelta(days=self._config.extend_days)
        if policy_end is not None:
            until = min(until, max(policy_end, current))
        if until <= current:
            return None
        lock = Lock(record.lock.mode, until.replace(microsecond=0) + timedelta(seconds=1))
        self._store.hot.extend_retention(record.object.key, record.object.version_id, lock)
        sidecar = recording_prefix(record.tenant, record.recording_id) + SIDECAR
        stat = self._store.hot.stat(sidecar)
        if stat is not None:
            self._store.hot.extend_retention(sidecar, stat.version_id, lock)
        why = f" ({reason})" if reason else ""
        log.warning("%s/%s: hot lock extended to %s%s", record.tenant, record.recording_id, lock.retain_until, why)
        return MoveEvent(
            record.tenant, record.recording_id, EXTENDED, f"hot lock extended{why}", record.object,
            record.size_bytes, lock.retain_until,
        )  # fmt: skip

    # -- releasing the hot copies of a moved recording ------------------------------------------------------
    def _release(self, tenant: Tenant, rec_id: str, location: Location) -> MoveEvent | None:
        """Delete the hot copies (audio, sidecar) of a moved recording whose lock ended, once the cold copy is
        there and the index knows; `location.json` stays (it says where the recording is)."""
        prefix = recording_prefix(tenant.name, rec_id)
        hot_versions = [v for v in self._store.hot.versions(prefix) if v.key in (prefix + AUDIO, prefix + SIDECAR)]
        if not hot_versions:
            return None
        if self._state.is_index_pending(tenant.name, rec_id):
            return None  # the index may still point at the hot copy
        cold = self._cold.stat(location.key, location.version_id)
        if cold is None or cold.size != location.size_bytes or not cold.lock.retain_until:
            log.error("%s/%s: its cold copy is not as recorded; the hot copy is kept", tenant.name, rec_id)
            return MoveEvent(tenant.name, rec_id, FAILED, "its cold copy is not as recorded: hot copy kept")
        now = self._clock()
        for version in hot_versions:
            stat = None if version.delete_marker else self._store.hot.stat(version.key, version.version_id)
            if stat is not None and (stat.lock.legal_hold or (stat.lock.retain_until and stat.lock.retain_until > now)):
                return None  # still locked (or held): a later pass
        self._step("releasing")
        for version in hot_versions:
            self._store.hot.delete_version(version.key, version.version_id)
        log.info("%s/%s: hot copy released (%d versions)", tenant.name, rec_id, len(hot_versions))
        obj = StoredObject(location.bucket, location.key, location.version_id, location.sha256)
        return MoveEvent(tenant.name, rec_id, RELEASED, f"{len(hot_versions)} hot versions deleted", obj)

    def _step(self, step: str) -> None:
        if self._config.kill_at == step:
            log.warning("fault injection: killed at step %r (INGEST_LIFECYCLE_KILL_AT)", step)
            os.kill(os.getpid(), signal.SIGKILL)


def _reason(exc: DomainError | ObjectLocked) -> str:
    return exc.message if isinstance(exc, DomainError) else str(exc)


def _locked_enough(have: Lock, want: Lock) -> bool:
    return (
        have.mode == want.mode
        and have.retain_until is not None
        and want.retain_until is not None
        and have.retain_until >= want.retain_until
        and (have.legal_hold or not want.legal_hold)
    )


@dataclass(frozen=True)
class Survey:
    """What the archive looks like now, for the metrics and alerts (one listing of each tier per tenant)."""

    hot_bytes: int
    hot_recordings: int
    cold_bytes: int
    cold_recordings: int
    overdue_seconds: float  # how long the oldest recording past its hot_days has been waiting to move (0: none)
    lapsing: int  # unmoved recordings whose hot lock ends within the alert window (a copy could be unlocked soon)


def survey(
    store: S3RecordingStore,
    tenants: TenantRegistry,
    now: datetime,
    alert_days: float,
    hot_grace_days: float | None,
) -> Survey:
    """Sizes per tier, the mover's lag and the hot locks about to lapse. The hot lock of an unmoved recording is
    computed (archived + hot_days + grace) and only those that may be near their end are looked at (HEAD)."""
    hot_bytes = hot_count = cold_bytes = cold_count = lapsing = 0
    overdue = 0.0
    cold = store.require_cold()
    for name in tenants.names():
        tenant = tenants.get(name)
        if tenant is None:
            continue
        for rec_id, names, archived, size in store.inventory(name):
            if AUDIO not in names or archived is None:
                continue
            hot_bytes += size
            hot_count += 1
            if "location.json" in names:
                continue
            waiting = (now - archived).total_seconds() - tenant.hot_days * 86400
            overdue = max(overdue, waiting)
            if hot_grace_days is None:
                continue
            computed_end = archived + timedelta(days=tenant.hot_days + hot_grace_days)
            if computed_end - now <= timedelta(days=alert_days):
                stat = store.hot.stat(recording_prefix(name, rec_id) + AUDIO)
                end = stat.lock.retain_until if stat is not None else None
                if end is not None and end - now <= timedelta(days=alert_days):
                    lapsing += 1
        for listed in cold.list(f"recordings/{name}/"):
            if listed.key.endswith("/" + AUDIO):
                cold_bytes += listed.size or 0
                cold_count += 1
    return Survey(hot_bytes, hot_count, cold_bytes, cold_count, max(0.0, overdue), lapsing)
