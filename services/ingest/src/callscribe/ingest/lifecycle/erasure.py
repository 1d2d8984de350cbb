"""Erasure under WORM (GDPR Art. 17 / PIPL, issue 19): crypto-shredding.

A recording's audio and record are locked for years: no one can delete them, not even an administrator (that
is what COMPLIANCE mode is for). They are stored encrypted with a data key of their own, and the data key is
stored only wrapped, in the keys bucket, which has neither versioning nor a lock. Erasing a recording:

1. refuses while a legal hold is on any of its copies (a hold outranks an erasure request: release it first);
2. destroys its data key (every key of the recording, and its customer marker) and proves them gone: from then
   on the locked ciphertext, in both tiers, and the encrypted part of its record are noise to everyone;
3. deletes its call and utterances from the index (retried by the expiry pass if the index is away) and what
   the pipeline keeps of it in Redis;
4. writes a receipt (recording id, SHA-256s, key ids, who asked, when, why, documents deleted), locked
   (COMPLIANCE) in the hot bucket under `erasures/`, outside what anyone can edit.

The tenant's access trail (`storage.trail`) gets an `erase.recording` entry before anything is destroyed (no
entry, no erasure: UNAVAILABLE) and one with the receipt once it is done; `erase.customer` names every recording
of a customer erasure first. A failed erasure adds `erase.recording.failed`.

Erasing again completes an erasure a crash interrupted and returns the receipt. A recording archived before
encryption at rest was on is refused with the reason: its plaintext is locked and cannot be shredded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.expiry import delete_from_index, held_copies, stored_copies
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.model import ArchivedRecording, recording_prefix
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from callscribe.kit.tenants import Tenant
from callscribe.storage.bucket import Lock
from callscribe.storage.errors import ObjectMissing, StorageUnavailable
from callscribe.storage.recordkeys import RecordingKeys
from callscribe.storage.trail import Trail

log = logging.getLogger(__name__)

UNREDACTED = "unredacted.sealed"  # the indexer's (indexer.unredacted): the unredacted transcript, sealed
RECEIPT_PREFIX = "erasures/"  # erasures/<tenant>/<recording id>.json
MAX_REASON_CHARS = 500


class Eraser:
    def __init__(
        self,
        store: S3RecordingStore,
        state: LifecycleRedis,
        index: IndexClient,
        receipt_days: float,
        trail: Trail | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._trail = trail  # None: tests of the erasure alone; the lifecycle program always has one
        self._state = state
        self._index = index
        self._receipt_days = receipt_days
        self._clock = clock

    def _keys(self) -> RecordingKeys:
        if self._store.keys is None:
            raise FailedPrecondition(
                "encryption at rest is off here (no INGEST_KEK_FILE or INGEST_KEK_TRANSIT_URL): nothing can be "
                "erased by destroying keys; configure the lifecycle with the ingest's KEK settings"
            )
        return self._store.keys

    def erase(self, tenant_: Tenant, rec_id: str, reason: str, actor: dict[str, str]) -> dict:
        """Erase one recording (see the module doc); the receipt."""
        reason = _checked_reason(reason)
        keys = self._keys()
        tenant = tenant_.name
        existing = self.receipt(tenant, rec_id)
        record = self._store.find(tenant, rec_id)
        if record is None or record.object is None:
            if existing is not None:
                return existing
            raise NotFound(f"recording {rec_id} not found for tenant {tenant}")
        if record.sealed is None:
            raise FailedPrecondition(
                f"recording {rec_id} was archived before encryption at rest was on: its audio is stored as it came, "
                "locked until its retention ends, and cannot be crypto-shredded. Its index documents can be "
                "deleted by retention expiry only; tell the data-protection officer"
            )
        self._refuse_if_held(record)
        fingerprints = {"reason": reason, "sha256": record.sha256, "stored_sha256": record.stored_sha256}
        self._append(tenant_, actor, "erase.recording", [rec_id], {**fingerprints, "step": "requested"})
        try:
            key_ids = keys.destroy(tenant, rec_id)  # from here on the recording is noise to everyone
        except DomainError as exc:
            self._append(tenant_, actor, "erase.recording.failed", [rec_id], {**fingerprints, "error": exc.message})
            raise
        self._step_log(tenant, rec_id, key_ids)
        self._delete_unredacted(tenant, rec_id)
        documents = delete_from_index(self._state, self._index, tenant, rec_id, "erased")
        self._state.forget(rec_id)
        if existing is not None:
            return existing
        now = self._clock().replace(microsecond=0)
        receipt = {
            "tenant": tenant,
            "recording_id": rec_id,
            "sha256": record.sha256,
            "stored_sha256": record.stored_sha256,
            "scheme": record.sealed.scheme,
            "key_ids": sorted(set(key_ids) | {record.sealed.key_id}),
            "requested_by": actor["name"],
            "requested_by_role": actor["role"],
            "erased_at": now.isoformat(),
            "reason": reason,
            "documents_deleted": documents,
        }
        receipt["receipt"] = f"s3://{self._store.hot.name}/{_receipt_key(tenant, rec_id)}"
        self._put_receipt(tenant, rec_id, receipt, now)
        self._append(tenant_, actor, "erase.recording", [rec_id], {**receipt, "step": "done"})
        return receipt

    def erase_customer(self, tenant_: Tenant, customer_id: str, reason: str, actor: dict[str, str]) -> list[dict]:
        """Every recording whose upload named `customer_id` (the keys bucket's markers find them)."""
        tenant = tenant_.name
        if not customer_id.strip():
            raise InvalidArgument("customer_id is empty: name the customer whose recordings are to be erased")
        _checked_reason(reason)
        rec_ids = self._keys().recordings_of_customer(tenant, customer_id)
        if not rec_ids:
            raise NotFound(
                f"no encrypted recording of tenant {tenant} names customer {customer_id!r} (recordings archived "
                "before encryption at rest was on are not found this way)"
            )
        held = []
        for rec_id in rec_ids:
            record = self._store.find(tenant, rec_id)
            if record is not None and self._holds(record):
                held.append(rec_id)
        if held:
            raise FailedPrecondition(
                f"a legal hold is on {len(held)} of the customer's {len(rec_ids)} recordings ({', '.join(held)}): "
                "nothing was erased; release the holds first or erase the others one by one"
            )
        self._append(tenant_, actor, "erase.customer", rec_ids, {"reason": reason.strip()})
        return [self.erase(tenant_, rec_id, reason, actor) for rec_id in rec_ids]

    def receipt(self, tenant: str, rec_id: str) -> dict | None:
        try:
            return dict(json.loads(self._store.hot.read_bytes(_receipt_key(tenant, rec_id))))
        except ObjectMissing:
            return None

    # -- steps ---------------------------------------------------------------------------------------
    def _append(self, tenant: Tenant, actor: dict[str, str], action: str, targets: list[str], details: dict) -> None:
        if self._trail is None:
            return
        try:
            self._trail.append(tenant, actor, action, targets, details)
        except StorageUnavailable as exc:
            raise Unavailable(
                f"the access trail could not record {action} ({exc.message}): nothing more was erased; retry"
            ) from exc

    def _holds(self, record: ArchivedRecording) -> list[str]:
        return held_copies(stored_copies(self._store, record.tenant, record.recording_id))

    def _refuse_if_held(self, record: ArchivedRecording) -> None:
        held = self._holds(record)
        if held:
            raise FailedPrecondition(
                f"recording {record.recording_id} is under a legal hold ({', '.join(held)}): a hold outranks an "
                "erasure request; nothing was erased. Release the hold (an admin, with the legal team's consent) "
                "and erase again"
            )

    def _delete_unredacted(self, tenant: str, rec_id: str) -> None:
        """The unredacted transcript the indexer kept (unlocked; already noise without the key): every version."""
        key = recording_prefix(tenant, rec_id) + UNREDACTED
        for version in self._store.hot.versions(key):
            if version.key == key:
                self._store.hot.delete_version(key, version.version_id)

    def _put_receipt(self, tenant: str, rec_id: str, receipt: dict, now: datetime) -> None:
        data = json.dumps(receipt, ensure_ascii=False, sort_keys=True).encode("utf-8")
        lock = Lock("COMPLIANCE", (now + timedelta(days=self._receipt_days)).replace(microsecond=0))
        self._store.hot.put_locked(_receipt_key(tenant, rec_id), data, "application/json", lock)

    @staticmethod
    def _step_log(tenant: str, rec_id: str, key_ids: list[str]) -> None:
        log.warning("ERASED %s/%s: data key(s) %s destroyed", tenant, rec_id, ", ".join(key_ids) or "(none left)")


def _receipt_key(tenant: str, rec_id: str) -> str:
    return f"{RECEIPT_PREFIX}{tenant}/{rec_id}.json"


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidArgument("an erasure needs a reason (the request's reference, e.g. 'DSR-2026-0042')")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument(f"the reason is over {MAX_REASON_CHARS} characters")
    return reason
