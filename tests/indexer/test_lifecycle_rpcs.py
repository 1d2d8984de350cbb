"""The storage lifecycle's side of IndexerService over gRPC on the real noida-db: UpdateStorage (a move to the cold
tier, the integrity audit's finding), the search filters on them, and DeleteCall (retention expiry)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

from .conftest import (
    REFUND_EN,
    REFUND_ZH,
    RPC_TIMEOUT_S,
    Indexer,
    StartIndexer,
    make_call,
    new_agent,
    new_id,
    pipeline_auth,
)

COLD = c.ObjectRef(bucket="callscribe-cold", key="recordings/acme/cold/audio", version_id="v9", sha256="ab" * 32)
Metadata = tuple[tuple[str, str], ...]


def ts(value: str) -> Timestamp:
    out = Timestamp()
    out.FromJsonString(value)
    return out


def update(indexer: Indexer, metadata: Metadata | None = None, **fields: Any) -> pb.UpdateStorageResponse:
    """UpdateStorage as the pipeline's service account acting for acme (or with `metadata`)."""
    return indexer.stub.UpdateStorage(
        pb.UpdateStorageRequest(**fields), metadata=metadata or pipeline_auth("acme"), timeout=RPC_TIMEOUT_S
    )


def delete(indexer: Indexer, recording_id: str, metadata: Metadata | None = None) -> pb.DeleteCallResponse:
    request = pb.DeleteCallRequest(recording_id=recording_id)
    return indexer.stub.DeleteCall(request, metadata=metadata or pipeline_auth("acme"), timeout=RPC_TIMEOUT_S)


def move(indexer: Indexer, recording_id: str, moved_at: str = "2024-06-01T02:00:00Z", **obj: str) -> None:
    target = c.ObjectRef()
    target.CopyFrom(COLD)
    for name, value in obj.items():
        setattr(target, name, value)
    update(indexer, recording_id=recording_id, object=target, tier=c.STORAGE_TIER_COLD, moved_at=ts(moved_at))


def audit(indexer: Indexer, recording_id: str, integrity: int, verified_at: str) -> None:
    update(indexer, recording_id=recording_id, integrity=integrity, verified_at=ts(verified_at))


def ids_of(response: pb.SearchResponse) -> list[str]:
    return [h.recording_id for h in response.hits]


def utterance_count(indexer: Indexer, recording_id: str, tenant: str = "acme") -> int:
    found = indexer.es.count(
        index=f"{indexer.settings.index_prefix}-utterances-{tenant}", query={"term": {"recording_id": recording_id}}
    )
    return int(found["count"])


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


# --------------------------------------------------------------------------- UpdateStorage


