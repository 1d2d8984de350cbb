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
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.audit import Auditor, Throttle
from callscribe.ingest.lifecycle.expiry import Expirer
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.lifecycle.mover import BUSY, EXTENDED, FAILED, MOVED, RELEASED, MoveEvent, Mover, MoverConfig
from callscribe.ingest.model import Location
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.tenants import Tenant, TenantRegistry
from callscribe.stack.procs import free_port
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.errors import ObjectLocked
from callscribe.storage.location import Tier
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

from .conftest import Ingest, StartIngest, no_indexer, wait_for

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
    return no_indexer(SERVICE_TOKEN)


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


# --------------------------------------------------------------------------- the integrity audit


def _flip_a_byte(volumes: Path, bucket: str, data: bytes) -> None:
    """Corrupt one stored byte of `data` where SeaweedFS keeps it: in the bucket's volume file on disk, as is or
    (SeaweedFS gzips what it finds compressible, WAV among it) inside the gzip member that holds it."""
    window = data[-24:]  # new_wav ends in 16 random bytes: found nowhere else (its speech is every call's)
    for volume in sorted(volumes.glob(f"{bucket}_*.dat")):
        raw = bytearray(volume.read_bytes())
        at = raw.find(window)
        if at < 0:
            at = _gzip_member_of(raw, data)
        if at >= 0:
            raw[at] ^= 0xFF
            volume.write_bytes(bytes(raw))
            return
    raise AssertionError(f"the bytes were not found in {bucket}'s volume files under {volumes}")


def _gzip_member_of(raw: bytearray, data: bytes) -> int:
    """The offset of the middle of the gzip member that decompresses to `data`; -1 when there is none."""
    at = raw.find(b"\x1f\x8b\x08")
    while at >= 0:
        member = zlib.decompressobj(31)
        try:
            if member.decompress(bytes(raw[at:])) == data:
                return at + (len(raw) - at - len(member.unused_data)) // 2
        except zlib.error:
            pass
        at = raw.find(b"\x1f\x8b\x08", at + 1)
    return -1


@pytest.fixture(scope="module")
def auditor(s3_server, state: LifecycleRedis, tiering_tenants: TenantsFile) -> Auditor:  # type: ignore[no-untyped-def]
    """The audit's own store: a short read timeout (SeaweedFS stalls a read of a damaged needle)."""
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 8, 1.0)
    cold = LockedBucket(client, s3_server.cold_bucket, Tier.COLD)
    store = S3RecordingStore(client, s3_server.hot_bucket, 5 * 1024 * 1024, 2, 4, cold=cold)
    return Auditor(store, TenantRegistry.load(tiering_tenants.path), state, _no_indexer(), 50 * 1024 * 1024, 1)


def test_a_flipped_byte_is_found_in_each_tier_and_raised_never_repaired(
    tiering: Ingest,
    new_wav: Callable[..., bytes],
    store: S3RecordingStore,
    make_mover: MakeMover,
    auditor: Auditor,
    stack_tmp: Path,
) -> None:
    volumes = stack_tmp / "s3"
    hot_data, cold_data, clean_data = new_wav(), new_wav(), new_wav()
    hot_ack = tiering.upload("tiered", hot_data)
    cold_ack = tiering.upload("tiered", cold_data)
    clean_ack = tiering.upload("tiered", clean_data)
    _due(cold_ack)
    mover = make_mover()
    assert mover.handle(tiering_tenant(mover, "tiered"), cold_ack.recording_id).outcome == MOVED  # type: ignore[union-attr]
    assert auditor.audit_one("tiered", cold_ack.recording_id).integrity == "OK"  # both copies hash right
    _flip_a_byte(volumes, store.hot.name, hot_data)
    _flip_a_byte(volumes, store.require_cold().name, cold_data)

    hot_finding = auditor.audit_one("tiered", hot_ack.recording_id)
    assert hot_finding.integrity == "MISMATCH" and f"HOT s3://{store.hot.name}/" in hot_finding.detail
    cold_finding = auditor.audit_one("tiered", cold_ack.recording_id)
    assert cold_finding.integrity == "MISMATCH"
    assert f"COLD s3://{store.require_cold().name}/" in cold_finding.detail
    assert "HOT" in cold_finding.detail and "bytes OK" in cold_finding.detail  # its hot copy is still fine
    clean = auditor.audit_one("tiered", clean_ack.recording_id)
    assert clean.integrity == "OK" and clean.bytes_hashed == len(clean_data)

    # Raised where people look: the status, the locked audit trail; never repaired.
    rec = tiering.get("tiered", cold_ack.recording_id)
    assert rec.integrity == c.INTEGRITY_MISMATCH and "COLD" in rec.integrity_detail and rec.verified_at.seconds > 0
    assert tiering.get("tiered", clean_ack.recording_id).integrity == c.INTEGRITY_OK
    [entry] = store.audit_entries("tiered", hot_ack.recording_id)
    assert entry["integrity"] == "MISMATCH" and entry["recording_id"] == hot_ack.recording_id
    [listed] = list(store.hot.list(f"audit/tiered/{hot_ack.recording_id}/"))
    trail = store.hot.stat(listed.key)
    assert trail is not None and trail.lock.mode == "COMPLIANCE"
    with pytest.raises(ObjectLocked):
        store.hot.delete_version(listed.key, trail.version_id)
    assert auditor.audit_one("tiered", hot_ack.recording_id).integrity == "MISMATCH"  # still there next time


