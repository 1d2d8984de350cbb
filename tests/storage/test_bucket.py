"""The storage layer on real S3 servers: verified reads, locked writes through a body codec, retention and
holds, listing, and verified copies between two buckets of one endpoint and between two endpoints."""

from __future__ import annotations

import hashlib
import secrets
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from support import wait_for

from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.errors import IntegrityError, ObjectLocked, ObjectMissing, StorageUnavailable
from callscribe.storage.location import ObjectRef, Tier
from callscribe.storage.minio_ext import S3Client

from .conftest import COLD_ONLY_BUCKET

MIB = 1024 * 1024


def _lock(days: int = 1, mode: str = "GOVERNANCE") -> Lock:
    return Lock(mode, (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0))


def _put(bucket: LockedBucket, data: bytes, lock: Lock | None = None, **writer_args) -> ObjectRef:  # type: ignore[no-untyped-def]
    key = f"storage-test/{secrets.token_hex(6)}/audio"
    with ThreadPoolExecutor(2) as pool:
        writer = bucket.writer(
            key, {"x-amz-meta-sha256": hashlib.sha256(data).hexdigest()}, lock or _lock(),
            part_size=5 * MIB, parallel=2, pool=pool, **writer_args,
        )  # fmt: skip
        for at in range(0, len(data), 256 * 1024):
            writer.write(data[at : at + 256 * 1024])
        version = writer.commit()
    return ObjectRef(bucket.name, key, version, hashlib.sha256(data).hexdigest(), bucket.tier)


