"""Retention expiry (issue 18): a recording whose retention has ended and that no legal hold keeps is deleted
everywhere (every version of its audio, record and location, in both tiers, and its call in the index), after a
tombstone is written: recording id, tenant, SHA-256, archived at, retained until, deleted at, the reason.

The tombstone comes first and is written once, so a pass that stops half-way (a crash, S3 away) leaves a
recording that the next pass finds and finishes; the tombstone is locked (COMPLIANCE) in the hot bucket under
`tombstones/`, outside what expiry deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.model import recording_prefix
from callscribe.ingest.s3store import LOCATION, S3RecordingStore
from callscribe.kit.errors import DomainError
from callscribe.kit.tenants import TenantRegistry
from callscribe.storage.bucket import Lock, LockedBucket, Version
from callscribe.storage.errors import ObjectLocked

log = logging.getLogger(__name__)

REASON = "retention ended"


@dataclass(frozen=True)
class ExpiryEvent:
    tenant: str
    recording_id: str
    tombstone: dict | None  # set when deleted
    detail: str = ""


class Expirer:
    def __init__(
        self,
        store: S3RecordingStore,
        tenants: TenantRegistry,
        state: LifecycleRedis,
        index: IndexClient,
        tombstone_days: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[ExpiryEvent], None] = lambda event: None,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._state = state
        self._index = index
        self._tombstone_days = tombstone_days
        self._clock = clock
        self._observe = observe

    def run(self, tenant: str | None = None) -> Iterator[ExpiryEvent]:
        """Every recording of `tenant` (all: None) whose retention ended: deleted, or kept with the reason."""
        self._retry_index_deletes(tenant)
        for name in [tenant] if tenant else self._tenants.names():
            for rec_id, _archived in self._store.list_ids(name, "", None, None):
                try:
                    event = self.expire_one(name, rec_id)
                except DomainError as exc:
                    event = ExpiryEvent(name, rec_id, None, f"kept for now: {exc.message}")
                if event is not None:
                    self._observe(event)
                    yield event

    def expire_one(self, tenant: str, rec_id: str) -> ExpiryEvent | None:
        tombstone = self._store.tombstone(tenant, rec_id)
        copies = stored_copies(self._store, tenant, rec_id)
        if tombstone is None:  # not started: is it due, and free to go?
            record = self._store.find(tenant, rec_id)
            if record is None or record.object is None:
                return None
            mode, until = record.retention_end()
            now = self._clock()
            if until is None or until > now:
                return None
            held = held_copies(copies)
            if held:
                return ExpiryEvent(tenant, rec_id, None, f"kept: a legal hold is on ({', '.join(held)})")
            tombstone = {
                "recording_id": rec_id,
                "tenant": tenant,
                "sha256": record.sha256,
                "archived_at": record.archived_at.isoformat(),
                "retain_until": until.isoformat(),
                "deleted_at": now.replace(microsecond=0).isoformat(),
                "reason": REASON,
                "versions_deleted": len(copies),
                "mode": mode,
            }
            lock = Lock("COMPLIANCE", (now + timedelta(days=self._tombstone_days)).replace(microsecond=0))
            self._store.put_tombstone(tombstone, lock)
        kept = []
        for bucket, version in copies:  # location.json last: until it goes, the recording is still listed
            try:
                bucket.delete_version(version.key, version.version_id)
            except ObjectLocked:
                kept.append(f"{bucket.tier.value} {version.key}")
        if kept:
            return ExpiryEvent(tenant, rec_id, None, f"kept for now: a lock is still on ({', '.join(kept)})")
        if self._store.keys is not None:
            self._store.keys.destroy(tenant, rec_id)  # an encrypted recording's data key goes with it
        delete_from_index(self._state, self._index, tenant, rec_id, "deleted from S3")
        self._state.forget(rec_id)
        log.info("%s/%s: expired (%d versions deleted)", tenant, rec_id, len(copies))
        return ExpiryEvent(tenant, rec_id, tombstone)

    def _retry_index_deletes(self, only_tenant: str | None) -> None:
        for tenant, rec_id in self._state.all_pending("delete"):
            if not only_tenant or tenant == only_tenant:
                delete_from_index(self._state, self._index, tenant, rec_id, "deleted from S3")


def stored_copies(store: S3RecordingStore, tenant: str, rec_id: str) -> list[tuple[LockedBucket, Version]]:
    """Every version (delete markers too) of every object of the recording in both tiers, location.json last."""
    prefix = recording_prefix(tenant, rec_id)
    found = [(bucket, v) for bucket in (store.require_cold(), store.hot) for v in bucket.versions(prefix)]
    return sorted(found, key=lambda copy: copy[1].key.endswith("/" + LOCATION))  # stable: location.json last


def held_copies(copies: list[tuple[LockedBucket, Version]]) -> list[str]:
    """The copies a legal hold is on ("<tier> <key>"): expiry keeps them, erasure is refused."""
    held = []
    for bucket, version in copies:
        if version.delete_marker:
            continue
        stat = bucket.stat(version.key, version.version_id)
        if stat is not None and stat.lock.legal_hold:
            held.append(f"{bucket.tier.value} {version.key}")
    return held


def delete_from_index(state: LifecycleRedis, index: IndexClient, tenant: str, rec_id: str, done: str) -> int:
    """Delete the call's documents (how many there were); with the indexer away, the delete stays pending in Redis
    and every expiry pass tries it again (0 now). `done` says what already happened, for the log."""
    state.pending("delete", tenant, rec_id, True)
    try:
        documents = index.delete(tenant, rec_id)
    except DomainError as exc:
        log.warning("%s/%s: %s; the index deletes its documents next pass: %s", tenant, rec_id, done, exc.message)
        return 0
    state.pending("delete", tenant, rec_id, False)
    return documents