def test_a_move_to_cold_is_read_back_and_searchable(indexer: Indexer) -> None:
    agent = new_agent()
    moving = make_call(agent_id=agent, utterances=REFUND_ZH)
    staying = make_call(agent_id=agent, utterances=REFUND_EN, started_at="2024-05-02T10:00:00Z")
    indexer.index(moving)
    indexer.index(staying)
    before = indexer.get(moving.recording_id)
    moved_metric = indexer.metric("callscribe_indexer_storage_updates_total", change="moved")

    move(indexer, moving.recording_id, moved_at="2024-06-01T02:00:00.250Z")

    got = indexer.get(moving.recording_id)
    assert got.tier == c.STORAGE_TIER_COLD
    assert got.moved_at.ToJsonString() == "2024-06-01T02:00:00.250Z"
    assert (got.object.bucket, got.object.key, got.object.version_id) == (COLD.bucket, COLD.key, "v9")
    assert got.object.sha256 == "ab" * 32
    assert not got.HasField("verified_at") and got.integrity == c.INTEGRITY_UNSPECIFIED
    # Nothing else changed: the rest of the call, its utterances and analytics are as indexed.
    expected = pb.Call()
    expected.CopyFrom(before)
    expected.object.CopyFrom(got.object)
    expected.tier = c.STORAGE_TIER_COLD
    expected.moved_at.CopyFrom(got.moved_at)
    assert got == expected
    assert indexer.get(staying.recording_id).tier == c.STORAGE_TIER_HOT
    assert indexer.metric("callscribe_indexer_storage_updates_total", change="moved") == moved_metric + 1

    # One call document, still where it was indexed (a partial update, not a second copy).
    calls = indexer.es.search(
        index=f"{indexer.settings.index_prefix}-calls-acme", query={"ids": {"values": [moving.recording_id]}}
    )["hits"]["hits"]
    assert len(calls) == 1

    assert ids_of(indexer.search(agent_id=agent, tier=c.STORAGE_TIER_COLD)) == [moving.recording_id]
    assert ids_of(indexer.search(agent_id=agent, tier=c.STORAGE_TIER_HOT)) == [staying.recording_id]
    assert ids_of(indexer.search(agent_id=agent, query="退费", tier=c.STORAGE_TIER_COLD)) == [moving.recording_id]
    assert ids_of(indexer.search(agent_id=agent, query="退费", tier=c.STORAGE_TIER_HOT)) == []
    (exported,) = indexer.export(agent_id=agent, tier=c.STORAGE_TIER_COLD)
    assert exported.moved_at == got.moved_at and exported.object == got.object

    # A later move to an unversioned location leaves no version id of the old one behind.
    move(indexer, moving.recording_id, moved_at="2024-07-01T00:00:00Z", bucket="archive", key="a/b", version_id="")
    again = indexer.get(moving.recording_id)
    assert (again.object.bucket, again.object.key, again.object.version_id) == ("archive", "a/b", "")
    assert again.moved_at.ToJsonString() == "2024-07-01T00:00:00Z"