def _read(bucket: LockedBucket, ref: ObjectRef, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    got: list[bytes] = []
    size = bucket.read_verified(ref, lambda b: got.append(bytes(b)), **kwargs)
    data = b"".join(got)
    assert size == len(data)
    return data


@pytest.fixture(scope="module")
def hot(first_s3: S3Client, s3_server) -> LockedBucket:  # type: ignore[no-untyped-def]
    return LockedBucket(first_s3, s3_server.hot_bucket, Tier.HOT)


@pytest.fixture(scope="module")
def cold(first_s3: S3Client, s3_server) -> LockedBucket:  # type: ignore[no-untyped-def]
    return LockedBucket(first_s3, s3_server.cold_bucket, Tier.COLD)


@pytest.fixture(scope="module")
def other_cold(second_s3: S3Client) -> LockedBucket:
    return LockedBucket(second_s3, COLD_ONLY_BUCKET, Tier.COLD)


@pytest.mark.parametrize("size", [3 * 1024, 11 * MIB], ids=["one-put", "multipart"])
def test_a_locked_write_reads_back_verified_with_its_lock(hot: LockedBucket, size: int) -> None:
    data = secrets.token_bytes(size)
    lock = _lock(days=2)
    ref = _put(hot, data, lock)
    assert _read(hot, ref) == data
    info = hot.stat(ref.key, ref.version_id)
    assert info is not None and info.size == size and info.version_id == ref.version_id
    assert info.lock == Lock("GOVERNANCE", lock.retain_until, False)
    assert info.metadata["x-amz-meta-sha256"] == ref.sha256


def test_a_read_that_does_not_hash_to_its_fingerprint_is_refused(hot: LockedBucket) -> None:
    ref = _put(hot, b"the recorded bytes" * 100)
    wrong = ObjectRef(ref.bucket, ref.key, ref.version_id, "0" * 64)
    with pytest.raises(IntegrityError, match="hash to SHA-256 .* not 0{64} as referenced"):
        _read(hot, wrong)


def test_a_missing_object_or_version_is_object_missing_and_stat_says_none(hot: LockedBucket) -> None:
    with pytest.raises(ObjectMissing, match="does not exist"):
        _read(hot, ObjectRef(hot.name, "storage-test/none/audio", "no-such-version", "0" * 64))
    assert hot.stat("storage-test/none/audio") is None
    with pytest.raises(ObjectMissing):
        hot.read_bytes("storage-test/none/metadata.json")


def test_a_bucket_without_object_lock_or_an_unreachable_s3_is_unavailable(first_s3: S3Client) -> None:
    with pytest.raises(StorageUnavailable, match="unusable"):
        LockedBucket(first_s3, f"no-such-bucket-{secrets.token_hex(3)}").check_object_lock()
    gone = S3Client("127.0.0.1:9", access_key="a", secret_key="b", secure=False)
    with pytest.raises(StorageUnavailable):
        LockedBucket(gone, "callscribe-gone").stat("k")


def test_retention_is_extended_and_a_legal_hold_set_and_released(hot: LockedBucket) -> None:
    ref = _put(hot, b"held" * 1000, _lock(days=1))
    later = _lock(days=30)
    hot.extend_retention(ref.key, ref.version_id, later)
    hot.set_legal_hold(ref.key, ref.version_id, True)
    info = hot.stat(ref.key, ref.version_id)
    assert info is not None and info.lock == Lock("GOVERNANCE", later.retain_until, True)
    hot.set_legal_hold(ref.key, ref.version_id, False)
    info = hot.stat(ref.key, ref.version_id)
    assert info is not None and info.lock.legal_hold is False


def test_listing_is_in_key_order_and_starts_after(hot: LockedBucket) -> None:
    prefix = f"storage-list/{secrets.token_hex(4)}/"
    for name in ("c", "a", "b"):
        hot.put_locked(prefix + name, name.encode(), "text/plain", _lock())
    assert [o.key for o in hot.list(prefix)] == [prefix + "a", prefix + "b", prefix + "c"]
    assert [o.key for o in hot.list(prefix, start_after=prefix + "a")] == [prefix + "b", prefix + "c"]


@pytest.mark.parametrize("size", [200 * 1024, 12 * MIB], ids=["small", "multipart"])
def test_a_copy_between_buckets_of_one_endpoint_is_locked_and_verified(
    hot: LockedBucket, cold: LockedBucket, size: int
) -> None:
    data = secrets.token_bytes(size)
    ref = _put(hot, data)
    until = _lock(days=10, mode="COMPLIANCE") if size < MIB else _lock(days=10)
    version = cold.copy_in(hot, ref, ref.key, {"x-amz-meta-sha256": ref.sha256}, until)
    copied = ObjectRef(cold.name, ref.key, version, ref.sha256, Tier.COLD)
    assert _read(cold, copied) == data
    info = cold.stat(ref.key, version)
    assert info is not None and info.lock.mode == until.mode and info.lock.retain_until == until.retain_until
    assert info.metadata["x-amz-meta-sha256"] == ref.sha256
    assert _read(hot, ref) == data, "the source is untouched"


@pytest.mark.parametrize("size", [200 * 1024, 12 * MIB], ids=["one-put", "multipart"])
def test_a_copy_to_another_endpoint_is_locked_and_verified(
    hot: LockedBucket, other_cold: LockedBucket, size: int
) -> None:
    data = secrets.token_bytes(size)
    ref = _put(hot, data)
    until = _lock(days=10)
    version = other_cold.copy_in(hot, ref, "moved/" + ref.key, {"x-amz-meta-sha256": ref.sha256}, until)
    copied = ObjectRef(other_cold.name, "moved/" + ref.key, version, ref.sha256, Tier.COLD)
    assert _read(other_cold, copied) == data
    info = other_cold.stat(copied.key, version)
    assert info is not None and info.lock.retain_until == until.retain_until


@pytest.mark.parametrize("size", [200 * 1024, 12 * MIB], ids=["one-put", "multipart"])
@pytest.mark.parametrize("destination", ["cold", "other_cold"], ids=["same-endpoint", "other-endpoint"])
def test_a_copy_that_does_not_verify_writes_nothing(
    hot: LockedBucket, destination: str, size: int, request: pytest.FixtureRequest
) -> None:
    other_cold: LockedBucket = request.getfixturevalue(destination)
    ref = _put(hot, secrets.token_bytes(size))
    wrong = ObjectRef(ref.bucket, ref.key, ref.version_id, "f" * 64)
    key = "refused/" + ref.key
    with pytest.raises(IntegrityError):
        other_cold.copy_in(hot, wrong, key, {}, _lock())
    assert other_cold.stat(key) is None
    assert list(other_cold.client.list_objects(other_cold.name, prefix=key, include_version=True)) == []
    uploads = other_cold.client._list_multipart_uploads(other_cold.name, prefix=key)  # noqa: SLF001 - the check
    assert not list(uploads.uploads), "an aborted multipart copy leaves no upload behind"


class _Deflate:
    """A body codec for the seam only (compression, not encryption): stored bytes differ from the plaintext."""

    name = "deflate-test"

    class _Enc:
        def __init__(self) -> None:
            self._z = zlib.compressobj()

        def update(self, chunk: bytes | memoryview) -> bytes:
            return self._z.compress(chunk)

        def finish(self) -> bytes:
            return self._z.flush()

    class _Dec:
        def __init__(self) -> None:
            self._z = zlib.decompressobj()

        def update(self, chunk: bytes | memoryview) -> bytes:
            return self._z.decompress(chunk)

        def finish(self) -> bytes:
            rest = self._z.flush()
            if not self._z.eof:
                raise IntegrityError("the stored stream ends early")
            return rest

    def encoder(self) -> _Enc:
        return self._Enc()

    def decoder(self) -> _Dec:
        return self._Dec()

    def stored_size(self, plain_size: int) -> int | None:
        return None


@pytest.mark.parametrize("size", [64 * 1024, 12 * MIB], ids=["one-put", "multipart"])
def test_a_body_codec_transforms_what_is_stored_and_the_fingerprint_stays_the_plaintexts(
    hot: LockedBucket, size: int
) -> None:
    data = (b"call audio " * (size // 11 + 1))[:size]
    ref = _put(hot, data, codec=_Deflate())
    stored = hot.read_bytes(ref.key, ref.version_id)
    assert stored != data and zlib.decompress(stored) == data
    assert _read(hot, ref, codec=_Deflate()) == data, "verified against the plaintext's SHA-256"
    with pytest.raises(IntegrityError):
        _read(hot, ref)  # read as plain: the stored bytes are not the fingerprinted ones


def test_a_writer_with_a_codec_never_streams(hot: LockedBucket) -> None:
    with ThreadPoolExecutor(1) as pool:
        plain = hot.writer("k", {}, _lock(), part_size=5 * MIB, parallel=1, pool=pool, put_pool=pool)
        coded = hot.writer("k", {}, _lock(), part_size=5 * MIB, parallel=1, pool=pool, put_pool=pool, codec=_Deflate())
        assert plain.can_stream(MIB) is True
        assert coded.can_stream(MIB) is False


# --------------------------------------------------------------------------- what the lifecycle needs


def test_a_locked_version_cannot_be_deleted_until_its_lock_ends(hot: LockedBucket) -> None:
    """COMPLIANCE: S3 refuses to delete the version (ObjectLocked) while the lock is on; once it has ended
    the version goes for good. Versions are listed with their delete markers."""
    until = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0) + timedelta(seconds=1)
    ref = _put(hot, b"short lock " * 100, Lock("COMPLIANCE", until))
    with pytest.raises(ObjectLocked):
        hot.delete_version(ref.key, ref.version_id)
    assert hot.stat(ref.key, ref.version_id) is not None
    [version] = list(hot.versions(ref.key))
    assert (version.key, version.version_id, version.delete_marker, version.latest) == (
        ref.key, ref.version_id, False, True,
    )  # fmt: skip
    wait_for(lambda: datetime.now(UTC) > until + timedelta(seconds=1), 10, "the lock to end")
    hot.delete_version(ref.key, ref.version_id)
    assert hot.stat(ref.key, ref.version_id) is None and not list(hot.versions(ref.key))
    hot.delete_version(ref.key, ref.version_id)  # already gone: fine


def test_a_legal_hold_blocks_deletion_after_the_lock_and_travels_with_a_copy(
    hot: LockedBucket, cold: LockedBucket
) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    ref = _put(hot, b"held " * 100, Lock("COMPLIANCE", until, legal_hold=True))
    assert hot.stat(ref.key, ref.version_id).lock.legal_hold  # type: ignore[union-attr]
    copy_until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    version = cold.copy_in(hot, ref, ref.key, {"x-amz-meta-sha256": ref.sha256}, Lock("COMPLIANCE", copy_until, True))
    stat = cold.stat(ref.key, version)
    assert stat is not None and stat.lock == Lock("COMPLIANCE", copy_until, True)
    wait_for(lambda: datetime.now(UTC) > until + timedelta(seconds=1), 10, "the lock to end")
    with pytest.raises(ObjectLocked):
        hot.delete_version(ref.key, ref.version_id)  # the hold outlives the retention
    hot.set_legal_hold(ref.key, ref.version_id, False)
    hot.delete_version(ref.key, ref.version_id)


def test_a_copy_names_its_storage_class(hot: LockedBucket, cold: LockedBucket) -> None:
    ref = _put(hot, b"cold class " * 100)
    version = cold.copy_in(hot, ref, ref.key, {"x-amz-meta-sha256": ref.sha256}, _lock(), storage_class="STANDARD_IA")
    stat = cold.stat(ref.key, version)
    assert stat is not None
    assert stat.metadata.get("x-amz-storage-class", "STANDARD_IA") == "STANDARD_IA"