def test_a_missing_cold_copy_is_missing(
    tiering: Ingest, new_wav: Callable[..., bytes], store: S3RecordingStore, auditor: Auditor
) -> None:
    """The location names a cold copy that is not there (here: a location written by hand for bytes never
    copied, as a lost cold cluster would leave it)."""
    ack = tiering.upload("tiered", new_wav())
    record = store.find_hot("tiered", ack.recording_id)
    assert record is not None
    now = datetime.now(UTC).replace(microsecond=0)
    lost = Location(
        "COLD", store.require_cold().name, ack.object.key, "no-such-version", ack.sha256, record.size_bytes, now,
        "COMPLIANCE", now + timedelta(minutes=2), record.archived_at,
    )  # fmt: skip
    store.write_location(record, lost)
    finding = auditor.audit_one("tiered", ack.recording_id)
    assert finding.integrity == "MISSING" and "no-such-version" in finding.detail


def test_the_audit_round_resumes_from_its_checkpoint(
    tiering: Ingest, new_wav: Callable[..., bytes], store: S3RecordingStore, state: LifecycleRedis
) -> None:
    for _ in range(3):
        tiering.upload("tiered2", new_wav())
    state.set_audit_checkpoint("")
    only = TenantRegistry({"tiered2": Tenant("tiered2")}, {})  # the round over a tenant without damaged recordings
    auditor = Auditor(store, only, state, _no_indexer(), 50 * 1024 * 1024, 1)
    round_ = auditor.run()
    first = [next(round_), next(round_)]
    round_.close()  # stopped half-way (a restart)
    assert state.audit_checkpoint() == f"{first[-1].tenant}/{first[-1].recording_id}"
    rest = list(auditor.run())
    assert rest and (rest[0].tenant, rest[0].recording_id) > (first[-1].tenant, first[-1].recording_id)
    audited = {(e.tenant, e.recording_id) for e in first + rest}
    assert len(audited) == len(first) + len(rest)  # nothing twice
    assert {("tiered2", r) for r, _ in store.list_ids("tiered2", "", None, None)} <= audited
    assert state.audit_checkpoint() == ""  # the round ended


def test_the_audit_reads_no_faster_than_its_rate() -> None:
    throttle = Throttle(1024 * 1024)  # 1 MiB/s
    started = time.monotonic()
    for _ in range(6):
        throttle.take(256 * 1024)
    assert time.monotonic() - started >= 1.2  # 1.5 MiB at 1 MiB/s, the first block free


# --------------------------------------------------------------------------- retention expiry


