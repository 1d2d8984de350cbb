"""The recording archive on S3 with Object Lock (MinIO in production, any S3 with Object Lock).

Layout per recording, under `recordings/<tenant>/<recording_id>/`:
- `audio`: the bytes, with the SHA-256 and key facts as object metadata; for a recording sent in
  one PUT whose full record fits in the metadata (~2 KB of headers), the record rides along in
  `x-amz-meta-record` and nothing else is written. Such a PUT starts while the bytes are still
  arriving when the record is known from the first bytes (`stream_audio`);
- `metadata.json`: otherwise, the full record (what the call-center system said plus the audio
  facts), written before the audio is committed.
Every version carries the tenant's retention from the moment it exists.
"""

from __future__ import annotations

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
    AlreadyArchived,
    ArchivedRecording,
    AudioFacts,
    AudioWriter,
    LockPolicy,
    LockState,
    RecordingInfo,
    StoredObject,
    recording_prefix,
)
from callscribe.kit.errors import NotFound
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.errors import IntegrityError, ObjectExists, ObjectMissing
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.writer import ObjectWriter

log = logging.getLogger(__name__)

AUDIO = "audio"
SIDECAR = "metadata.json"
SHA_META = "x-amz-meta-sha256"
RECORD_META = "x-amz-meta-record"
# S3 allows 2 KB of user metadata in all; leave room for the other fields.
MAX_INLINE_RECORD = 1600


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
    ) -> None:
        self._bucket = LockedBucket(client, bucket)
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
        self.conditional_writes = self._bucket.probe_conditional_writes()
        if not self.conditional_writes:
            log.warning(
                "S3 ignores If-None-Match on PUT: every upload is looked up before it is written, and two "
                "replicas given the same bytes at the same moment could each write a version; upgrade S3"
            )

    def find(self, tenant: str, rec_id: str) -> ArchivedRecording | None:
        prefix = recording_prefix(tenant, rec_id)
        stat = self._bucket.stat(prefix + AUDIO)
        if stat is None:
            return None
        inline = stat.metadata.get(RECORD_META)
        try:
            doc = json.loads(inline) if inline else json.loads(self._bucket.read_bytes(prefix + SIDECAR))
        except ObjectMissing:
            return None
        record = _from_document(doc)
        stored_sha = stat.metadata.get(SHA_META, "")
        if stored_sha.lower() != record.sha256:
            raise IntegrityError(
                f"recording {rec_id}: object SHA-256 {stored_sha!r} differs from its record {record.sha256}"
            )
        if stat.size is not None and stat.size != record.size_bytes:
            # Never answer a duplicate with it: an S3 that stored a request cut short (SeaweedFS keeps an
            # empty object when a PUT's connection drops before its first body byte) would lose the call.
            raise IntegrityError(
                f"recording {rec_id}: the stored object has {stat.size} bytes, its record says {record.size_bytes}"
            )
        obj = StoredObject(self._bucket.name, prefix + AUDIO, stat.version_id, record.sha256)
        # archived_at is when the locked version became durable: the same clock ListRecordings filters on.
        archived_at = stat.last_modified or record.archived_at
        lock = LockState(stat.lock.mode, stat.lock.retain_until, stat.lock.legal_hold)
        return replace(record, object=obj, lock=lock, archived_at=archived_at)

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

    def open_audio(self, tenant: str, rec_id: str, sha256: str, call_id: str, policy: LockPolicy) -> ObjectWriter:
        """Start the locked audio object; bytes are fed as they arrive and it appears only on commit."""
        tracker = self._streamed_puts.track_inprogress if self._streamed_puts is not None else contextlib.nullcontext
        return self._bucket.writer(
            recording_prefix(tenant, rec_id) + AUDIO,
            _audio_metadata(tenant, rec_id, sha256, call_id),
            _lock(policy),
            part_size=self._part_size,
            parallel=self._parallel_parts,
            pool=self._pool,
            put_pool=self._put_pool,
            put_tracker=tracker,
        )

    def put_sidecar(self, record: ArchivedRecording, policy: LockPolicy) -> None:
        """The full record, locked like the audio; written before the audio is committed."""
        doc = json.dumps(_to_document(record), ensure_ascii=False).encode("utf-8")
        key = recording_prefix(record.tenant, record.recording_id) + SIDECAR
        self._bucket.put_locked(key, doc, "application/json", _lock(policy))

    def stored(self, record: ArchivedRecording, version_id: str, policy: LockPolicy) -> ArchivedRecording:
        obj = StoredObject(
            self._bucket.name, recording_prefix(record.tenant, record.recording_id) + AUDIO, version_id, record.sha256
        )
        log.info(
            "archived %s/%s version %s (%d bytes)", record.tenant, record.recording_id, version_id, record.size_bytes
        )
        return replace(record, object=obj, lock=LockState(policy.mode, policy.retain_until, False))

    def set_legal_hold(self, tenant: str, rec_id: str, on: bool) -> ArchivedRecording:
        record = self.find(tenant, rec_id)
        if record is None or record.object is None:
            raise NotFound(f"recording {rec_id} not found for tenant {tenant}")
        self._bucket.set_legal_hold(record.object.key, record.object.version_id, on)
        lock = record.lock or LockState("", None, False)
        return replace(record, lock=replace(lock, legal_hold=on))

    def list_ids(self, tenant: str, start_after: str, since: datetime | None, until: datetime | None):  # type: ignore[no-untyped-def]
        """Yield (recording_id, archived_at) in id order, filtered by archive time."""
        base = f"recordings/{tenant}/"
        after = f"{base}{start_after}/{AUDIO}" if start_after else None
        for obj in self._bucket.list(base, start_after=after):
            if not obj.key.endswith("/" + AUDIO) or obj.last_modified is None:
                continue
            if (since and obj.last_modified < since) or (until and obj.last_modified >= until):
                continue
            yield obj.key[len(base) : -len(AUDIO) - 1], obj.last_modified

    def list_all(self) -> Iterator[tuple[str, str]]:
        """Yield (tenant, recording_id) of every archived recording, all tenants."""
        for obj in self._bucket.list("recordings/"):
            parts = obj.key.split("/")
            if len(parts) == 4 and parts[3] == AUDIO:
                yield parts[1], parts[2]


def _inline(record: ArchivedRecording) -> str:
    return json.dumps(_to_document(record), ensure_ascii=True, separators=(",", ":"))


def _lock(policy: LockPolicy) -> Lock:
    return Lock(policy.mode, policy.retain_until)


def _audio_metadata(tenant: str, rec_id: str, sha256: str, call_id: str) -> dict[str, str]:
    # S3 metadata travels as HTTP headers: ASCII only, ~2 KB in all; it is fixed when the upload
    # starts. The full record, audio facts included, is the sidecar.
    return {
        SHA_META: sha256,
        "x-amz-meta-tenant": quote(tenant),
        "x-amz-meta-recording-id": rec_id,
        "x-amz-meta-call-id": quote(call_id),
    }


def _to_document(record: ArchivedRecording) -> dict:
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
    }


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
    )
