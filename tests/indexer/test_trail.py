"""Exports are recorded in the tenant's access trail before their first call is sent: an entry per export (who,
which filter), no export without a trail, and none when its entry cannot be written."""

from __future__ import annotations

import grpc
import pytest

from callscribe.stack.procs import free_port
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.trail import Trail

from .conftest import HOURS_EN, Indexer, StartIndexer, make_call, new_agent


@pytest.fixture(scope="module")
def trail(s3_server) -> Trail:  # type: ignore[no-untyped-def]
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 4)
    return Trail(LockedBucket(client, s3_server.hot_bucket))


def test_an_export_appends_an_entry_with_who_and_the_filter(indexer: Indexer, trail: Trail) -> None:
    agent = new_agent()
    call = make_call(agent_id=agent, utterances=HOURS_EN, tenant="globex")
    indexer.index(call)
    before = trail.verify("globex").entries
    exported = indexer.export("globex", agent_id=agent, query="hours")
    assert [x.recording_id for x in exported] == [call.recording_id]
    result = trail.verify("globex")
    assert result.ok, result.first_break
    assert result.entries == before + 1
    [last] = trail.last_entries("globex", 1)
    assert last.entry.action == "export" and last.entry.tenant == "globex"
    assert last.entry.actor["role"] == "admin" and last.entry.actor["kind"] == "token"
    assert last.entry.details["filter"] == {"agent_id": agent, "query": "hours"}


def test_without_a_trail_exports_are_refused(start_indexer: StartIndexer) -> None:
    no_trail = start_indexer(s3_endpoint=None)
    with pytest.raises(grpc.RpcError) as err:
        no_trail.export(agent_id=new_agent())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "access trail" in (err.value.details() or "") and "INDEXER_S3_ENDPOINT" in (err.value.details() or "")


def test_an_export_whose_entry_cannot_be_written_does_not_start(start_indexer: StartIndexer, indexer: Indexer) -> None:
    agent = new_agent()
    indexer.index(make_call(agent_id=agent, utterances=HOURS_EN))
    unreachable = start_indexer(s3_endpoint=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(grpc.RpcError) as err:
        unreachable.export(agent_id=agent)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "export was not started" in (err.value.details() or "")
    assert [x.recording_id for x in indexer.export(agent_id=agent)] != []  # the call is there to be exported