def test_the_audits_finding_is_read_back_and_searchable(indexer: Indexer) -> None:
    agent = new_agent()
    ok, bad, never = (make_call(agent_id=agent, started_at=f"2024-05-0{n}T10:00:00Z") for n in (3, 2, 1))
    for call in (ok, bad, never):
        indexer.index(call)
    audited_metric = indexer.metric("callscribe_indexer_storage_updates_total", change="audited")
    audit(indexer, ok.recording_id, c.INTEGRITY_OK, "2024-06-10T00:00:00Z")
    audit(indexer, bad.recording_id, c.INTEGRITY_MISMATCH, "2024-06-01T00:00:00Z")
    assert indexer.metric("callscribe_indexer_storage_updates_total", change="audited") == audited_metric + 2

    got = indexer.get(ok.recording_id)
    assert got.integrity == c.INTEGRITY_OK and got.verified_at.ToJsonString() == "2024-06-10T00:00:00Z"
    assert got.tier == c.STORAGE_TIER_HOT and got.object == ok.object and not got.HasField("moved_at")
    assert indexer.get(bad.recording_id).integrity == c.INTEGRITY_MISMATCH
    assert indexer.get(never.recording_id).integrity == c.INTEGRITY_UNSPECIFIED
    assert not indexer.get(never.recording_id).HasField("verified_at")

    assert ids_of(indexer.search(agent_id=agent, integrity=c.INTEGRITY_OK)) == [ok.recording_id]
    assert ids_of(indexer.search(agent_id=agent, integrity=c.INTEGRITY_MISMATCH)) == [bad.recording_id]
    assert ids_of(indexer.search(agent_id=agent, integrity=c.INTEGRITY_MISSING)) == []
    # Not re-hashed since: verified before the time (exclusive) or never audited.
    assert ids_of(indexer.search(agent_id=agent, not_verified_since=ts("2024-06-05T00:00:00Z"))) == [
        bad.recording_id,
        never.recording_id,
    ]
    assert ids_of(indexer.search(agent_id=agent, not_verified_since=ts("2024-06-01T00:00:00Z"))) == [never.recording_id]
    assert ids_of(indexer.search(agent_id=agent, not_verified_since=ts("2024-07-01T00:00:00Z"))) == [
        ok.recording_id,
        bad.recording_id,
        never.recording_id,
    ]
    exported = indexer.export(agent_id=agent, integrity=c.INTEGRITY_MISMATCH)
    assert [(e.recording_id, e.verified_at.ToJsonString()) for e in exported] == [
        (bad.recording_id, "2024-06-01T00:00:00Z")
    ]

    # A page token continues only the search that made it: the new filters are part of its fingerprint.
    since = ts("2024-06-05T00:00:00Z")
    first = indexer.search(agent_id=agent, not_verified_since=since, page_size=1)
    assert ids_of(first) == [bad.recording_id] and first.next_page_token
    second = indexer.search(agent_id=agent, not_verified_since=since, page_size=1, page_token=first.next_page_token)
    assert ids_of(second) == [never.recording_id]
    token = first.next_page_token
    for other in (
        {"not_verified_since": ts("2024-06-06T00:00:00Z")},
        {"not_verified_since": since, "integrity": c.INTEGRITY_MISMATCH},
        {"not_verified_since": since, "tier": c.STORAGE_TIER_HOT},
    ):
        err = refused(lambda o=other: indexer.search(agent_id=agent, page_size=1, page_token=token, **o))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a token of this search" in (err.details() or "")

    # A move and an audit in one request.
    update(
        indexer,
        recording_id=never.recording_id,
        object=COLD,
        tier=c.STORAGE_TIER_COLD,
        moved_at=ts("2024-06-20T00:00:00Z"),
        integrity=c.INTEGRITY_MISSING,
        verified_at=ts("2024-06-21T00:00:00Z"),
    )
    both = indexer.get(never.recording_id)
    assert (both.tier, both.integrity) == (c.STORAGE_TIER_COLD, c.INTEGRITY_MISSING)
    assert both.object.bucket == COLD.bucket and both.moved_at.ToJsonString() == "2024-06-20T00:00:00Z"
    assert both.verified_at.ToJsonString() == "2024-06-21T00:00:00Z"
    assert ids_of(indexer.search(agent_id=agent, integrity=c.INTEGRITY_MISSING, tier=c.STORAGE_TIER_COLD)) == [
        never.recording_id
    ]


def test_index_call_writes_and_reads_back_the_lifecycle_fields(indexer: Indexer) -> None:
    """A call the pipeline indexes with its lifecycle already known (a re-run after a move and an audit)."""
    call = make_call(agent_id=new_agent(), utterances=REFUND_EN)
    call.object.CopyFrom(COLD)
    call.tier = c.STORAGE_TIER_COLD
    call.moved_at.CopyFrom(ts("2024-06-01T00:00:00.125Z"))
    call.integrity = c.INTEGRITY_OK
    call.verified_at.CopyFrom(ts("2024-06-02T00:00:00Z"))
    indexer.index(call)
    doc = indexer.es.get(index=f"{indexer.settings.index_prefix}-calls-acme", id=call.recording_id)["_source"]
    assert doc["moved_at"] == "2024-06-01T00:00:00.125Z"
    assert doc["integrity"] == "INTEGRITY_OK"
    assert doc["verified_at"] == "2024-06-02T00:00:00.000Z"
    got = indexer.get(call.recording_id)
    assert (got.tier, got.integrity) == (c.STORAGE_TIER_COLD, c.INTEGRITY_OK)
    assert got.moved_at == call.moved_at and got.verified_at == call.verified_at and got.object == call.object
    # Never audited: no integrity field at all (not INTEGRITY_UNSPECIFIED), so it is not "verified".
    plain = make_call(agent_id=new_agent())
    indexer.index(plain)
    doc = indexer.es.get(index=f"{indexer.settings.index_prefix}-calls-acme", id=plain.recording_id)["_source"]
    assert "integrity" not in doc and "verified_at" not in doc and "moved_at" not in doc


