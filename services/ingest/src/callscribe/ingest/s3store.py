"""The recording archive on S3 with Object Lock (MinIO in production, any S3 with Object Lock).

Layout per recording, under `recordings/<tenant>/<recording_id>/`:
- `audio`: the bytes, with the SHA-256 and key facts as object metadata; for a recording sent in
  one PUT whose full record fits in the metadata (~2 KB of headers), the record rides along in
  `x-amz-meta-record` and nothing else is written. Such a PUT starts while the bytes are still
  arriving when the record is known from the first bytes (`stream_audio`);
- `metadata.json`: otherwise, the full record (what the call-center system said plus the audio
  facts), written before the audio is committed;
- `location.json` (issue 18): once the storage lifecycle moved the recording, where its cold copy is
  (`Location`); each move writes a new locked version, the latest is the one read.
Every version carries the recording's lock from the moment it exists: its full retention, or with tiering
on the hot lock (hot_days + grace) for the hot copies and the full retention for the cold copy and
`location.json`. In the cold tier's bucket the same keys hold the copy: `audio` (with the record inline
where it fits) and `metadata.json` otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import UTC, datetime
from urllib.parse import quote

from prometheus_client import Gauge

from callscribe.ingest.model import (
    SEALED_ERASED,
    SEALED_LOCKED,
    SEALED_OPEN,
    AlreadyArchived,
    ArchivedRecording,
    AudioFacts,
    AudioWriter,
    Location,
    LockPolicy,
    LockState,
    RecordingInfo,
    Sealed,
    StoredObject,
    recording_prefix,
)
from callscribe.kit.errors import NotFound
from callscribe.storage import crypto
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.errors import IntegrityError, ObjectExists, ObjectMissing, StorageUnavailable
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.protection import ENCRYPTION_META, KEY_ID_META
from callscribe.storage.recordkeys import DataKey, KeyDestroyed, RecordingKeys
from callscribe.storage.transform import PLAIN
from callscribe.storage.writer import ObjectWriter

log = logging.getLogger(__name__)

AUDIO = "audio"
SIDECAR = "metadata.json"
LOCATION = "location.json"
AUDIT_PREFIX = "audit/"  # audit/<tenant>/<recording id>/<time>.json: the integrity audit's findings
TOMBSTONE_PREFIX = "tombstones/"  # tombstones/<tenant>/<recording id>.json: what expiry leaves
SHA_META = "x-amz-meta-sha256"
RECORD_META = "x-amz-meta-record"
# S3 allows 2 KB of user metadata in all; leave room for the other fields.
MAX_INLINE_RECORD = 1600
PRIVATE_LABEL = b"record"  # what the private part of a record is sealed as (`StreamingAeadCodec.seal`)


class EncryptedAudio:
    """An audio object being written encrypted with its recording's data key (issue 19). The key was stored
    (wrapped) before the first byte; an upload that does not commit removes it again (it encrypted nothing
    kept), one that committed never does."""

    def __init__(self, writer: ObjectWriter, key: DataKey, keys: RecordingKeys, tenant: str, rec_id: str) -> None:
        self._writer = writer
        self.key = key
        self._keys = keys
        self._tenant, self._rec_id = tenant, rec_id
        self._committed = False
        self.sealed: Sealed | None = None  # set when the record is sealed at commit

    @property
    def single_put(self) -> bool:
        return self._writer.single_put

    @property
    def streaming(self) -> bool:
        return False

    def can_stream(self, size: int) -> bool:
        return False  # a streamed PUT is signed with the payload's SHA-256 before it starts: unknown here

    def stream(self, extra_headers: dict[str, str], size: int, sha256: str) -> None:
        raise ValueError("an encrypted object is not streamed")

    def write(self, chunk: bytes) -> None:
        self._writer.write(chunk)

    def finish_encoding(self) -> tuple[str, int]:
        return self._writer.finish_encoding()

    def commit(self, extra_headers: dict[str, str] | None = None, sha256: str | None = None) -> str:
        version = self._writer.commit(extra_headers)
        self._committed = True
        return version

    def abort(self) -> None:
        self._writer.abort()
        if self._committed:
            return
        try:
            self._keys.discard(self._tenant, self._rec_id, self.key.key_id)
        except StorageUnavailable as exc:  # an orphan key encrypts nothing; erasure removes it with the rest
            log.warning("%s: the data key of an upload not kept stays in the keys bucket: %s", self._rec_id, exc)


class S3RecordingStore:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        part_size: int,
        parallel_parts: int,
        max_part_uploads: int,
        max_streamed_puts: int = 64,
        streamed_puts: Gauge | None = None,
        stream_min_bytes: int = 0,
        cold: LockedBucket | None = None,
        keys: RecordingKeys | None = None,
        open_records: bool = True,
    ) -> None:
        self._bucket = LockedBucket(client, bucket)
        # Set: new recordings are encrypted at rest, each with a data key of its own (issue 19); encrypted ones
        # are read with it. None: new recordings are stored as they came, encrypted ones are read "locked".
        self.keys = keys
        # False: an encrypted record's private part is left sealed (read "locked") even with keys here: the storage
        # lifecycle needs only the public part, and opening it would cost a keys-bucket read and a KEK unwrap (a
        # KMS call with Transit) per recording per pass.
        self._open_records = open_records
        self.cold = cold  # the cold tier's bucket (maybe on another S3); None: this store never reads it
        self._part_size = part_size
        self._parallel_parts = parallel_parts
        # One pool for the parts of every upload: S3 sees at most this many part uploads at once.
        self._pool = ThreadPoolExecutor(max_workers=max_part_uploads, thread_name_prefix="s3-part")
        # A streamed PUT lasts as long as its upload: one thread each (as many as uploads in flight),
        # never queued behind other uploads' parts or PUTs.
        self._put_pool = ThreadPoolExecutor(max_workers=max_streamed_puts, thread_name_prefix="s3-put")
        self._streamed_puts = streamed_puts
        self._stream_min_bytes = stream_min_bytes
        self.conditional_writes = False  # until `ping` finds that S3 honours If-None-Match

    def ping(self) -> None:
        """Raise Unavailable unless the bucket exists with Object Lock enabled; learn whether S3
        honours conditional writes (until then every upload is looked up before it is written)."""
        self._bucket.check_object_lock()
        if self.keys is not None:
            self.keys.check()
        self.conditional_writes = self._bucket.probe_conditional_writes()
        if not self.conditional_writes:
            log.warning(
                "S3 ignores If-None-Match on PUT: every upload is looked up before it is written, and two "
                "replicas given the same bytes at the same moment could each write a version; upgrade S3"
            )

    @property
    def hot(self) -> LockedBucket:
        return self._bucket

    def find(self, tenant: str, rec_id: str) -> ArchivedRecording | None:
        """The recording as archived, wherever its audio is read from now: the cold copy once its location
        was recorded, else the hot one. IntegrityError when what is stored contradicts its record."""
        location = self.location(tenant, rec_id)
        if location is not None:
            return self._find_moved(tenant, rec_id, location)
        return self.find_hot(tenant, rec_id)

    def find_hot(self, tenant: str, rec_id: str) -> ArchivedRecording | None:
        """The recording from its hot copy, whether or not it has moved since (None when the hot copy is gone)."""
        prefix = recording_prefix(tenant, rec_id)
        stat = self._bucket.stat(prefix + AUDIO)
        if stat is None:
            return None
        inline = stat.metadata.get(RECORD_META)
        try:
            doc = json.loads(inline) if inline else json.loads(self._bucket.read_bytes(prefix + SIDECAR))
        except ObjectMissing:
            return None
        record = self._from_document(doc)
        stored_sha = stat.metadata.get(SHA_META, "")
        if stored_sha.lower() != record.sha256:
            raise IntegrityError(
                f"recording {rec_id}: object SHA-256 {stored_sha!r} differs from its record {record.sha256}"
            )
        if stat.size is not None and stat.size != record.stored_size:
            # Never answer a duplicate with it: an S3 that stored a request cut short (SeaweedFS keeps an
            # empty object when a PUT's connection drops before its first body byte) would lose the call.
            raise IntegrityError(
                f"recording {rec_id}: the stored object has {stat.size} bytes, its record says {record.stored_size}"
            )
        obj = StoredObject(self._bucket.name, prefix + AUDIO, stat.version_id, record.sha256)
        # archived_at is when the locked version became durable: the same clock ListRecordings filters on.
        archived_at = stat.last_modified or record.archived_at
        lock = LockState(stat.lock.mode, stat.lock.retain_until, stat.lock.legal_hold)
        return replace(record, object=obj, lock=lock, archived_at=archived_at)

    # -- the cold tier (issue 18) ------------------------------------------------------------------
    def location(self, tenant: str, rec_id: str) -> Location | None:
        """Where the recording was moved to (the latest version of its `location.json`); None: never moved."""
        try:
            raw = self._bucket.read_bytes(recording_prefix(tenant, rec_id) + LOCATION)
        except ObjectMissing:
            return None
        return _location_from_document(json.loads(raw))

    def _find_moved(self, tenant: str, rec_id: str, location: Location) -> ArchivedRecording:
        cold = self.require_cold()
        stat = cold.stat(location.key, location.version_id)
        if stat is None:
            raise IntegrityError(
                f"recording {rec_id}: its cold copy s3://{location.bucket}/{location.key} version "
                f"{location.version_id} is missing (alert the operator)"
            )
        inline = stat.metadata.get(RECORD_META)
        prefix = recording_prefix(tenant, rec_id)
        try:
            doc = json.loads(inline) if inline else json.loads(cold.read_bytes(prefix + SIDECAR))
        except ObjectMissing:
            raise IntegrityError(f"recording {rec_id}: the record of its cold copy is missing") from None
        record = self._from_document(doc)
        if stat.metadata.get(SHA_META, "").lower() != record.sha256 or location.sha256 != record.sha256:
            raise IntegrityError(f"recording {rec_id}: its cold copy's SHA-256 differs from its record")
        if stat.size is not None and stat.size != record.stored_size:
            raise IntegrityError(
                f"recording {rec_id}: its cold copy has {stat.size} bytes, its record says {record.stored_size}"
            )
        obj = StoredObject(location.bucket, location.key, location.version_id, record.sha256)
        lock = LockState(stat.lock.mode, stat.lock.retain_until, stat.lock.legal_hold)
        return replace(record, object=obj, lock=lock, tier="COLD", moved_at=location.moved_at)

    def require_cold(self) -> LockedBucket:
        if self.cold is None:
            raise RuntimeError("this store was built without the cold tier's bucket")
        return self.cold

    def cold_metadata(self, record: ArchivedRecording, storage_class: str = "") -> dict[str, str]:
        """The headers a cold copy of the audio carries: the same as the hot copy's, the record inline where it
        fits (else `put_cold_sidecar` writes it), the storage class where one is named."""
        meta = _audio_metadata(record.tenant, record.recording_id, record.sha256, record.info.call_id, record.sealed)
        inline = _inline(record)
        if len(inline) <= MAX_INLINE_RECORD:
            meta[RECORD_META] = inline
        return meta

    def needs_cold_sidecar(self, record: ArchivedRecording) -> bool:
        return len(_inline(record)) > MAX_INLINE_RECORD

    def put_cold_sidecar(self, record: ArchivedRecording, lock: Lock) -> str:
        doc = json.dumps(_to_document(record), ensure_ascii=False).encode("utf-8")
        key = recording_prefix(record.tenant, record.recording_id) + SIDECAR
        return self.require_cold().put_locked(key, doc, "application/json", lock)

    # -- append-only trails: audit findings and tombstones (locked, in the hot bucket, outside recordings/) ---
    def put_audit_entry(self, tenant: str, rec_id: str, at: datetime, entry: dict, lock: Lock) -> str:
        """One audit finding, written once and locked (an auditor can show the trail; nobody can edit it)."""
        key = f"{AUDIT_PREFIX}{tenant}/{rec_id}/{at.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
        data = json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8")
        return self._bucket.put_locked(key, data, "application/json", lock)

    def audit_entries(self, tenant: str, rec_id: str) -> list[dict]:
        entries = []
        for listed in self._bucket.list(f"{AUDIT_PREFIX}{tenant}/{rec_id}/"):
            entries.append(json.loads(self._bucket.read_bytes(listed.key)))
        return entries

    def put_tombstone(self, tombstone: dict, lock: Lock) -> None:
        """What is kept of an expired recording, written before anything of it is deleted; written once (a
        second expiry pass over a half-deleted recording finds it there and goes on deleting)."""
        key = f"{TOMBSTONE_PREFIX}{tombstone['tenant']}/{tombstone['recording_id']}.json"
        if self._bucket.stat(key) is not None:
            return
        data = json.dumps(tombstone, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self._bucket.put_locked(key, data, "application/json", lock)

    def tombstone(self, tenant: str, rec_id: str) -> dict | None:
        try:
            return dict(json.loads(self._bucket.read_bytes(f"{TOMBSTONE_PREFIX}{tenant}/{rec_id}.json")))
        except ObjectMissing:
            return None

    def write_location(self, record: ArchivedRecording, location: Location) -> str:
        """Record where the recording is read from now: a new version of its `location.json`, locked like the
        cold copy (until the end of its retention). Written only once that copy verified."""
        doc = json.dumps(_location_document(location), separators=(",", ":")).encode("utf-8")
        key = recording_prefix(record.tenant, record.recording_id) + LOCATION
        return self._bucket.put_locked(key, doc, "application/json", Lock(location.mode, location.retain_until))

    def lookup_first(self, size_bytes: int) -> bool:
        """Whether an upload of `size_bytes` (0: unknown) should be looked up before it is written:
        a multipart upload should not send its parts for a recording already archived. A smaller one
        goes as one PUT written only if absent (`commit_audio`)."""
        return not self.conditional_writes or size_bytes <= 0 or size_bytes >= 2 * self._part_size

    def commit_audio(self, writer: AudioWriter, record: ArchivedRecording, policy: LockPolicy, looked_up: bool) -> str:
        """Make the audio visible with its record: inline in one PUT where it fits, else a sidecar first.

        The single PUT carries `If-None-Match: *`: S3 refuses it (412) when the key already has a
        version, which is AlreadyArchived here. That is also what keeps two ingest replicas that
        receive the same bytes at once from writing two locked versions. Before a sidecar (its own
        locked object) the recording is looked up unless `looked_up` says the caller just did.
        """
        if writer.streaming:
            try:
                return writer.commit()
            except ObjectExists:
                raise AlreadyArchived(record.recording_id) from None
        if isinstance(writer, EncryptedAudio):
            record = self._seal(record, writer)
        inline = _inline(record)
        if writer.single_put and len(inline) <= MAX_INLINE_RECORD:
            try:
                return writer.commit({RECORD_META: inline, "If-None-Match": "*"}, sha256=record.sha256)
            except ObjectExists:
                raise AlreadyArchived(record.recording_id) from None
        if not looked_up and self.find(record.tenant, record.recording_id) is not None:
            raise AlreadyArchived(record.recording_id)
        self.put_sidecar(record, policy)
        return writer.commit(sha256=record.sha256)

    def stream_audio(self, writer: AudioWriter, record: ArchivedRecording) -> bool:
        """Start the audio as one PUT now, `record` inline, if its record is final and fits and the
        writer can (http, one PUT's size); False: it goes at commit as before. The PUT completes
        only at `commit_audio`, written only if absent like any single PUT."""
        inline = _inline(record)
        if record.size_bytes < self._stream_min_bytes:
            return False
        if len(inline) > MAX_INLINE_RECORD or not writer.can_stream(record.size_bytes):
            return False
        writer.stream({RECORD_META: inline, "If-None-Match": "*"}, record.size_bytes, record.sha256)
        return True

    def open_audio(
        self, tenant: str, rec_id: str, sha256: str, call_id: str, policy: LockPolicy, customer_id: str = ""
    ) -> ObjectWriter | EncryptedAudio:
        """Start the locked audio object; bytes are fed as they arrive and it appears only on commit. With
        encryption on, a new data key is stored (wrapped) first and every byte is encrypted with it."""
        tracker = self._streamed_puts.track_inprogress if self._streamed_puts is not None else contextlib.nullcontext
        key = self.keys.create(tenant, rec_id, customer_id) if self.keys is not None else None
        sealed = None if key is None else Sealed(crypto.NAME, key.key_id, "", 0, b"")
        writer = self._bucket.writer(
            recording_prefix(tenant, rec_id) + AUDIO,
            _audio_metadata(tenant, rec_id, sha256, call_id, sealed),
            _lock(policy),
            part_size=self._part_size,
            parallel=self._parallel_parts,
            pool=self._pool,
            put_pool=self._put_pool,
            put_tracker=tracker,
            codec=key.codec if key is not None else PLAIN,
        )
        if key is None:
            return writer
        assert self.keys is not None
        return EncryptedAudio(writer, key, self.keys, tenant, rec_id)

    def _seal(self, record: ArchivedRecording, writer: EncryptedAudio) -> ArchivedRecording:
        """The record with its private part encrypted and the stored ciphertext's SHA-256 and size (the encoder
        is finished now: nothing more is written to the object)."""
        stored_sha256, stored_size = writer.finish_encoding()
        private = json.dumps(_private_part(record), ensure_ascii=False).encode("utf-8")
        protected = writer.key.codec.seal(private, PRIVATE_LABEL)
        writer.sealed = Sealed(crypto.NAME, writer.key.key_id, stored_sha256, stored_size, protected)
        return replace(record, sealed=writer.sealed)

    def _from_document(self, doc: dict) -> ArchivedRecording:
        """A record from its document; an encrypted one's private part opened with its data key when this store
        has the KEK (else it says `locked`, or `erased` once the key was destroyed)."""
        if "encryption" not in doc:
            return _from_document(doc)
        enc = doc["encryption"]
        tenant, rec_id = str(doc["tenant"]), str(doc["recording_id"])
        sealed = Sealed(
            str(enc["scheme"]), str(enc["key_id"]), str(enc["stored_sha256"]), int(enc["stored_size"]),
            base64.b64decode(doc["protected"]),
        )  # fmt: skip
        private: dict | None = None
        state = SEALED_LOCKED
        if self.keys is not None and self._open_records:
            try:
                key = self.keys.open(tenant, rec_id, sealed.key_id)
                private = json.loads(key.codec.unseal(sealed.protected, PRIVATE_LABEL))
                state = SEALED_OPEN
            except KeyDestroyed:
                state = SEALED_ERASED
        if private is None:
            private = {
                "info": {"tenant": tenant, "call_id": "", "agent_id": ""},
                "audio": {"container": "", "codec": "", "sample_rate_hz": 0, "channels": 0, "frames": 0,
                          "duration_ms": 0},
                "channel_layout": "",
            }  # fmt: skip
        record = _from_document({**doc, **private})
        return replace(record, sealed=replace(sealed, state=state))

    def put_sidecar(self, record: ArchivedRecording, policy: LockPolicy) -> None:
        """The full record, locked like the audio; written before the audio is committed."""
        doc = json.dumps(_to_document(record), ensure_ascii=False).encode("utf-8")
        key = recording_prefix(record.tenant, record.recording_id) + SIDECAR
        self._bucket.put_locked(key, doc, "application/json", _lock(policy))

    def stored(
        self, record: ArchivedRecording, version_id: str, policy: LockPolicy, writer: object = None
    ) -> ArchivedRecording:
        if isinstance(writer, EncryptedAudio):
            record = replace(record, sealed=writer.sealed)
        obj = StoredObject(
            self._bucket.name, recording_prefix(record.tenant, record.recording_id) + AUDIO, version_id, record.sha256
        )
        log.info(
            "archived %s/%s version %s (%d bytes)", record.tenant, record.recording_id, version_id, record.size_bytes
        )
        lock = LockState(policy.mode, policy.hot_lock_until, False)
        return replace(record, object=obj, lock=lock, retention=LockPolicy(policy.mode, policy.retain_until))

    def set_legal_hold(self, tenant: str, rec_id: str, on: bool) -> ArchivedRecording:
        """On (or off) every copy there is: the one read now and, for a moved recording, a hot copy that is
        still there (a hold must keep the lifecycle from releasing it too)."""
        record = self.find(tenant, rec_id)
        if record is None or record.object is None:
            raise NotFound(f"recording {rec_id} not found for tenant {tenant}")
        if record.tier == "COLD":
            self.require_cold().set_legal_hold(record.object.key, record.object.version_id, on)
            hot = self.find_hot(tenant, rec_id)
            if hot is not None and hot.object is not None:
                self._bucket.set_legal_hold(hot.object.key, hot.object.version_id, on)
        else:
            self._bucket.set_legal_hold(record.object.key, record.object.version_id, on)
        lock = record.lock or LockState("", None, False)
        return replace(record, lock=replace(lock, legal_hold=on))

    def list_ids(self, tenant: str, start_after: str, since: datetime | None, until: datetime | None):  # type: ignore[no-untyped-def]
        """Yield (recording_id, archived_at) in id order, filtered by archive time: every recording with a hot
        copy, and every moved one whose hot copy was released (its `location.json` says when it was archived)."""
        base = f"recordings/{tenant}/"
        after = f"{base}{start_after}/~" if start_after else None  # '~' sorts after every file name of an id
        for rec_id, names, audio_time, _size in self._grouped(base, after):
            archived_at = audio_time
            if AUDIO not in names:
                if LOCATION not in names:
                    continue
                location = self.location(tenant, rec_id)
                archived_at = location.archived_at if location is not None else None
            if archived_at is None:
                continue
            if (since and archived_at < since) or (until and archived_at >= until):
                continue
            yield rec_id, archived_at

    def list_all(self) -> Iterator[tuple[str, str]]:
        """Yield (tenant, recording_id) of every archived recording (hot, or moved with its hot copy released)."""
        last: tuple[str, str] | None = None
        for obj in self._bucket.list("recordings/"):
            parts = obj.key.split("/")
            if len(parts) == 4 and parts[3] in (AUDIO, LOCATION) and (parts[1], parts[2]) != last:
                last = (parts[1], parts[2])  # keys of one recording are listed together: audio, location.json
                yield last

    def inventory(self, tenant: str) -> Iterator[tuple[str, set[str], datetime | None, int]]:
        """(recording id, its hot object names, the hot audio's last-modified time and size) of every recording
        of `tenant` in the hot bucket, in id order: one listing, no request per recording."""
        return self._grouped(f"recordings/{tenant}/", None)

    def _grouped(self, base: str, after: str | None) -> Iterator[tuple[str, set[str], datetime | None, int]]:
        current, audio_time, size = "", None, 0
        names: set[str] = set()
        for obj in self._bucket.list(base, start_after=after):
            rest = obj.key[len(base) :]
            rec_id, _, name = rest.partition("/")
            if rec_id != current:
                if current:
                    yield current, names, audio_time, size
                current, names, audio_time, size = rec_id, set(), None, 0
            names.add(name)
            if name == AUDIO:
                audio_time, size = obj.last_modified, obj.size or 0
        if current:
            yield current, names, audio_time, size


def _inline(record: ArchivedRecording) -> str:
    return json.dumps(_to_document(record), ensure_ascii=True, separators=(",", ":"))


def _lock(policy: LockPolicy) -> Lock:
    """The lock of the hot copies: the full retention, or with tiering on the hot lock."""
    return Lock(policy.mode, policy.hot_lock_until)


def _audio_metadata(tenant: str, rec_id: str, sha256: str, call_id: str, sealed: Sealed | None) -> dict[str, str]:
    # S3 metadata travels as HTTP headers: ASCII only, ~2 KB in all; it is fixed when the upload
    # starts. The full record, audio facts included, is the sidecar. An encrypted recording's headers name its
    # scheme and data key (readers pick their codec from them) and nothing said about the call.
    if sealed is not None:
        return {
            SHA_META: sha256,
            "x-amz-meta-tenant": quote(tenant),
            "x-amz-meta-recording-id": rec_id,
            ENCRYPTION_META: sealed.scheme,
            KEY_ID_META: sealed.key_id,
        }
    return {
        SHA_META: sha256,
        "x-amz-meta-tenant": quote(tenant),
        "x-amz-meta-recording-id": rec_id,
        "x-amz-meta-call-id": quote(call_id),
    }


def _private_part(record: ArchivedRecording) -> dict:
    """What an encrypted recording's record keeps only encrypted: everything said about the call."""
    info = asdict(record.info)
    info["started_at"] = record.info.started_at.isoformat() if record.info.started_at else None
    return {"info": info, "audio": asdict(record.audio), "channel_layout": record.channel_layout}


def _to_document(record: ArchivedRecording) -> dict:
    if record.sealed is not None:
        sealed = record.sealed
        return {
            "schema": 2,
            "recording_id": record.recording_id,
            "tenant": record.tenant,
            "sha256": record.sha256,
            "size_bytes": record.size_bytes,
            "archived_at": record.archived_at.isoformat(),
            **_retention_document(record),
            "encryption": {
                "scheme": sealed.scheme,
                "key_id": sealed.key_id,
                "stored_sha256": sealed.stored_sha256,
                "stored_size": sealed.stored_size,
            },
            "protected": base64.b64encode(sealed.protected).decode(),
        }
    info = asdict(record.info)
    info["started_at"] = record.info.started_at.isoformat() if record.info.started_at else None
    return {
        "schema": 1,
        "recording_id": record.recording_id,
        "tenant": record.tenant,
        "sha256": record.sha256,
        "size_bytes": record.size_bytes,
        "archived_at": record.archived_at.isoformat(),
        "channel_layout": record.channel_layout,
        "info": info,
        "audio": asdict(record.audio),
        **_retention_document(record),
    }


def _retention_document(record: ArchivedRecording) -> dict:
    if record.retention is None:
        return {}
    return {"retention": {"mode": record.retention.mode, "retain_until": record.retention.retain_until.isoformat()}}


def _from_document(doc: dict) -> ArchivedRecording:
    info = dict(doc["info"])
    info["started_at"] = datetime.fromisoformat(info["started_at"]) if info.get("started_at") else None
    info["hotwords"] = tuple((str(text), float(weight)) for text, weight in info.get("hotwords", ()))
    return ArchivedRecording(
        recording_id=doc["recording_id"],
        tenant=doc["tenant"],
        info=RecordingInfo(**info),
        audio=AudioFacts(**doc["audio"]),
        channel_layout=doc["channel_layout"],
        size_bytes=int(doc["size_bytes"]),
        sha256=doc["sha256"],
        archived_at=datetime.fromisoformat(doc["archived_at"]).astimezone(UTC),
        retention=_retention(doc.get("retention")),
    )


def _retention(doc: dict | None) -> LockPolicy | None:
    if not doc:
        return None
    return LockPolicy(str(doc["mode"]), datetime.fromisoformat(doc["retain_until"]).astimezone(UTC))


def _location_document(location: Location) -> dict:
    doc = asdict(location)
    for name in ("moved_at", "retain_until", "archived_at"):
        doc[name] = getattr(location, name).isoformat()
    return {"schema": 1, **doc}


def _location_from_document(doc: dict) -> Location:
    return Location(
        tier=str(doc["tier"]),
        bucket=str(doc["bucket"]),
        key=str(doc["key"]),
        version_id=str(doc["version_id"]),
        sha256=str(doc["sha256"]),
        size_bytes=int(doc["size_bytes"]),
        moved_at=datetime.fromisoformat(doc["moved_at"]).astimezone(UTC),
        mode=str(doc["mode"]),
        retain_until=datetime.fromisoformat(doc["retain_until"]).astimezone(UTC),
        archived_at=datetime.fromisoformat(doc["archived_at"]).astimezone(UTC),
        stored_sha256=str(doc.get("stored_sha256", "")),
    )
