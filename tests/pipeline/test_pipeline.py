"""A recording pushed over gRPC becomes a searchable transcript by speaker and time."""

from __future__ import annotations

import grpc
import pytest
import redis

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2

from .conftest import PipelineStack


@pytest.fixture(scope="module")
def indexed_calls(pipeline: PipelineStack, make_calls) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    acme = [pipeline.upload(p, "acme", f"acme-{i}") for i, p in enumerate(make_calls("happy-acme", 2))]
    globex = [pipeline.upload(p, "globex", f"globex-{i}") for i, p in enumerate(make_calls("happy-globex", 1))]
    pipeline.wait_indexed("acme", acme)
    pipeline.wait_indexed("globex", globex)
    return {"acme": acme, "globex": globex}


def test_the_call_is_transcribed_by_speaker_and_time(pipeline: PipelineStack, indexed_calls) -> None:
    rec_id = indexed_calls["acme"][0]  # the refund call: agent, customer, agent
    call = pipeline.indexer().GetCall(
        indexer_pb2.GetCallRequest(recording_id=rec_id), metadata=pipeline.auth("acme"), timeout=10
    )
    roles = [u.role for u in call.utterances]
    assert roles[:3] == [c.SPEAKER_ROLE_AGENT, c.SPEAKER_ROLE_CUSTOMER, c.SPEAKER_ROLE_AGENT], call
    starts = [u.start_ms for u in call.utterances]
    assert starts == sorted(starts)
    customer = " ".join(u.text.lower() for u in call.utterances if u.role == c.SPEAKER_ROLE_CUSTOMER)
    assert "refund" in customer
    assert call.object.sha256 and call.metadata.call_id == "acme-0"
    state = pipeline.state_of("acme", rec_id)
    assert state.state == c.PIPELINE_STATE_DONE
    assert "utterances" in state.state_detail


def test_search_finds_the_call_and_never_crosses_tenants(pipeline: PipelineStack, indexed_calls) -> None:
    found = pipeline.indexer().Search(
        indexer_pb2.SearchRequest(query="refund"), metadata=pipeline.auth("acme"), timeout=10
    )
    ids = {hit.recording_id for hit in found.hits}
    assert indexed_calls["acme"][0] in ids
    assert not ids & set(indexed_calls["globex"])
    assert any("<em>" in u.highlight for hit in found.hits for u in hit.utterances)
    # globex has a refund call too (the same words), and sees only its own (the fault tests may have
    # indexed more of globex's, never any of acme's).
    theirs = pipeline.indexer().Search(
        indexer_pb2.SearchRequest(query="refund", page_size=100), metadata=pipeline.auth("globex"), timeout=10
    )
    theirs_ids = {hit.recording_id for hit in theirs.hits}
    assert set(indexed_calls["globex"]) <= theirs_ids
    assert not theirs_ids & set(indexed_calls["acme"])
    assert pipeline.indexed("acme", sorted(theirs_ids)) == set(), "globex's hits must not be acme's calls"
    with pytest.raises(grpc.RpcError) as err:
        pipeline.indexer().Search(
            indexer_pb2.SearchRequest(tenant="acme", query="refund"), metadata=pipeline.auth("globex"), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_running_a_job_again_creates_no_duplicate(pipeline: PipelineStack, indexed_calls) -> None:
    rec_id = indexed_calls["acme"][1]
    es = pipeline.es_client()
    utterances = "callscribe-utterances-acme"
    query = {"term": {"recording_id": rec_id}}
    es.indices.refresh(index=utterances)
    before = es.count(index=utterances, query=query)["count"]
    assert before > 0
    rec = pipeline.state_of("acme", rec_id)
    client = redis.Redis.from_url(pipeline.state["redis"]["url"], decode_responses=True)
    client.xadd(
        "callscribe:jobs",
        {
            "recording_id": rec_id,
            "tenant": "acme",
            "bucket": rec.object.bucket,
            "key": rec.object.key,
            "version_id": rec.object.version_id,
            "sha256": rec.object.sha256,
            "attempts": 0,
        },
    )
    client.hset(f"callscribe:state:{rec_id}", mapping={"state": "queued", "detail": "test rerun"})
    pipeline.wait_indexed("acme", [rec_id])
    es.indices.refresh(index=utterances)
    assert es.count(index=utterances, query=query)["count"] == before
    assert es.count(index="callscribe-calls-acme", query={"term": {"recording_id": rec_id}})["count"] == 1


def test_cli_search_show_export_against_the_real_services(pipeline: PipelineStack, indexed_calls, capsys, tmp_path):  # type: ignore[no-untyped-def]
    import csv
    import json

    from callscribe.cli.main import main

    indexer = ["--address", pipeline.state["grpc"]["indexer"], "--token", pipeline.state["tenants"]["acme"]]
    assert main(["search", "refund", *indexer, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert indexed_calls["acme"][0] in json.dumps(found)
    assert main(["show", indexed_calls["acme"][0], *indexer]) == 0
    shown = capsys.readouterr().out
    assert "CUSTOMER" in shown and "AGENT" in shown and "refund" in shown.lower()
    out = tmp_path / "calls.csv"
    assert main(["export", "--format", "csv", "--output", str(out), *indexer]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert set(indexed_calls["acme"]) <= {row["recording_id"] for row in rows}
    assert all(row["tenant"] == "acme" for row in rows)
    ingest = ["--address", pipeline.state["grpc"]["ingest"], "--token", pipeline.state["tenants"]["acme"]]
    assert main(["dead-letters", *ingest, "--json"]) == 0
    capsys.readouterr()
    # A wrong token is refused with the server's message and a non-zero exit.
    assert main(["search", "refund", "--address", pipeline.state["grpc"]["indexer"], "--token", "nope"]) == 1
    assert "the token was refused: check --token" in capsys.readouterr().err  # CLI terms (issue 15)