def test_a_move_never_changes_the_fingerprint(indexer: Indexer) -> None:
    call = make_call(agent_id=new_agent())
    indexer.index(call)
    other = c.ObjectRef()
    other.CopyFrom(COLD)
    other.sha256 = "cd" * 32
    err = refused(
        lambda: update(
            indexer,
            recording_id=call.recording_id,
            object=other,
            tier=c.STORAGE_TIER_COLD,
            moved_at=ts("2024-06-01T00:00:00Z"),
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.details() or ""
    assert "ab" * 32 in details and "cd" * 32 in details and "never changes the fingerprint" in details
    got = indexer.get(call.recording_id)
    assert got.tier == c.STORAGE_TIER_HOT and got.object == call.object and not got.HasField("moved_at")


def test_lifecycle_rpcs_are_for_the_service_account_only(indexer: Indexer) -> None:
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH)
    indexer.index(call)
    tenant_token = indexer.auth("acme")
    attempts = [
        lambda: update(
            indexer,
            tenant_token,
            recording_id=call.recording_id,
            integrity=c.INTEGRITY_MISMATCH,
            verified_at=ts("2024-06-01T00:00:00Z"),
        ),
        lambda: delete(indexer, call.recording_id, tenant_token),
    ]
    for attempt in attempts:
        err = refused(attempt)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "service account" in (err.details() or "")
    got = indexer.get(call.recording_id)
    assert got.integrity == c.INTEGRITY_UNSPECIFIED and len(got.utterances) == len(REFUND_ZH)

    # The service account acting for acme may not name another tenant in the request.
    naming_globex = [
        lambda: update(
            indexer,
            tenant="globex",
            recording_id=call.recording_id,
            integrity=c.INTEGRITY_OK,
            verified_at=ts("2024-06-01T00:00:00Z"),
        ),
        lambda: indexer.stub.DeleteCall(
            pb.DeleteCallRequest(tenant="globex", recording_id=call.recording_id),
            metadata=pipeline_auth("acme"),
            timeout=RPC_TIMEOUT_S,
        ),
    ]
    for attempt in naming_globex:
        err = refused(attempt)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'acme', not 'globex'" in (err.details() or "")
    assert indexer.find([call.recording_id]) == [call.recording_id]


def test_update_storage_of_a_call_not_indexed_is_not_found(indexer: Indexer) -> None:
    rid = new_id()
    err = refused(lambda: move(indexer, rid))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert f"no indexed call {rid} for tenant acme" in (err.details() or "")
    # Another tenant's call is not there for acme either, and stays as it was.
    theirs = make_call(tenant="globex", agent_id=new_agent())
    indexer.index(theirs, tenant="globex")
    err = refused(lambda: audit(indexer, theirs.recording_id, c.INTEGRITY_MISMATCH, "2024-06-01T00:00:00Z"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert indexer.get(theirs.recording_id, tenant="globex").integrity == c.INTEGRITY_UNSPECIFIED


MOVED_AT = ts("2024-06-01T00:00:00Z")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "nothing to update"),
        ({"integrity": c.INTEGRITY_OK}, "verified_at is required with integrity"),
        ({"verified_at": MOVED_AT}, "verified_at comes with integrity"),
        ({"integrity": 9, "verified_at": MOVED_AT}, "integrity 9 is not a known value"),
        ({"object": COLD, "moved_at": MOVED_AT}, "tier is required with object"),
        ({"object": COLD, "tier": c.STORAGE_TIER_COLD}, "moved_at is required with object"),
        ({"object": COLD, "tier": 5, "moved_at": MOVED_AT}, "tier 5 is not a known value"),
        ({"tier": c.STORAGE_TIER_COLD, "moved_at": MOVED_AT}, "tier and moved_at come with object"),
        (
            {"object": c.ObjectRef(bucket="b", key="k"), "tier": c.STORAGE_TIER_COLD, "moved_at": MOVED_AT},
            "object.sha256 must be the recording's SHA-256",
        ),
        (
            {"object": c.ObjectRef(key="k", sha256="ab" * 32), "tier": c.STORAGE_TIER_COLD, "moved_at": MOVED_AT},
            "object.bucket and object.key are required",
        ),
        (
            {"integrity": c.INTEGRITY_OK, "verified_at": Timestamp(seconds=300_000_000_000)},
            "verified_at is not a valid time",
        ),
    ],
)
def test_update_storage_invalid_arguments(indexer: Indexer, fields: dict[str, Any], message: str) -> None:
    call = make_call(agent_id=new_agent())
    indexer.index(call)
    err = refused(lambda: update(indexer, recording_id=call.recording_id, **fields))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.details() or "")
    got = indexer.get(call.recording_id)
    assert got.tier == c.STORAGE_TIER_HOT and got.integrity == c.INTEGRITY_UNSPECIFIED


