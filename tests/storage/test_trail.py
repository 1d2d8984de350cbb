"""The access trail on a real S3 with Object Lock (SeaweedFS): appends chain and lock, `verify` proves an intact
trail and names the first entry of a tampered one (a version PUT over an entry, a delete marker, a gap, an entry
forged with a wrong `prev`), and concurrent writers never fork the chain."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from callscribe.kit.tenants import Tenant
from callscribe.storage.bucket import Lock, LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.trail import GENESIS, Trail, TrailEntry, entry_key, sha256_hex

ACTOR = {"kind": "token", "name": "legal-team", "role": "admin"}


@pytest.fixture(scope="module")
def hot(first_s3: S3Client, s3_server) -> LockedBucket:  # type: ignore[no-untyped-def]
    return LockedBucket(first_s3, s3_server.hot_bucket)


@pytest.fixture
def tenant() -> Tenant:
    """A tenant of its own per test (its trail starts empty); entries locked for a day."""
    return Tenant(f"trail-{secrets.token_hex(4)}", retention_days=1)


def _fill(trail: Trail, tenant: Tenant, count: int) -> list[str]:
    """`count` hold entries; their recording ids."""
    ids = [secrets.token_hex(16) for _ in range(count)]
    for rec_id in ids:
        trail.append(tenant, ACTOR, "hold.set", [rec_id], {"reason": "case 42"})
    return ids


def _raw_put(hot: LockedBucket, key: str, data: bytes) -> None:
    """What an attacker with write access can do: PUT a key without any condition (a new version over it)."""
    hot.client.put_object(hot.name, key, io.BytesIO(data), len(data), content_type="application/json")


def _locked_put(hot: LockedBucket, key: str, data: bytes) -> None:
    """An entry forged the way callscribe writes one: locked COMPLIANCE, only if absent."""
    hot.put_locked_if_absent(key, data, "application/json", Lock("COMPLIANCE", datetime.now(UTC) + timedelta(days=1)))


def _read_original(hot: LockedBucket, key: str) -> bytes:
    versions = [v for v in hot.versions(key) if not v.delete_marker]
    raw, _ = hot.read_with_lock(key, versions[-1].version_id)
    return raw


def test_appends_chain_and_lock_each_entry_and_verify_passes(hot: LockedBucket, tenant: Tenant) -> None:
    trail = Trail(hot)
    first = trail.append(tenant, ACTOR, "hold.set", ["r1"], {"reason": "case 42", "legal_hold": True})
    second = trail.append(tenant, ACTOR, "export", [], {"filter": {"query": "refund"}})
    assert (first.entry.seq, second.entry.seq) == (1, 2)
    assert first.entry.prev == GENESIS and second.entry.prev == first.sha256
    assert first.key == entry_key(tenant.name, 1) == f"trail/{tenant.name}/000000000001.json"
    raw, lock = hot.read_with_lock(second.key, second.version_id)
    assert sha256_hex(raw) == second.sha256 and hashlib.sha256(raw).hexdigest() == second.sha256
    assert TrailEntry.parse(raw) == second.entry
    assert json.loads(raw)["details"] == {"filter": {"query": "refund"}}
    assert lock.mode == "COMPLIANCE" and lock.retain_until is not None
    result = Trail(hot).verify(tenant.name)  # another process: nothing cached
    assert result.ok, result.first_break
    assert (result.entries, result.verified, result.head_sha256) == (2, 2, second.sha256)


def test_an_empty_trail_verifies_with_the_genesis_head(hot: LockedBucket, tenant: Tenant) -> None:
    result = Trail(hot).verify(tenant.name)
    assert result.ok and (result.entries, result.verified, result.head_sha256) == (0, 0, GENESIS)


def test_a_new_version_with_one_field_edited_is_reported_at_its_entry(hot: LockedBucket, tenant: Tenant) -> None:
    trail = Trail(hot)
    _fill(trail, tenant, 5)
    key = entry_key(tenant.name, 3)
    doc = json.loads(_read_original(hot, key))
    doc["actor"]["name"] = "someone-else"  # one field; the chain fields left as they were
    _raw_put(hot, key, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 3
    assert "2 versions" in result.first_break.reason and "written over" in result.first_break.reason
    assert result.verified == 2 and result.entries == 5


def test_a_delete_marker_is_reported_at_its_entry(hot: LockedBucket, tenant: Tenant) -> None:
    trail = Trail(hot)
    _fill(trail, tenant, 4)
    hot.client.remove_object(hot.name, entry_key(tenant.name, 2))  # no version id: a delete marker
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 2
    assert "delete marker" in result.first_break.reason
    # A writer never reuses the deleted entry's number, nor chains after it silently.
    appended = Trail(hot).append(tenant, ACTOR, "hold.release", ["r"], {})
    assert appended.entry.seq == 5


def test_a_gap_in_the_sequence_is_reported(hot: LockedBucket, tenant: Tenant) -> None:
    trail = Trail(hot)
    _fill(trail, tenant, 3)
    head = trail.verify(tenant.name).head_sha256
    # An entry 5 chained to entry 3, as if entry 4 had been removed: the chain of hashes alone would not tell.
    forged = TrailEntry(5, "2025-01-01T00:00:00.000000+00:00", tenant.name, ACTOR, "export", (), {}, head)
    _locked_put(hot, entry_key(tenant.name, 5), forged.canonical())
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 4
    assert "missing" in result.first_break.reason and "gap" in result.first_break.reason
    assert (result.verified, result.entries) == (3, 4)


def test_an_entry_with_a_wrong_prev_breaks_the_chain(hot: LockedBucket, tenant: Tenant) -> None:
    trail = Trail(hot)
    _fill(trail, tenant, 2)
    forged = TrailEntry(3, "2025-01-01T00:00:00.000000+00:00", tenant.name, ACTOR, "export", (), {}, "ab" * 32)
    _locked_put(hot, entry_key(tenant.name, 3), forged.canonical())
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 3
    assert "chain is broken" in result.first_break.reason


def test_an_entry_without_a_compliance_lock_is_reported(hot: LockedBucket, tenant: Tenant) -> None:
    appended = Trail(hot).append(tenant, ACTOR, "export", [], {})
    entry = TrailEntry(2, "2025-01-01T00:00:00.000000+00:00", tenant.name, ACTOR, "export", (), {}, appended.sha256)
    _raw_put(hot, entry_key(tenant.name, 2), entry.canonical())  # chained right, but removable
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 2
    assert "not locked in COMPLIANCE" in result.first_break.reason


def test_an_entry_not_in_canonical_form_is_reported(hot: LockedBucket, tenant: Tenant) -> None:
    appended = Trail(hot).append(tenant, ACTOR, "export", [], {})
    entry = TrailEntry(2, "2025-01-01T00:00:00.000000+00:00", tenant.name, ACTOR, "export", (), {}, appended.sha256)
    _locked_put(hot, entry_key(tenant.name, 2), json.dumps(entry.document(), sort_keys=True).encode())  # spaces
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 2
    assert "canonical" in result.first_break.reason


def test_concurrent_writers_make_one_unbroken_chain(hot: LockedBucket, s3_server, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    # Two writers (two processes' worth: each its own client and head cache), four threads each.
    def client() -> S3Client:
        return make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 8)

    writers = [Trail(LockedBucket(client(), hot.name)) for _ in range(2)]
    per_thread = 6
    start = threading.Barrier(8)

    def run(n: int) -> list[int]:
        writer = writers[n % 2]
        start.wait()
        return [
            writer.append(tenant, {**ACTOR, "name": f"writer-{n}"}, "export", [f"t{n}-{i}"], {"i": i}).entry.seq
            for i in range(per_thread)
        ]

    with ThreadPoolExecutor(8) as pool:
        seqs = [seq for got in pool.map(run, range(8)) for seq in got]
    assert sorted(seqs) == list(range(1, 8 * per_thread + 1))  # every append got its own number
    result = Trail(hot).verify(tenant.name)
    assert result.ok, result.first_break
    assert result.verified == result.entries == 8 * per_thread
    targets = {target for stored in Trail(hot).last_entries(tenant.name, 1000) for target in stored.entry.targets}
    assert targets == {f"t{n}-{i}" for n in range(8) for i in range(per_thread)}


def test_last_entries_are_the_newest_oldest_first(hot: LockedBucket, tenant: Tenant) -> None:
    trail = Trail(hot)
    ids = _fill(trail, tenant, 5)
    shown = list(Trail(hot).last_entries(tenant.name, 2))
    assert [s.entry.seq for s in shown] == [4, 5]
    assert [s.entry.targets for s in shown] == [(ids[3],), (ids[4],)]
    assert shown[1].entry.prev == shown[0].sha256


@pytest.mark.parametrize(
    ("action", "actor", "message"),
    [
        ("hold.sett", ACTOR, "unknown trail action"),
        ("export", {"kind": "token", "name": "x"}, "kind, name and role"),
    ],
)
def test_bad_entries_are_refused_before_anything_is_written(
    hot: LockedBucket, tenant: Tenant, action: str, actor: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Trail(hot).append(tenant, actor, action, [], {})
    assert Trail(hot).verify(tenant.name).entries == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "fields"),
        (b'{"v":1}', "fields"),
    ],
)
def test_parse_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrailEntry.parse(data)


def test_a_writer_chains_after_the_original_of_a_head_written_over(hot: LockedBucket, tenant: Tenant) -> None:
    original = Trail(hot).append(tenant, ACTOR, "hold.set", ["r"], {"reason": "case 1"})
    _raw_put(hot, original.key, original.entry.canonical().replace(b"case 1", b"case 9"))
    appended = Trail(hot).append(tenant, ACTOR, "hold.release", ["r"], {})  # a fresh writer reads the head
    assert appended.entry.prev == original.sha256
    result = Trail(hot).verify(tenant.name)
    assert result.first_break is not None and result.first_break.seq == 1 and "2 versions" in result.first_break.reason
