"""Encryption at rest (issue 19) through a real ingest on SeaweedFS: every upload path stores ciphertext under
a per-recording data key wrapped by the KEK; readers decrypt and verify the plaintext SHA-256; the integrity
audit's fingerprint (the ciphertext's SHA-256) checks out without any key; KEK rotation re-wraps keys without
touching the locked audio; a wrong KEK is a clear error."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import grpc
import pytest
import redis
from minio import Minio

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.audit import Auditor
from callscribe.ingest.lifecycle.erasure import Eraser
from callscribe.ingest.lifecycle.mover import MOVED, Mover, MoverConfig
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.errors import FailedPrecondition, InvalidArgument
from callscribe.kit.tenants import TenantRegistry
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.keys import FileKek, KeyUnwrapError
from callscribe.storage.location import ObjectRef, Tier
from callscribe.storage.protection import ENCRYPTION_META, KEY_ID_META, codec_chooser
from callscribe.storage.reader import read_verified
from callscribe.storage.recordkeys import KEYS_PREFIX, KeyDestroyed, RecordingKeys
from callscribe.storage.trail import Trail
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

from .conftest import Ingest, StartIngest, metadata, no_indexer, requests

KEYS_BUCKET = "callscribe-keys-test"


@pytest.fixture(scope="module")
def kek_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kek") / "kek.json"
    FileKek.create(path)
    return path


@pytest.fixture(scope="module")
def s3(s3_server) -> Minio:  # type: ignore[no-untyped-def]
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 8)
    if not client.bucket_exists(KEYS_BUCKET):
        client.make_bucket(KEYS_BUCKET)
    return client


@pytest.fixture(scope="module")
def encrypted(start_ingest: StartIngest, kek_file: Path, s3: Minio) -> Ingest:
    # 16 MiB uploads so one spans more than two 5 MiB parts (the multipart path).
    return start_ingest("encrypted", kek_file=str(kek_file), keys_bucket=KEYS_BUCKET, max_upload_mb="16")


def _keys(s3: Minio, kek_file: Path) -> RecordingKeys:
    return RecordingKeys(s3, KEYS_BUCKET, FileKek(kek_file))  # type: ignore[arg-type]


def _upload(ingest: Ingest, data: bytes, declare: bool = False, **fields: str) -> pb.UploadRecordingResponse:
    meta = metadata(**fields)
    return ingest.stub.UploadRecording(requests(meta, data, declare=declare), metadata=ingest.auth("acme"), timeout=60)


def _archived(ingest: Ingest, data: bytes, declare: bool = False, **fields: str) -> pb.Recording:
    """Upload, then the recording as GetRecording shows it (object, protection)."""
    reply = _upload(ingest, data, declare, **fields)
    return ingest.get("acme", reply.recording_id)


def _stored(s3: Minio, bucket: str, key: str, version: str) -> tuple[bytes, dict[str, str]]:
    response = s3.get_object(bucket, key, version_id=version)
    try:
        return bytes(response.read()), {k.lower(): v for k, v in response.headers.items()}
    finally:
        response.close()
        response.release_conn()


def _no_plaintext_window(stored: bytes, plain: bytes) -> None:
    assert stored[:4] != b"RIFF" and b"WAVEfmt " not in stored, "the WAV header is visible in S3"
    step = max(1, len(plain) // 50)
    for at in range(0, max(1, len(plain) - 64), step):
        window = plain[at : at + 64]
        if len(set(window)) > 4:  # skip runs of one byte (silence), which any data could contain
            assert window not in stored, f"a plaintext run at {at} is in the stored object"


def _read_plain(s3: Minio, keys: RecordingKeys | None, obj) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    ref = ObjectRef(obj.bucket, obj.key, obj.version_id, obj.sha256)
    read_verified(s3, ref, out.extend, codec_for=codec_chooser(keys, "test"))  # type: ignore[arg-type]
    return bytes(out)


@pytest.mark.parametrize("path", ["one PUT", "declared (streamed mode)", "multipart"])
def test_every_upload_path_stores_ciphertext_readers_decrypt(
    path: str, encrypted: Ingest, s3: Minio, kek_file: Path, new_wav
) -> None:  # type: ignore[no-untyped-def]
    # Over two 5 MiB parts for the multipart path; a few seconds otherwise.
    data = _long_wav(11 * 1024 * 1024) if path == "multipart" else new_wav(2.0)
    rec = _archived(encrypted, data, declare=path.startswith("declared"), customer_id="cust-enc-1")
    assert rec.object.sha256 == hashlib.sha256(data).hexdigest()  # the evidence fingerprint: the plaintext's
    assert rec.protection.encrypted and rec.protection.scheme == "tink-aes256-gcm-hkdf-1mb"
    stored, headers = _stored(s3, rec.object.bucket, rec.object.key, rec.object.version_id)
    assert stored != data and len(stored) == rec.protection.stored_size_bytes > len(data)
    assert hashlib.sha256(stored).hexdigest() == rec.protection.stored_sha256  # checkable without any key
    _no_plaintext_window(stored, data)
    assert headers[ENCRYPTION_META] == "tink-aes256-gcm-hkdf-1mb" and headers[KEY_ID_META]
    assert "x-amz-meta-call-id" not in headers  # nothing said about the call is in plaintext metadata
    assert "call.wav" not in json.dumps(headers) and "cust-enc-1" not in json.dumps(headers)
    # The reader decrypts with the recording's data key and verifies the plaintext SHA-256.
    assert _read_plain(s3, _keys(s3, kek_file), rec.object) == data
    # Read back through the service: the record's private part (ids, file name) decrypted.
    got = encrypted.get("acme", rec.recording_id)
    assert got.metadata.customer_id == "cust-enc-1" and got.metadata.filename == "call.wav"
    assert got.audio.duration_ms > 0 and got.protection.stored_sha256 == rec.protection.stored_sha256


def _long_wav(size: int) -> bytes:
    """A valid 16 kHz mono PCM WAV of about `size` bytes whose samples are random (no repeated window)."""
    import struct

    pcm = os.urandom(size - 44) if size % 2 == 0 else os.urandom(size - 45)
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000,
                                                                                     32000, 2, 16)  # fmt: skip
    return header + b"data" + struct.pack("<I", len(pcm)) + pcm


def test_a_duplicate_upload_keeps_the_first_key(encrypted: Ingest, s3: Minio, kek_file: Path, new_wav) -> None:  # type: ignore[no-untyped-def]
    data = new_wav(1.0)
    first = _archived(encrypted, data)
    again = encrypted.stub.UploadRecording(requests(metadata(), data), metadata=encrypted.auth("acme"), timeout=60)
    assert again.duplicate and again.recording_id == first.recording_id
    names = [o.object_name for o in s3.list_objects(KEYS_BUCKET, prefix=f"{KEYS_PREFIX}acme/{first.recording_id}/",
                                                    recursive=True)]  # fmt: skip
    assert len(names) == 1, f"the duplicate left a second data key: {names}"
    assert _read_plain(s3, _keys(s3, kek_file), first.object) == data


def test_a_wrong_kek_is_a_clear_error(encrypted: Ingest, s3: Minio, tmp_path: Path, new_wav) -> None:  # type: ignore[no-untyped-def]
    rec = _archived(encrypted, new_wav(1.0))
    other = tmp_path / "other-kek.json"
    FileKek.create(other)
    with pytest.raises(KeyUnwrapError, match="does not open"):
        _read_plain(s3, _keys(s3, other), rec.object)
    with pytest.raises(FailedPrecondition, match="has no KEK: set TEST_KEK_FILE"):
        _read_plain(s3, None, rec.object)


def test_kek_rotation_rewraps_keys_and_leaves_the_audio_alone(
    encrypted: Ingest, s3: Minio, kek_file: Path, new_wav
) -> None:  # type: ignore[no-untyped-def]
    data = new_wav(1.0)
    rec = _archived(encrypted, data)
    before_versions = [v.version_id for v in s3.list_objects(rec.object.bucket, prefix=rec.object.key,
                                                             include_version=True)]  # fmt: skip
    keys = _keys(s3, kek_file)
    old_version = FileKek(kek_file).primary
    new_version = keys.kek.rotate()
    assert new_version == old_version + 1
    done, total = keys.rewrap_all()
    assert total >= 1 and done == total  # every key was on the old version
    name = f"{KEYS_PREFIX}acme/{rec.recording_id}/"
    (listed,) = list(s3.list_objects(KEYS_BUCKET, prefix=name, recursive=True))
    doc = json.loads(s3.get_object(KEYS_BUCKET, listed.object_name).read())
    assert doc["wrapped"]["version"] == new_version
    # The service's KEK file changed under it: it reads the file per use, so reads still work.
    assert _read_plain(s3, _keys(s3, kek_file), rec.object) == data
    after_versions = [v.version_id for v in s3.list_objects(rec.object.bucket, prefix=rec.object.key,
                                                            include_version=True)]  # fmt: skip
    assert after_versions == before_versions  # the locked audio was not rewritten
    assert encrypted.get("acme", rec.recording_id).metadata.agent_id == "agent-7"


def test_destroyed_key_makes_the_recording_noise(encrypted: Ingest, s3: Minio, kek_file: Path, new_wav) -> None:  # type: ignore[no-untyped-def]
    data = new_wav(1.0)
    rec = _archived(encrypted, data, customer_id="cust-gone")
    keys = _keys(s3, kek_file)
    assert keys.recordings_of_customer("acme", "cust-gone") == [rec.recording_id]
    destroyed = keys.destroy("acme", rec.recording_id)
    assert len(destroyed) == 1 and keys.remaining("acme", rec.recording_id) == []
    assert keys.recordings_of_customer("acme", "cust-gone") == []
    with pytest.raises(KeyDestroyed, match="erased"):
        _read_plain(s3, keys, rec.object)
    got = encrypted.get("acme", rec.recording_id)
    assert got.protection.erased and got.metadata.agent_id == "" and got.metadata.customer_id == ""
    assert "erased" in got.state_detail  # not "archived, not queued yet": nothing will process it
    # The same audio cannot be archived again while its erased copy is locked.
    with pytest.raises(grpc.RpcError) as caught:
        _upload(encrypted, data)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "erased" in (caught.value.details() or "")


# --------------------------------------------------------------------------- the lifecycle without keys, erasure


@pytest.fixture(scope="module")
def stores(s3_server, s3: Minio, kek_file: Path) -> tuple[S3RecordingStore, S3RecordingStore]:  # type: ignore[no-untyped-def]
    """(a store with the KEK, one without any key: what an auditor or a mover needs is no key)."""
    cold = LockedBucket(s3, s3_server.cold_bucket, Tier.COLD)  # type: ignore[arg-type]
    keyed = S3RecordingStore(s3, s3_server.hot_bucket, 5 * 1024 * 1024, 2, 4, cold=cold, keys=_keys(s3, kek_file))  # type: ignore[arg-type]
    keyless = S3RecordingStore(s3, s3_server.hot_bucket, 5 * 1024 * 1024, 2, 4, cold=cold)  # type: ignore[arg-type]
    return keyed, keyless


def test_the_audit_and_a_move_need_no_key(encrypted: Ingest, stores, redis_server, tenants_file, new_wav) -> None:  # type: ignore[no-untyped-def]
    keyed, keyless = stores
    data = new_wav(1.0)
    rec = _archived(encrypted, data)
    state = LifecycleRedis(redis_server.url, 2.0)
    tenants = TenantRegistry.load(tenants_file.path)
    found = keyless.find_hot("acme", rec.recording_id)
    assert found is not None and found.sealed is not None and found.sealed.state == "locked"
    auditor = Auditor(keyless, tenants, state, no_indexer(), 50 * 1024 * 1024, 1)
    event = auditor.audit_one("acme", rec.recording_id)
    assert event.integrity == "OK" and event.bytes_hashed == rec.protection.stored_size_bytes
    mover = Mover(keyless, tenants, state, no_indexer(), MoverConfig(1.0, 2.0, part_size=5 * 1024 * 1024))
    moved = mover.handle(tenants.get("acme"), rec.recording_id)  # type: ignore[arg-type]
    assert moved is not None and moved.outcome == MOVED
    # Read from the cold tier through the service: the record decrypts, the audio too.
    got = encrypted.get("acme", rec.recording_id)
    assert got.tier == c.STORAGE_TIER_COLD and got.metadata.agent_id == "agent-7"
    assert _read_plain(keyed.hot.client, keyed.keys, got.object) == data
    assert auditor.audit_one("acme", rec.recording_id).integrity == "OK"


def _every_stored_text(s3: Minio, buckets: list[str], redis_url: str, directories: list[Path]) -> str:
    """Everything the project wrote, as one text to search: every version of every object (small enough to
    be a key or a record) in every bucket, every Redis value, every file under the service directories."""
    parts: list[str] = []
    for bucket in buckets:
        for obj in s3.list_objects(bucket, recursive=True, include_version=True):
            if obj.is_delete_marker or (obj.size or 0) > 4 * 1024 * 1024:
                continue
            response = s3.get_object(bucket, obj.object_name or "", version_id=obj.version_id)
            try:
                parts.append(response.read().decode("latin-1"))
                parts.append(json.dumps(dict(response.headers)))
            finally:
                response.close()
                response.release_conn()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        value = {b"string": client.get, b"hash": client.hgetall, b"set": client.smembers,
                 b"list": lambda k: client.lrange(k, 0, -1), b"zset": lambda k: client.zrange(k, 0, -1),
                 b"stream": lambda k: client.xrange(k)}.get(kind, lambda k: b"")(key)  # fmt: skip
        parts.append(repr(value))
    for directory in directories:
        for path in directory.rglob("*"):
            if path.is_file() and path.stat().st_size < 4 * 1024 * 1024:
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_erasure_destroys_every_copy_of_the_key_and_is_refused_under_hold(
    encrypted: Ingest, stores, s3_server, s3: Minio, redis_server, kek_file: Path, tenants_file, new_wav
) -> None:  # type: ignore[no-untyped-def]
    keyed, _ = stores
    state = LifecycleRedis(redis_server.url, 2.0)
    trail = Trail(keyed.hot)
    # Built as the lifecycle program builds its store: keys to destroy, no record ever decrypted.
    lifecycle_store = S3RecordingStore(keyed.hot.client, keyed.hot.name, 5 * 1024 * 1024, 2, 4, cold=keyed.cold,
                                       keys=keyed.keys, open_records=False)  # fmt: skip
    eraser = Eraser(lifecycle_store, state, no_indexer(), receipt_days=1 / 86400, trail=trail)
    acme = TenantRegistry.load(tenants_file.path).get("acme")
    assert acme is not None
    dpo = {"kind": "token", "name": "dpo", "role": "admin"}
    data = new_wav(1.0)
    rec = _archived(encrypted, data, customer_id="cust-erase")
    (name,) = [o.object_name for o in s3.list_objects(KEYS_BUCKET, prefix=f"{KEYS_PREFIX}acme/{rec.recording_id}/",
                                                      recursive=True)]  # fmt: skip
    wrapped = json.loads(s3.get_object(KEYS_BUCKET, name).read())["wrapped"]["ciphertext"]
    # Under a legal hold: refused, nothing destroyed.
    encrypted.stub.SetLegalHold(pb.SetLegalHoldRequest(recording_id=rec.recording_id, legal_hold=True),
                                metadata=encrypted.auth("acme"), timeout=30)  # fmt: skip
    with pytest.raises(FailedPrecondition, match="legal hold"):
        eraser.erase(acme, rec.recording_id, "DSR-1", dpo)
    assert _read_plain(s3, keyed.keys, rec.object) == data
    with pytest.raises(InvalidArgument, match="reason"):
        eraser.erase(acme, rec.recording_id, "  ", dpo)
    encrypted.stub.SetLegalHold(pb.SetLegalHoldRequest(recording_id=rec.recording_id, legal_hold=False),
                                metadata=encrypted.auth("acme"), timeout=30)  # fmt: skip
    (receipt,) = eraser.erase_customer(acme, "cust-erase", "DSR-2026-0042", dpo)
    assert receipt["recording_id"] == rec.recording_id and receipt["sha256"] == rec.object.sha256
    assert receipt["stored_sha256"] == rec.protection.stored_sha256 and receipt["reason"] == "DSR-2026-0042"
    # The receipt is locked; erasing again returns it.
    assert eraser.erase(acme, rec.recording_id, "again", dpo) == receipt
    stat = keyed.hot.stat(f"erasures/acme/{rec.recording_id}.json")
    assert stat is not None and stat.lock.mode == "COMPLIANCE"
    with pytest.raises(KeyDestroyed):
        _read_plain(s3, keyed.keys, rec.object)
    # The wrapped key (and its id) are nowhere the project writes: buckets (every version), Redis, the service's
    # files (spool, KEK keyring).
    home = Path(encrypted.env["INGEST_SPOOL_DIR"]).parent
    text = _every_stored_text(
        s3, [s3_server.hot_bucket, s3_server.cold_bucket, KEYS_BUCKET], redis_server.url, [home, kek_file.parent]
    )
    assert wrapped not in text
    assert keyed.keys.remaining("acme", rec.recording_id) == []  # type: ignore[union-attr]
    # The archive still holds the ciphertext, locked, and says the recording is erased.
    got = encrypted.get("acme", rec.recording_id)
    assert got.protection.erased and got.lock.mode
    # The access trail tells it: the customer erasure, the request before the key went, the receipt after.
    entries = [e for e in trail.last_entries("acme", 50) if rec.recording_id in e.entry.targets]
    steps = [(e.entry.action, e.entry.details.get("step")) for e in entries]
    assert ("erase.customer", None) in steps and ("erase.recording", "requested") in steps
    assert ("erase.recording", "done") in steps
    assert all(e.entry.actor["name"] == "dpo" for e in entries if e.entry.action.startswith("erase"))
    assert trail.verify("acme").ok
