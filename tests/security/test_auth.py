"""Holes 1 and 4 of the adversarial probe (issue 16): a tenant token writing the index, and ambiguous or
loosely parsed credentials. Each test fails on the code before the fix."""

from __future__ import annotations

import secrets

import grpc
import pytest

from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as ipb
from callscribe.v1 import ingest_pb2

from .conftest import PIPELINE_TOKEN, Guarded


def _call(tenant: str, recording_id: str, text: str = "forged words") -> ipb.Call:
    return ipb.Call(
        recording_id=recording_id,
        tenant=tenant,
        metadata=c.RecordingMetadata(tenant=tenant, call_id="forged", agent_id="agent-x"),
        utterances=[ipb.Utterance(channel=0, role=c.SPEAKER_ROLE_AGENT, start_ms=0, end_ms=1000, text=text)],
    )


def _code(fn) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code()


@pytest.mark.parametrize("whose", ["the other tenant's id", "its own id", "a made-up id"])
def test_a_tenant_token_cannot_write_the_index(guarded: Guarded, whose: str) -> None:
    own = guarded.upload("acme").recording_id
    theirs = guarded.upload("globex").recording_id
    target = {"the other tenant's id": theirs, "its own id": own, "a made-up id": secrets.token_hex(16)}[whose]
    request = ipb.IndexCallRequest(call=_call("acme", target))
    with pytest.raises(grpc.RpcError) as err:
        guarded.indexer.IndexCall(request, metadata=guarded.auth("acme"), timeout=30)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "service account" in (err.value.details() or "")
    # Nothing was written: the forged document is not there for anyone.
    for tenant in ("acme", "globex"):
        found = guarded.indexer.FindIndexed(
            ipb.FindIndexedRequest(recording_ids=[target]), metadata=guarded.auth(tenant), timeout=30
        )
        assert list(found.recording_ids) == []


def test_the_pipeline_service_account_still_indexes_for_the_tenant_it_names(guarded: Guarded) -> None:
    rec_id = guarded.upload("acme").recording_id
    reply = guarded.indexer.IndexCall(
        ipb.IndexCallRequest(call=_call("acme", rec_id, "real words")),
        metadata=guarded.pipeline_auth("acme"),
        timeout=60,
    )
    assert reply.utterances_indexed == 1
    found = guarded.indexer.FindIndexed(
        ipb.FindIndexedRequest(recording_ids=[rec_id]), metadata=guarded.auth("acme"), timeout=30
    )
    assert list(found.recording_ids) == [rec_id]


def test_two_authorization_headers_are_refused_on_every_service(guarded: Guarded) -> None:
    both = (
        ("authorization", f"Bearer {guarded.tokens['acme']}"),
        ("authorization", f"Bearer {guarded.tokens['globex']}"),
    )
    assert (
        _code(lambda: guarded.ingest.ListRecordings(ingest_pb2.ListRecordingsRequest(), metadata=both, timeout=10))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        _code(lambda: guarded.indexer.Search(ipb.SearchRequest(query=""), metadata=both, timeout=10))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    # Nothing was stored under either tenant by an upload carrying both.
    before = guarded.ingest.ListRecordings(ingest_pb2.ListRecordingsRequest(), metadata=guarded.auth("globex"))
    assert _code(lambda: guarded.upload("acme", metadata=both)) == grpc.StatusCode.UNAUTHENTICATED
    after = guarded.ingest.ListRecordings(ingest_pb2.ListRecordingsRequest(), metadata=guarded.auth("globex"))
    assert len(after.recordings) == len(before.recordings)


@pytest.mark.parametrize(
    "value",
    ["Bearer  {t}", "Bearer {t} ", " Bearer {t}", "bearer {t}", "Bearer {t} extra", "Basic {t}"],
)
def test_a_loosely_formed_bearer_header_is_refused(guarded: Guarded, value: str) -> None:
    metadata = (("authorization", value.format(t=guarded.tokens["acme"])),)
    code = _code(
        lambda: guarded.ingest.ListRecordings(ingest_pb2.ListRecordingsRequest(), metadata=metadata, timeout=10)
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_a_service_account_acts_for_one_tenant_per_call(guarded: Guarded) -> None:
    two = (
        ("authorization", f"Bearer {PIPELINE_TOKEN}"),
        (ACTING_TENANT_HEADER, "acme"),
        (ACTING_TENANT_HEADER, "globex"),
    )
    code = _code(lambda: guarded.indexer.Search(ipb.SearchRequest(query=""), metadata=two, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