@pytest.fixture(scope="module")
def short_tenants(stack_tmp: Path) -> TenantsFile:
    """Recordings kept 15 s (retention), so that expiry can be seen in a test."""
    specs = {"brief": TenantSpec("COMPLIANCE", 15 / 86400, hot_days=HOT_DAYS)}
    return TenantsFile.write(stack_tmp / "lifecycle-brief-tenants.json", specs, {"pipeline": SERVICE_TOKEN})


@pytest.fixture(scope="module")
def brief(start_ingest: StartIngest, short_tenants: TenantsFile) -> Ingest:
    instance = start_ingest("brief", tenants_file=str(short_tenants.path), hot_lock_grace_days=str(GRACE_DAYS))
    instance.tokens.clear()
    instance.tokens.update(short_tenants.tokens)
    return instance


def test_expiry_deletes_every_copy_everywhere_and_leaves_a_tombstone_a_legal_hold_blocks_it(
    brief: Ingest,
    new_wav: Callable[..., bytes],
    store: S3RecordingStore,
    state: LifecycleRedis,
    short_tenants: TenantsFile,
) -> None:
    tenants = TenantRegistry.load(short_tenants.path)
    mover = Mover(store, tenants, state, _no_indexer(), MoverConfig(part_size=5 * 1024 * 1024))
    expirer = Expirer(store, tenants, state, _no_indexer(), 1)
    moved, hot_only, held = (brief.upload("brief", new_wav()) for _ in range(3))
    _due(moved)
    assert mover.handle(tenants.get("brief"), moved.recording_id).outcome == MOVED  # type: ignore[arg-type]
    brief.stub.SetLegalHold(
        pb.SetLegalHoldRequest(recording_id=held.recording_id, legal_hold=True), metadata=brief.auth("brief")
    )
    assert not [e for e in expirer.run("brief") if e.recording_id in (moved.recording_id, hot_only.recording_id)]
    # retention is 15 s; the hot lock (hot_days + grace) may outlive it: expiry waits for every lock
    end = max(moved.lock.retain_until.ToDatetime(UTC), datetime.now(UTC) + timedelta(seconds=15))
    wait_for(lambda: datetime.now(UTC) > end + timedelta(seconds=1), 40, "the retention and locks to end")
    events = {e.recording_id: e for e in expirer.run("brief")}
    for ack in (moved, hot_only):
        event = events[ack.recording_id]
        assert event.tombstone is not None, event.detail
        assert event.tombstone["sha256"] == ack.sha256 and event.tombstone["reason"] == "retention ended"
        prefix = ack.object.key.rsplit("/", 1)[0] + "/"
        assert not list(store.hot.versions(prefix)) and not list(store.require_cold().versions(prefix))
        rec = brief.get("brief", ack.recording_id)  # the status shows the tombstone
        assert rec.tombstone.recording_id == ack.recording_id and rec.tombstone.deleted_at.seconds > 0
        assert rec.tombstone.sha256 == ack.sha256 and not rec.object.key
        tomb = store.hot.stat(f"tombstones/brief/{ack.recording_id}.json")
        assert tomb is not None and tomb.lock.mode == "COMPLIANCE"
    assert events[moved.recording_id].tombstone["versions_deleted"] >= 3  # type: ignore[index]  # hot, cold, location
    assert events[held.recording_id].tombstone is None and "legal hold" in events[held.recording_id].detail
    assert brief.get("brief", held.recording_id).object.key == held.object.key  # kept, readable
    listed = brief.stub.ListRecordings(pb.ListRecordingsRequest(page_size=1000), metadata=brief.auth("brief"))
    assert {r.recording_id for r in listed.recordings} >= {held.recording_id}
    assert not {moved.recording_id, hot_only.recording_id} & {r.recording_id for r in listed.recordings}
    # released, the hold no longer keeps it
    brief.stub.SetLegalHold(
        pb.SetLegalHoldRequest(recording_id=held.recording_id, legal_hold=False), metadata=brief.auth("brief")
    )
    assert [e.tombstone is not None for e in expirer.run("brief") if e.recording_id == held.recording_id] == [True]


def tiering_tenant(mover: Mover, name: str):  # type: ignore[no-untyped-def]
    spec = mover._tenants.get(name)  # noqa: SLF001 - the test's own mover
    assert spec is not None
    return spec
