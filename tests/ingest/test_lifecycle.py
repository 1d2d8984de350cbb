"""The storage lifecycle's tiering on real SeaweedFS and Redis (issue 18): hot copies locked hot_days + grace,
moved to the cold tier (the same S3, or a second one) locked until the end of the retention, read there by
every reader, released once their hot lock ended; a recording that cannot move keeps a locked hot copy; two
movers never double-move; a cold copy locked too briefly is never used.

Clocks are made short by configuration: the tenant's hot_days and INGEST_HOT_LOCK_GRACE_DAYS are seconds' worth.
The indexer is not running here (its updates wait in Redis: `index pending`); the whole chain with the indexer
and the VAD reading a moved recording is in tests/pipeline/test_lifecycle_e2e.py.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.lifecycle.mover import BUSY, EXTENDED, FAILED, MOVED, RELEASED, MoveEvent, Mover, MoverConfig
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.tenants import TenantRegistry
from callscribe.stack.procs import free_port
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.errors import ObjectLocked
from callscribe.storage.location import Tier
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2_grpc
from callscribe.v1 import ingest_pb2 as pb

from .conftest import Ingest, StartIngest, wait_for

HOT_DAYS = 2 / 86400  # recordings are due to move 2 s after they were archived
GRACE_DAYS = 20 / 86400  # hot copies are locked 22 s in all
SERVICE_TOKEN = "lifecycle-test-service-token"


@pytest.fixture(scope="module")
def tiering_tenants(stack_tmp: Path) -> TenantsFile:
    specs = {
        "tiered": TenantSpec("COMPLIANCE", 1, hot_days=HOT_DAYS),
        "tiered2": TenantSpec("COMPLIANCE", 1, hot_days=HOT_DAYS, cold_storage_class="STANDARD_IA"),
    }
    return TenantsFile.write(stack_tmp / "lifecycle-tenants.json", specs, {"pipeline": SERVICE_TOKEN})


@pytest.fixture(scope="module")
def tiering(start_ingest: StartIngest, tiering_tenants: TenantsFile) -> Ingest:
    env_overrides = {"hot_lock_grace_days": str(GRACE_DAYS)}
    instance = start_ingest("tiering", tenants_file=str(tiering_tenants.path), **env_overrides)
    instance.tokens.clear()
    instance.tokens.update(tiering_tenants.tokens)
    return instance


@pytest.fixture(scope="module")
def store(s3_server) -> S3RecordingStore:  # type: ignore[no-untyped-def]
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", pool_size=16)
    cold = LockedBucket(client, s3_server.cold_bucket, Tier.COLD)
    return S3RecordingStore(client, s3_server.hot_bucket, 5 * 1024 * 1024, 2, 4, cold=cold)


@pytest.fixture(scope="module")
def state(redis_server) -> LifecycleRedis:  # type: ignore[no-untyped-def]
    return LifecycleRedis(redis_server.url, 2.0)


def _no_indexer() -> IndexClient:
    """An indexer address where nothing listens: every update waits in Redis (index pending)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{free_port()}")
    return IndexClient(indexer_pb2_grpc.IndexerServiceStub(channel), SERVICE_TOKEN, timeout_s=2.0)


MakeMover = Callable[..., Mover]


@pytest.fixture(scope="module")
def make_mover(store: S3RecordingStore, state: LifecycleRedis, tiering_tenants: TenantsFile) -> MakeMover:
    def make(store_: S3RecordingStore | None = None, **config: object) -> Mover:
        settings = {"extend_before_days": 10 / 86400, "extend_days": 60 / 86400, "part_size": 5 * 1024 * 1024}
        settings.update(config)  # type: ignore[arg-type]
        return Mover(
            store_ or store,
            TenantRegistry.load(tiering_tenants.path),
            state,
            _no_indexer(),
            MoverConfig(**settings),  # type: ignore[arg-type]
        )

    return make


def _upload(
    ingest: Ingest, new_wav: Callable[..., bytes], tenant: str = "tiered", **fields: object
) -> pb.UploadRecordingResponse:
    return ingest.upload(tenant, new_wav(), **fields)


def _due(ack: pb.UploadRecordingResponse) -> None:
    """Wait until the recording is past its hot_days."""
    archived = ack.lock.retain_until.ToDatetime(UTC) - timedelta(days=HOT_DAYS + GRACE_DAYS)
    wait_for(lambda: datetime.now(UTC) > archived + timedelta(days=HOT_DAYS, seconds=1), 10, "hot_days to pass")


def _events_for(events: list[MoveEvent], rec_id: str) -> list[str]:
    return [e.outcome for e in events if e.recording_id == rec_id]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the move


