"""A bucket with Object Lock: every operation the archive makes on one, through minio's public API
(and, for the requests it cannot express, `minio_ext`). Errors come out typed (`storage.errors`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import urllib3
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.helpers import genheaders
from minio.retention import Retention

from callscribe.storage.errors import (
    LOCKED_CODES,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    StorageUnavailable,
    is_missing,
    s3_errors,
)
from callscribe.storage.location import ObjectRef, Tier
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.reader import read_verified
from callscribe.storage.transform import PLAIN, BodyCodec
from callscribe.storage.writer import ObjectWriter

log = logging.getLogger(__name__)

# Outside recordings/: what `probe_conditional_writes` writes once per bucket.
PROBE_KEY = "callscribe/probe/conditional-write"
PROBE_BODY = b"callscribe: S3 conditional-write probe (If-None-Match), written once per bucket\n"


@dataclass(frozen=True)
class Lock:
    """An object version's WORM state: retention mode ("COMPLIANCE", "GOVERNANCE" or "" for none), until
    when, and whether a legal hold is on."""

    mode: str
    retain_until: datetime | None
    legal_hold: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    version_id: str
    size: int | None
    last_modified: datetime | None
    metadata: dict[str, str]  # the response headers, lower-case names (x-amz-meta-* among them)
    lock: Lock


@dataclass(frozen=True)
class Listed:
    key: str
    last_modified: datetime | None
    size: int | None


@dataclass(frozen=True)
class Version:
    """One version of a key (a delete marker too), as a versioned listing shows it."""

    key: str
    version_id: str
    last_modified: datetime | None
    size: int | None
    delete_marker: bool
    latest: bool


def retention(mode: str, retain_until: datetime) -> Retention:
    return Retention(COMPLIANCE if mode == "COMPLIANCE" else GOVERNANCE, retain_until)


def _lock(headers: dict[str, str]) -> Lock:
    until = headers.get("x-amz-object-lock-retain-until-date")
    return Lock(
        mode=headers.get("x-amz-object-lock-mode", ""),
        retain_until=datetime.fromisoformat(until.replace("Z", "+00:00")) if until else None,
        legal_hold=headers.get("x-amz-object-lock-legal-hold", "OFF") == "ON",
    )


class LockedBucket:
    """One bucket of one S3 endpoint, in one tier."""

    def __init__(self, client: S3Client, name: str, tier: Tier = Tier.HOT) -> None:
        self.client = client
        self.name = name
        self.tier = tier

    # -- the bucket ----------------------------------------------------------------------------
    def check_object_lock(self) -> None:
        """StorageUnavailable unless the bucket exists with Object Lock enabled."""
        with s3_errors(f"S3 bucket {self.name!r} unusable"):
            config = self.client.get_object_lock_config(self.name)
        if config is None:
            raise StorageUnavailable(f"S3 bucket {self.name!r} has no Object Lock; create it with Object Lock enabled")

    def probe_conditional_writes(self) -> bool:
        """Whether S3 honours `If-None-Match: *` on PUT: the probe object is written only-if-absent until
        refused; the first probe on a bucket writes it, every later one must get 412. Written twice means
        the header is ignored."""
        for _ in range(2):
            try:
                self.put_if_absent(PROBE_KEY, PROBE_BODY, {"Content-Type": "text/plain"})
            except ObjectExists:
                return True
            except StorageUnavailable as exc:
                raise StorageUnavailable(f"S3 bucket {self.name!r} refused a write: {exc}", exc.code) from exc
        return False

    # -- objects -------------------------------------------------------------------------------
    def stat(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """The object (version)'s facts, None when it is not there."""
        try:
            stat = self.client.stat_object(self.name, key, version_id=version_id)
        except S3Error as exc:
            if is_missing(exc):
                return None
            raise StorageUnavailable(f"S3 read failed: {exc}", exc.code or "") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageUnavailable(f"S3 unreachable: {exc}") from exc
        headers = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        return ObjectInfo(key, stat.version_id or "", stat.size, stat.last_modified, headers, _lock(headers))

    def read_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """A small object whole (a record); ObjectMissing when it is not there."""
        with s3_errors(f"S3 read of {key} failed"):
            try:
                response = self.client.get_object(self.name, key, version_id=version_id)
            except S3Error as exc:
                if is_missing(exc):
                    raise ObjectMissing(f"s3://{self.name}/{key} does not exist ({exc.code})") from exc
                raise
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def put_if_absent(self, key: str, data: bytes, headers: dict[str, str]) -> str:
        """One PUT written only if the key has no version yet (ObjectExists otherwise); the version id."""
        sent = {**headers, "If-None-Match": "*"}
        try:
            with s3_errors(f"S3 write of {key} failed"):
                result = self.client.put_raw(self.name, key, data, sent)
        except StorageUnavailable as exc:
            if exc.code == "PreconditionFailed":
                raise ObjectExists(key) from exc.__cause__
            raise
        return str(result.version_id or "")

    def put_locked_if_absent(self, key: str, data: bytes, content_type: str, lock: Lock) -> str:
        """A small object written with its retention from the moment it exists, only if the key has no version
        yet (ObjectExists otherwise: an append-only log's next entry); the version id."""
        assert lock.retain_until is not None
        headers: dict[str, Any] = genheaders({}, None, None, retention(lock.mode, lock.retain_until), lock.legal_hold)
        headers["Content-Type"] = content_type
        # S3 wants a body checksum on a PUT with Object Lock headers (AWS, MinIO); minio's signing over http
        # does not add one.
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        return self.put_if_absent(key, data, headers)

    def read_with_lock(self, key: str, version_id: str) -> tuple[bytes, Lock]:
        """A small object version whole, with its WORM state as the GET's answer states it; ObjectMissing when
        it is not there."""
        with s3_errors(f"S3 read of {key} failed"):
            try:
                response = self.client.get_object(self.name, key, version_id=version_id)
            except S3Error as exc:
                if is_missing(exc):
                    raise ObjectMissing(f"s3://{self.name}/{key} version {version_id} does not exist") from exc
                raise
            try:
                return bytes(response.read()), _lock({k.lower(): v for k, v in response.headers.items()})
            finally:
                response.close()
                response.release_conn()

    def put_locked(
        self, key: str, data: bytes, content_type: str, lock: Lock, metadata: dict[str, str] | None = None
    ) -> str:
        """A small object (a record) written with its retention (and legal hold) from the moment it exists;
        the version id."""
        assert lock.retain_until is not None
        with s3_errors("S3 write failed, nothing was acknowledged; retry the upload"):
            result = self.client.put_object(
                self.name,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=dict(metadata) if metadata else None,  # type: ignore[arg-type]
                retention=retention(lock.mode, lock.retain_until),
                legal_hold=lock.legal_hold,
            )
        return str(result.version_id or "")

    def writer(
        self,
        key: str,
        metadata: dict[str, str],
        lock: Lock,
        *,
        part_size: int,
        parallel: int,
        pool: ThreadPoolExecutor,
        put_pool: ThreadPoolExecutor | None = None,
        put_tracker: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
        codec: BodyCodec = PLAIN,
        content_type: str = "application/octet-stream",
    ) -> ObjectWriter:
        """A locked object written chunk by chunk (one PUT, a streamed PUT or multipart: `ObjectWriter`);
        it carries `metadata` (x-amz-meta-* names) and its retention from its first byte."""
        assert lock.retain_until is not None
        meta: dict[str, Any] = dict(metadata)
        headers = genheaders(meta, None, None, retention(lock.mode, lock.retain_until), lock.legal_hold)
        headers["Content-Type"] = content_type
        return ObjectWriter(
            self.client, self.name, key, headers, part_size, parallel, pool, put_pool, put_tracker, codec
        )

    def read_verified(
        self,
        ref: ObjectRef,
        sink: Callable[[bytes | memoryview], object],
        *,
        reader: str = "the service",
        codec: BodyCodec = PLAIN,
        on_lock: Callable[[Lock], object] | None = None,
    ) -> int:
        """`reader.read_verified` on this bucket's client; `on_lock` gets the version's lock as the read's
        answer states it (no request of its own)."""
        on_headers = (
            None if on_lock is None else (lambda headers: on_lock(_lock({k.lower(): v for k, v in headers.items()})))
        )
        return read_verified(self.client, ref, sink, reader=reader, codec=codec, on_headers=on_headers)

    # -- retention and holds ---------------------------------------------------------------------
    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        with s3_errors("S3 legal hold change failed"):
            if on:
                self.client.enable_object_legal_hold(self.name, key, version_id)
            else:
                self.client.disable_object_legal_hold(self.name, key, version_id)

    def extend_retention(self, key: str, version_id: str, lock: Lock) -> None:
        """Set the version's retention to `lock` (S3 refuses to shorten a COMPLIANCE one)."""
        assert lock.retain_until is not None
        with s3_errors(f"S3 retention change of {key} failed"):
            self.client.set_object_retention(self.name, key, retention(lock.mode, lock.retain_until), version_id)

    # -- deleting ------------------------------------------------------------------------------
    def delete_version(self, key: str, version_id: str) -> None:
        """Delete one version for good (not a delete marker). ObjectLocked while its retention or a legal
        hold is on (S3 refuses); a version already gone is fine."""
        with s3_errors(f"S3 delete of {key} version {version_id} failed"):
            try:
                self.client.remove_object(self.name, key, version_id=version_id)
            except S3Error as exc:
                if is_missing(exc):
                    return
                if exc.code in LOCKED_CODES:
                    raise ObjectLocked(f"s3://{self.name}/{key} version {version_id}: {exc.code}") from exc
                raise

    # -- listing -------------------------------------------------------------------------------
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        """Every object under `prefix` (recursive), in key order, after `start_after`."""
        with s3_errors("S3 listing failed"):
            for obj in self.client.list_objects(self.name, prefix=prefix, recursive=True, start_after=start_after):
                yield Listed(obj.object_name or "", obj.last_modified, obj.size)

    def versions(self, prefix: str, start_after: str | None = None) -> Iterator[Version]:
        """Every version (and delete marker) of every key under `prefix` (after the key `start_after`), in key
        order, newest first within a key."""
        with s3_errors("S3 version listing failed"):
            listing = self.client.list_objects(
                self.name, prefix=prefix, recursive=True, include_version=True, start_after=start_after
            )
            for obj in listing:
                yield Version(
                    obj.object_name or "",
                    obj.version_id or "",
                    obj.last_modified,
                    obj.size,
                    bool(obj.is_delete_marker),
                    str(obj.is_latest or "").lower() == "true",
                )

    # -- copies ----------------------------------------------------------------------------------
    def copy_in(
        self,
        source: LockedBucket,
        ref: ObjectRef,
        key: str,
        metadata: dict[str, str],
        lock: Lock,
        *,
        part_size: int = 16 * 1024 * 1024,
        storage_class: str = "",
        size: int = 0,
    ) -> str:
        """Copy `ref` from `source` (this endpoint or another) into this bucket under `key`, locked with
        `lock` (legal hold included) from its first byte, in `storage_class` when one is named
        (`x-amz-storage-class`); returns the new version id. With its `size` known, an object S3 takes as one
        PUT goes as a streamed PUT that starts with the first bytes read (reading and writing overlap); its last
        chunk is held until the bytes hashed right, so S3 cannot complete a copy that does not verify. The
        bytes stream through here, hashed while read, and the copy is committed only if they hashed to
        `ref.sha256` (IntegrityError otherwise, nothing written). Not S3's server-side CopyObject: SeaweedFS
        ignores a copy's lock headers (the copy keeps its source's retention) and then refuses to change the
        copy's mode (AccessDenied), and a server-side copy of corrupt bytes would leave a locked corrupt copy
        behind before any check."""
        assert lock.retain_until is not None
        headers = {**metadata, "x-amz-storage-class": storage_class} if storage_class else metadata
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="s3-copy") as pool:
            writer = self.writer(key, headers, lock, part_size=part_size, parallel=2, pool=pool, put_pool=pool)
            try:
                if size and size < 2 * part_size and writer.can_stream(size):
                    writer.stream({}, size, ref.sha256)
                source.read_verified(ref, writer.write, reader="the copy")
                # The bytes hashed to ref.sha256 (or read_verified raised): a single PUT is signed with it
                # instead of hashing them a second time (MinIO and AWS check it against what they receive).
                return writer.commit(sha256=ref.sha256)
            except BaseException:
                writer.abort()
                raise