@pytest.mark.parametrize("bad_id", ["deadbeef", "", "A" * 32])
def test_lifecycle_rpcs_refuse_a_malformed_recording_id(indexer: Indexer, bad_id: str) -> None:
    for attempt in (
        lambda: audit(indexer, bad_id, c.INTEGRITY_OK, "2024-06-01T00:00:00Z"),
        lambda: delete(indexer, bad_id),
    ):
        err = refused(attempt)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a recording id (32 lowercase hex characters)" in (err.details() or "")


def test_search_refuses_unknown_lifecycle_values(indexer: Indexer) -> None:
    for fields, message in (
        ({"tier": 7}, "tier 7 is not a known value"),
        ({"integrity": 9}, "integrity 9 is not a known value"),
        ({"not_verified_since": Timestamp(seconds=-70_000_000_000)}, "not_verified_since is not a valid time"),
    ):
        err = refused(lambda f=fields: indexer.search(**f))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.details() or "")


# --------------------------------------------------------------------------- DeleteCall


def test_delete_call_removes_the_call_and_its_utterances(indexer: Indexer) -> None:
    agent = new_agent()
    gone = make_call(agent_id=agent, utterances=REFUND_ZH)
    kept = make_call(agent_id=agent, utterances=REFUND_ZH, started_at="2024-05-02T10:00:00Z")
    indexer.index(gone)
    indexer.index(kept)
    assert utterance_count(indexer, gone.recording_id) == len(REFUND_ZH)
    deleted_metric = indexer.metric("callscribe_indexer_calls_deleted_total")

    reply = delete(indexer, gone.recording_id)
    assert reply.deleted is True
    assert reply.documents == 1 + len(REFUND_ZH)
    assert indexer.metric("callscribe_indexer_calls_deleted_total") == deleted_metric + 1

    err = refused(lambda: indexer.get(gone.recording_id))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert indexer.find([gone.recording_id, kept.recording_id]) == [kept.recording_id]
    assert utterance_count(indexer, gone.recording_id) == 0
    assert ids_of(indexer.search(agent_id=agent)) == [kept.recording_id]
    assert ids_of(indexer.search(agent_id=agent, query="退费")) == [kept.recording_id]
    assert [e.recording_id for e in indexer.export(agent_id=agent)] == [kept.recording_id]
    # The other call is whole.
    assert len(indexer.get(kept.recording_id).utterances) == len(REFUND_ZH)
    assert utterance_count(indexer, kept.recording_id) == len(REFUND_ZH)

    again = delete(indexer, gone.recording_id)
    assert (again.deleted, again.documents) == (False, 0)
    assert indexer.metric("callscribe_indexer_calls_deleted_total") == deleted_metric + 1
    never = delete(indexer, new_id())
    assert (never.deleted, never.documents) == (False, 0)
    # Deleted means deleted: UpdateStorage no longer finds it, and indexing it again starts afresh.
    err = refused(lambda: audit(indexer, gone.recording_id, c.INTEGRITY_OK, "2024-06-01T00:00:00Z"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert indexer.index(gone).utterances_indexed == len(REFUND_ZH)
    assert len(indexer.get(gone.recording_id).utterances) == len(REFUND_ZH)


def test_a_tenant_cannot_delete_another_tenants_call(indexer: Indexer) -> None:
    theirs = make_call(tenant="globex", agent_id=new_agent(), utterances=REFUND_EN)
    indexer.index(theirs, tenant="globex")
    # The pipeline acting for acme names globex's recording: acme has no such call.
    reply = delete(indexer, theirs.recording_id, pipeline_auth("acme"))
    assert (reply.deleted, reply.documents) == (False, 0)
    got = indexer.get(theirs.recording_id, tenant="globex")
    assert len(got.utterances) == len(REFUND_EN)
    assert utterance_count(indexer, theirs.recording_id, tenant="globex") == len(REFUND_EN)
    # Acting for globex, it goes.
    reply = delete(indexer, theirs.recording_id, pipeline_auth("globex"))
    assert (reply.deleted, reply.documents) == (True, 1 + len(REFUND_EN))
    assert indexer.find([theirs.recording_id], tenant="globex") == []


def test_lifecycle_rpcs_reach_every_backing_index(start_indexer: StartIndexer) -> None:
    """After a rollover a call's documents can live in two backing indices: UpdateStorage writes the call
    document where it is (not through the alias, whose write index is another), DeleteCall deletes in both."""
    prefix = "liferoll"
    own = start_indexer(index_prefix=prefix)
    es = own.es
    try:
        call = make_call(agent_id=new_agent(), utterances=REFUND_ZH[:2])
        # A tenant with no indices yet: nothing to delete, and nothing to update.
        empty = delete(own, call.recording_id)
        assert (empty.deleted, empty.documents) == (False, 0)
        assert refused(lambda: move(own, call.recording_id)).code() == grpc.StatusCode.NOT_FOUND
        own.index(call)  # into ...-000001
        for kind in ("calls", "utterances"):
            alias = f"{prefix}-{kind}-acme"
            es.indices.create(index=f"{alias}-000002")  # the template gives it the mapping
            es.indices.update_aliases(
                actions=[
                    {"add": {"index": f"{alias}-000001", "alias": alias, "is_write_index": False}},
                    {"add": {"index": f"{alias}-000002", "alias": alias, "is_write_index": True}},
                ]
            )
        call.utterances.extend(make_call(utterances=REFUND_ZH[2:]).utterances)
        own.index(call)  # re-indexed: the new utterances go to ...-000002, the rest stay in ...-000001
        where = es.search(index=f"{prefix}-utterances-acme", query={"term": {"recording_id": call.recording_id}})
        assert sorted(h["_index"][-6:] for h in where["hits"]["hits"]) == ["000001", "000001", "000002", "000002"]

        move(own, call.recording_id)
        doc = es.get(index=f"{prefix}-calls-acme-000001", id=call.recording_id)["_source"]
        assert doc["tier"] == "STORAGE_TIER_COLD" and doc["object"]["bucket"] == COLD.bucket
        assert es.count(index=f"{prefix}-calls-acme-000002")["count"] == 0
        assert own.get(call.recording_id).tier == c.STORAGE_TIER_COLD

        reply = delete(own, call.recording_id)
        assert (reply.deleted, reply.documents) == (True, 1 + len(REFUND_ZH))
        for kind in ("calls", "utterances"):
            assert es.count(index=f"{prefix}-{kind}-acme")["count"] == 0
    finally:
        es.indices.delete(
            index=",".join(f"{prefix}-{kind}-acme-00000{n}" for kind in ("calls", "utterances") for n in (1, 2)),
            ignore_unavailable=True,
        )