def test_hot_copies_are_locked_for_hot_days_plus_grace_and_the_record_keeps_the_retention(
    tiering: Ingest, new_wav: Callable[..., bytes], store: S3RecordingStore
) -> None:
    ack = _upload(tiering, new_wav)
    now = datetime.now(UTC)
    hot_until = ack.lock.retain_until.ToDatetime(UTC)
    assert now < hot_until <= now + timedelta(days=HOT_DAYS + GRACE_DAYS, seconds=2)
    record = store.find_hot("tiered", ack.recording_id)
    assert record is not None and record.retention is not None
    assert record.retention.mode == "COMPLIANCE"
    assert abs((record.retention.retain_until - (record.archived_at + timedelta(days=1))).total_seconds()) < 3


def test_a_recording_moves_to_the_cold_tier_locked_for_its_retention_and_is_read_there(
    tiering: Ingest,
    new_wav: Callable[..., bytes],
    store: S3RecordingStore,
    make_mover: MakeMover,
    state: LifecycleRedis,
) -> None:
    ack = _upload(tiering, new_wav)
    _due(ack)
    events = list(make_mover().run("tiered"))
    [moved] = [e for e in events if e.recording_id == ack.recording_id]
    assert moved.outcome == MOVED and "told later" in moved.detail  # no indexer here: pending in Redis
    assert state.is_index_pending("tiered", ack.recording_id)
    rec = tiering.get("tiered", ack.recording_id)
    assert rec.tier == c.STORAGE_TIER_COLD and rec.moved_at.seconds > 0
    assert rec.object.bucket == store.require_cold().name and rec.object.sha256 == ack.sha256
    assert rec.object.key == ack.object.key and rec.object.version_id != ack.object.version_id
    # locked until the end of the retention (archived + 1 day), COMPLIANCE
    retain_until = rec.lock.retain_until.ToDatetime(UTC)
    assert rec.lock.mode == c.LOCK_MODE_COMPLIANCE
    assert retain_until >= rec.archived_at.ToDatetime(UTC) + timedelta(days=1) - timedelta(seconds=2)
    # the cold copy's bytes are the recording's
    got: list[bytes] = []
    cold = store.require_cold()
    cold.read_verified(_ref(rec.object), lambda b: got.append(bytes(b)))
    assert _sha(b"".join(got)) == ack.sha256
    # the location is itself locked: nobody can rewrite history
    location_key = ack.object.key.rsplit("/", 1)[0] + "/location.json"
    stat = store.hot.stat(location_key)
    assert stat is not None and stat.lock.mode == "COMPLIANCE" and stat.lock.retain_until >= retain_until
    with pytest.raises(ObjectLocked):
        store.hot.delete_version(location_key, stat.version_id)
    # the hot copy is still there, still locked, and no longer what is read
    hot = store.find_hot("tiered", ack.recording_id)
    assert hot is not None and hot.object is not None and hot.object.version_id == ack.object.version_id
    # a second pass does nothing to it (already moved, hot lock still on)
    assert _events_for(list(make_mover().run("tiered")), ack.recording_id) == []


def test_the_cold_storage_class_is_passed_through(
    tiering: Ingest, new_wav: Callable[..., bytes], store: S3RecordingStore, make_mover: MakeMover
) -> None:
    ack = _upload(tiering, new_wav, tenant="tiered2")
    _due(ack)
    assert _events_for(list(make_mover().run("tiered2")), ack.recording_id) == [MOVED]
    rec = tiering.get("tiered2", ack.recording_id)
    stat = store.require_cold().stat(rec.object.key, rec.object.version_id)
    assert stat is not None and stat.metadata.get("x-amz-storage-class", "STANDARD_IA") == "STANDARD_IA"


