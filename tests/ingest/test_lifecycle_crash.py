"""kill -9 of the lifecycle at every step of a move (issue 18): the real `python -m callscribe.ingest lifecycle`
SIGKILLs itself at the named step (INGEST_LIFECYCLE_KILL_AT); then, before and after a restart:

- the recording has exactly one authoritative location (`find`), and the copy there reads back verified;
- every stored copy of it, in either tier, is locked (no orphaned unlocked copy);
- after the restart's pass it is in the cold tier with exactly one cold copy (an earlier try's copy is used
  again, never a second one), and for a kill while releasing its hot copies are gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.mover import STEPS
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.stack.procs import ManagedProcess, free_port, stop
from callscribe.stack.services import grpc_address, service_env, start_service
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.location import ObjectRef, Tier
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import lifecycle_pb2 as lpb
from callscribe.v1 import lifecycle_pb2_grpc

from .conftest import Ingest, StartIngest, auth, wait_for

HOT_DAYS = 1 / 86400
GRACE_DAYS = 20 / 86400
TOKEN = "lifecycle-crash-service-token"
TENANTS = {f"kill-{step}": TenantSpec("COMPLIANCE", 1, hot_days=HOT_DAYS) for step in STEPS}


@pytest.fixture(scope="module")
def crash_tenants(stack_tmp: Path) -> TenantsFile:
    return TenantsFile.write(stack_tmp / "lifecycle-crash-tenants.json", TENANTS, {"pipeline": TOKEN})


@pytest.fixture(scope="module")
def uploads(start_ingest: StartIngest, crash_tenants: TenantsFile) -> Ingest:
    instance = start_ingest(
        "lifecycle-crash", tenants_file=str(crash_tenants.path), hot_lock_grace_days=str(GRACE_DAYS)
    )
    instance.tokens.clear()
    instance.tokens.update(crash_tenants.tokens)
    return instance


@pytest.fixture(scope="module")
def store(s3_server) -> S3RecordingStore:  # type: ignore[no-untyped-def]
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", pool_size=8)
    return S3RecordingStore(
        client, s3_server.hot_bucket, 5 * 1024 * 1024, 2, 4, cold=LockedBucket(client, s3_server.cold_bucket, Tier.COLD)
    )


StartLifecycle = Callable[..., tuple[ManagedProcess, lifecycle_pb2_grpc.LifecycleServiceStub]]


@pytest.fixture(scope="module")
def start_lifecycle(s3_server, redis_server, crash_tenants: TenantsFile, stack_tmp: Path) -> Iterator[StartLifecycle]:  # type: ignore[no-untyped-def]
    started: list[ManagedProcess] = []

    def start(name: str, **overrides: str) -> tuple[ManagedProcess, lifecycle_pb2_grpc.LifecycleServiceStub]:
        state = {
            "home": str(stack_tmp / f"lifecycle-{name}"),
            "tenants_file": str(crash_tenants.path),
            "s3": {
                "endpoint": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "hot_bucket": s3_server.hot_bucket,
                "cold_bucket": s3_server.cold_bucket,
            },
            "redis": {"url": redis_server.url},
            "grpc": {"indexer": f"127.0.0.1:{free_port()}"},  # no indexer: its updates wait (index pending)
            "service_token": TOKEN,
            "hot_lock_grace_days": str(GRACE_DAYS),
        }
        env = service_env("lifecycle", state)
        env["INGEST_LIFECYCLE_INTERVAL_SECONDS"] = "0"  # passes on request only
        env["INGEST_LIFECYCLE_LEASE_SECONDS"] = "5"
        env["INGEST_LIFECYCLE_PART_SIZE_MB"] = "5"
        env.update({f"INGEST_{k.upper()}": v for k, v in overrides.items()})
        proc = start_service("lifecycle", env, stack_tmp / "logs" / f"lifecycle-{name}.log")
        started.append(proc)
        address = grpc_address("lifecycle", env)
        assert address is not None
        return proc, lifecycle_pb2_grpc.LifecycleServiceStub(grpc.insecure_channel(address))

    yield start
    for proc in started:
        stop(proc)


def _copies_locked(
    store: S3RecordingStore, key: str, released_hot: bool = False
) -> list[tuple[str, str, datetime | None]]:
    """Every version of the recording's audio in both tiers: (tier, version, retain_until); all must be locked,
    but for `released_hot`: the hot copy of a moved recording whose lock ended (its release is under way; it is
    not read and the cold copy is the locked one)."""
    now = datetime.now(UTC)
    found = []
    for bucket in (store.hot, store.require_cold()):
        for version in bucket.versions(key):
            if version.key != key:
                continue
            assert not version.delete_marker, f"{bucket.name}: a delete marker on {key}"
            stat = bucket.stat(key, version.version_id)
            assert stat is not None
            locked = stat.lock.legal_hold or (stat.lock.retain_until is not None and stat.lock.retain_until > now)
            assert locked or (released_hot and bucket is store.hot), (
                f"{bucket.name} version {version.version_id} of {key} is not locked: {stat.lock}"
            )
            found.append((bucket.tier.value, version.version_id, stat.lock.retain_until))
    return found


def _authoritative_copy_verifies(store: S3RecordingStore, tenant: str, rec_id: str, sha256: str) -> str:
    record = store.find(tenant, rec_id)
    assert record is not None and record.object is not None and record.sha256 == sha256
    bucket = store.require_cold() if record.tier == "COLD" else store.hot
    ref = ObjectRef(bucket.name, record.object.key, record.object.version_id, sha256, bucket.tier)
    digest = hashlib.sha256()
    bucket.read_verified(ref, digest.update)
    assert digest.hexdigest() == sha256
    return record.tier


@pytest.mark.parametrize("step", STEPS)
def test_a_move_killed_at_any_step_leaves_one_locked_verified_location_and_completes_after_restart(
    step: str,
    uploads: Ingest,
    new_wav: Callable[..., bytes],
    store: S3RecordingStore,
    start_lifecycle: StartLifecycle,
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    tenant = f"kill-{step}"
    ack = uploads.upload(tenant, new_wav())
    key, rec_id = ack.object.key, ack.recording_id
    wait_for(
        lambda: (
            datetime.now(UTC)
            > ack.lock.retain_until.ToDatetime(UTC) - timedelta(days=GRACE_DAYS) + timedelta(seconds=1)
        ),
        10,
        "hot_days to pass",
    )
    state = LifecycleRedis(redis_server.url, 2.0)
    if step == "releasing":
        # Releasing needs a moved recording whose hot lock ended and whose index update went through.
        proc, stub = start_lifecycle(f"{step}-prepare")
        events = list(stub.RunTiering(lpb.RunTieringRequest(tenant=tenant), metadata=uploads.auth(tenant)))
        assert [e.outcome for e in events] == [lpb.TieringEvent.OUTCOME_MOVED]
        stop(proc)
        state.index_pending(tenant, rec_id, False)
        wait_for(
            lambda: datetime.now(UTC) > ack.lock.retain_until.ToDatetime(UTC) + timedelta(seconds=1),
            40,
            "the hot lock to end",
        )

    proc, stub = start_lifecycle(step, lifecycle_kill_at=step)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunTiering(lpb.RunTieringRequest(tenant=tenant), metadata=uploads.auth(tenant), timeout=60))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    wait_for(lambda: not proc.is_alive(), 10, "the lifecycle to be gone")
    assert f"killed at step '{step}'" in Path(proc.log_path).read_text()

    # Right after the crash: one authoritative, verified location; every copy locked.
    tier = _authoritative_copy_verifies(store, tenant, rec_id, ack.sha256)
    assert tier == ("COLD" if step in ("located", "indexed", "releasing") else "HOT")
    _copies_locked(store, key, released_hot=step == "releasing")
    if step != "releasing":
        assert uploads.get(tenant, rec_id).tier == (c.STORAGE_TIER_COLD if tier == "COLD" else c.STORAGE_TIER_HOT)

    # A restart finishes the work.
    _proc, stub = start_lifecycle(f"{step}-after")
    wait_for(lambda: state.acquire(rec_id, "probe", 1) and (state.release(rec_id, "probe") or True), 10, "the lease")
    events = list(stub.RunTiering(lpb.RunTieringRequest(tenant=tenant), metadata=uploads.auth(tenant)))
    assert _authoritative_copy_verifies(store, tenant, rec_id, ack.sha256) == "COLD"
    copies = _copies_locked(store, key)
    cold_copies = [v for t, v, _ in copies if t == "COLD"]
    assert len(cold_copies) == 1, copies  # never a second cold copy
    rec = uploads.get(tenant, rec_id)
    assert rec.tier == c.STORAGE_TIER_COLD and rec.object.version_id == cold_copies[0]
    hot_copies = [v for t, v, _ in copies if t == "HOT"]
    if step == "releasing":
        assert hot_copies == [] and [e.outcome for e in events] == [lpb.TieringEvent.OUTCOME_HOT_RELEASED]
    else:
        assert hot_copies == [ack.object.version_id]  # still locked: released by a later pass
        expected = [] if step in ("located", "indexed") else [lpb.TieringEvent.OUTCOME_MOVED]
        assert [e.outcome for e in events] == expected


def test_a_tenant_token_runs_tiering_for_its_own_tenant_only(uploads: Ingest, start_lifecycle: StartLifecycle) -> None:
    _proc, stub = start_lifecycle("auth")
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunTiering(lpb.RunTieringRequest(tenant="kill-leased"), metadata=uploads.auth("kill-copied")))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunTiering(lpb.RunTieringRequest(older_than_days=-1), metadata=uploads.auth("kill-copied")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunTiering(lpb.RunTieringRequest(), metadata=auth("not-a-token")))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
