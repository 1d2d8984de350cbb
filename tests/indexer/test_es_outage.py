"""Elasticsearch going away and coming back, on a noida-db of the test's own (the session's stays up);
and the indexer as the stack runs it (`python -m callscribe.indexer`)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from callscribe.indexer.es.client import make_client
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.store import EsStore
from callscribe.kit.errors import Unavailable
from callscribe.stack.procs import stop
from callscribe.stack.services import grpc_address, metrics_url, service_env, start_service
from callscribe.v1 import indexer_pb2 as pb
from callscribe.v1 import indexer_pb2_grpc

from .conftest import (
    HOURS_EN,
    REFUND_ZH,
    Noida,
    ScriptedEnricher,
    StartIndexer,
    auth,
    indexer_settings,
    make_call,
    new_id,
    pipeline_auth,
)

FAST_RETRIES = {"bulk_retries": 1, "bulk_backoff_seconds": 0.05, "request_timeout_seconds": 5}


def test_index_call_is_unavailable_while_elasticsearch_is_down(start_indexer: StartIndexer, own_noida: Noida) -> None:
    own_noida.start()
    idx = start_indexer(es_url=own_noida.url, index_prefix="outage", **FAST_RETRIES)
    before = make_call(utterances=REFUND_ZH)
    idx.index(before)

    own_noida.stop()
    during = make_call(utterances=HOURS_EN)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        idx.index(during)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the pipeline worker retries this
    assert "Elasticsearch" in err.value.details()
    assert time.monotonic() - started < 20
    for read in (lambda: idx.search(query="退费"), lambda: idx.get(before.recording_id), lambda: idx.find([new_id()])):
        with pytest.raises(grpc.RpcError) as err:
            read()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert idx.serving()  # the process stays up and keeps answering

    own_noida.start()  # same port, same data
    assert idx.index(during).utterances_indexed == len(HOURS_EN)
    assert idx.find([before.recording_id, during.recording_id]) == [before.recording_id, during.recording_id]
    assert len(idx.get(before.recording_id).utterances) == len(REFUND_ZH)
    assert [h.recording_id for h in idx.search(query="退费").hits] == [before.recording_id]


def test_starts_not_serving_and_serves_once_elasticsearch_answers(
    start_indexer: StartIndexer, own_noida: Noida
) -> None:
    idx = start_indexer(wait=False, es_url=own_noida.url, index_prefix="late", startup_retry_seconds=0.5)
    time.sleep(1.5)
    assert not idx.serving()  # NOT_SERVING, and still running
    with pytest.raises(grpc.RpcError) as err:
        idx.search()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert idx.metric("callscribe_indexer_elasticsearch_ready") == 0

    own_noida.start()
    idx.wait_serving(timeout=30)
    assert idx.metric("callscribe_indexer_elasticsearch_ready") == 1
    call = make_call(utterances=REFUND_ZH)
    assert idx.index(call).utterances_indexed == len(REFUND_ZH)
    assert idx.es.indices.exists_index_template(name="late-calls")


def test_bulk_retries_with_backoff_then_gives_up(es_server, indexer_tenants, own_noida: Noida) -> None:  # type: ignore[no-untyped-def]
    own_noida.start()
    settings = indexer_settings(
        own_noida.url, indexer_tenants, index_prefix="retry", bulk_retries=3, bulk_backoff_seconds=0.1
    )
    registry = CollectorRegistry()
    pauses: list[float] = []
    store = EsStore(make_client(settings), settings, IndexerMetrics(registry), sleep=pauses.append)
    store.connect()
    call = make_call(utterances=HOURS_EN)
    ScriptedEnricher()(call)
    from callscribe.indexer import documents

    actions = documents.bulk_actions(call, "retry-x-calls", "retry-x-utterances")
    own_noida.stop()
    with pytest.raises(Unavailable) as err:
        store.bulk_documents(actions)
    assert "gave up after 4 attempt(s)" in err.value.message
    assert len(pauses) == 3
    assert 0.05 <= pauses[0] <= 0.1 and 0.1 <= pauses[1] <= 0.2 and 0.2 <= pauses[2] <= 0.4  # doubling, jittered
    assert registry.get_sample_value("callscribe_indexer_bulk_retries_total") == 3
    assert registry.get_sample_value("callscribe_indexer_bulk_failures_total", {"reason": "unreachable"}) == 1
    store.client.close()


def test_the_service_process(es_server, indexer_tenants, stack_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    """`python -m callscribe.indexer` with the environment the local stack gives it."""
    state = {
        "home": str(stack_tmp / "indexer-process"),
        "tenants_file": str(indexer_tenants.path),
        "s3": {"endpoint": "", "access_key": "", "secret_key": "", "hot_bucket": "", "cold_bucket": ""},
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "elasticsearch": {"url": es_server.url},
    }
    env = service_env("indexer", state)
    env.update({"INDEXER_INDEX_PREFIX": "proc", "INDEXER_NUMBER_OF_REPLICAS": "0"})
    log_path = stack_tmp / "logs" / "indexer-process.log"
    process = start_service("indexer", env, log_path, timeout=120)
    channel = grpc.insecure_channel(grpc_address("indexer", env))
    try:
        stub = indexer_pb2_grpc.IndexerServiceStub(channel)
        call = make_call(utterances=REFUND_ZH)
        token = auth(indexer_tenants.tokens["acme"])
        reply = stub.IndexCall(pb.IndexCallRequest(call=call), metadata=pipeline_auth("acme"), timeout=120)
        assert reply.utterances_indexed == len(REFUND_ZH)
        got = stub.GetCall(pb.GetCallRequest(recording_id=call.recording_id), metadata=token, timeout=30)
        assert all(u.normalized_text for u in got.utterances)  # the service's own enricher ran
        found = stub.Search(pb.SearchRequest(query="退费"), metadata=token, timeout=30)
        assert [h.recording_id for h in found.hits] == [call.recording_id]
        with urllib.request.urlopen(metrics_url("indexer", env), timeout=5) as response:
            text = response.read().decode()
        assert 'callscribe_indexer_documents_indexed_total{kind="utterance"} 4.0' in text
    finally:
        channel.close()
        stop(process)
    log = log_path.read_text()
    assert "does not support ILM" in log and "serving" in log