def test_the_hot_copy_is_released_once_its_lock_ended_and_the_recording_stays_listed(
    tiering: Ingest,
    new_wav: Callable[..., bytes],
    store: S3RecordingStore,
    make_mover: MakeMover,
    state: LifecycleRedis,
) -> None:
    ack = _upload(tiering, new_wav)
    _due(ack)
    mover = make_mover()
    assert _events_for(list(mover.run("tiered")), ack.recording_id) == [MOVED]
    hot_until = ack.lock.retain_until.ToDatetime(UTC)
    # Not while the index may still point at the hot copy (no indexer here: pending), nor while it is locked.
    wait_for(lambda: datetime.now(UTC) > hot_until + timedelta(seconds=1), 40, "the hot lock to end")
    assert _events_for(list(mover.run("tiered")), ack.recording_id) == []
    state.index_pending("tiered", ack.recording_id, False)  # as if the indexer had taken the update
    assert _events_for(list(mover.run("tiered")), ack.recording_id) == [RELEASED]
    assert store.find_hot("tiered", ack.recording_id) is None
    prefix = ack.object.key.rsplit("/", 1)[0] + "/"
    assert [v.key for v in store.hot.versions(prefix)] == [prefix + "location.json"]
    rec = tiering.get("tiered", ack.recording_id)
    assert rec.tier == c.STORAGE_TIER_COLD and rec.object.bucket == store.require_cold().name
    listed = tiering.stub.ListRecordings(pb.ListRecordingsRequest(page_size=1000), metadata=tiering.auth("tiered"))
    assert ack.recording_id in {r.recording_id for r in listed.recordings}
    # a legal hold now goes on the cold copy (the only one left)
    tiering.stub.SetLegalHold(
        pb.SetLegalHoldRequest(recording_id=ack.recording_id, legal_hold=True), metadata=tiering.auth("tiered")
    )
    stat = store.require_cold().stat(rec.object.key, rec.object.version_id)
    assert stat is not None and stat.lock.legal_hold


def test_a_recording_that_cannot_move_keeps_a_locked_hot_copy(
    tiering: Ingest,
    new_wav: Callable[..., bytes],
    s3_server,
    state: LifecycleRedis,
    make_mover: MakeMover,  # type: ignore[no-untyped-def]
) -> None:
    """The cold S3 is unreachable: nothing moves, and before the hot lock could lapse it is extended."""
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", pool_size=4)
    dead = make_client(f"http://127.0.0.1:{free_port()}", "x", "y", "us-east-1", pool_size=2)
    broken = S3RecordingStore(client, s3_server.hot_bucket, 5 * 1024 * 1024, 2, 4, cold=LockedBucket(dead, "cold-down"))
    ack = _upload(tiering, new_wav)
    _due(ack)
    before = ack.lock.retain_until.ToDatetime(UTC)
    mover = make_mover(broken, extend_before_days=30 / 86400)  # anything under 30 s left is extended
    outcomes = _events_for(list(mover.run("tiered")), ack.recording_id)
    assert outcomes == [EXTENDED]
    rec = tiering.get("tiered", ack.recording_id)
    assert rec.tier == c.STORAGE_TIER_HOT
    after = rec.lock.retain_until.ToDatetime(UTC)
    assert after >= datetime.now(UTC) + timedelta(seconds=50) and after > before
    # with time to spare it is not extended again, only reported as not moved
    assert _events_for(list(make_mover(broken, extend_before_days=10 / 86400).run("tiered")), ack.recording_id) == [
        FAILED
    ]


def test_two_movers_at_once_move_each_recording_once(
    tiering: Ingest, new_wav: Callable[..., bytes], store: S3RecordingStore, make_mover: MakeMover
) -> None:
    acks = [_upload(tiering, new_wav) for _ in range(6)]
    _due(acks[-1])
    results: list[list[MoveEvent]] = [[], []]
    movers = [make_mover(), make_mover()]
    threads = [threading.Thread(target=lambda i=i: results[i].extend(movers[i].run("tiered"))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = results[0] + results[1]
    cold = store.require_cold()
    for ack in acks:
        outcomes = _events_for(events, ack.recording_id)
        assert outcomes.count(MOVED) == 1, outcomes
        assert set(outcomes) <= {MOVED, BUSY}
        versions = [v for v in cold.versions(ack.object.key) if v.key == ack.object.key]
        assert len(versions) == 1, versions


def test_a_cold_copy_locked_too_briefly_is_never_used(
    tiering: Ingest, new_wav: Callable[..., bytes], store: S3RecordingStore, make_mover: MakeMover
) -> None:
    """A copy already at the cold key (an earlier try, or someone else's) with the right bytes but a lock that
    ends before the retention: refused; a properly locked copy is made and becomes the location."""
    data = new_wav()
    ack = tiering.upload("tiered", data)
    cold = store.require_cold()
    short = Lock("COMPLIANCE", (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0))
    meta = {"x-amz-meta-sha256": ack.sha256}
    planted = cold.put_locked(ack.object.key, data, "application/octet-stream", short, metadata=meta)
    _due(ack)
    assert _events_for(list(make_mover().run("tiered")), ack.recording_id) == [MOVED]
    rec = tiering.get("tiered", ack.recording_id)
    assert rec.object.version_id != planted
    assert rec.lock.retain_until.ToDatetime(UTC) > datetime.now(UTC) + timedelta(hours=23)


def _ref(obj: c.ObjectRef):  # type: ignore[no-untyped-def]
    from callscribe.storage.location import ObjectRef

    return ObjectRef(obj.bucket, obj.key, obj.version_id, obj.sha256, Tier.COLD)
