"""Nothing acknowledged is lost, whatever crashes: kill -9 of the worker, VAD or ASR, a Redis that
loses its data, Elasticsearch down for 20 s, and a poison job, each mid-run on real servers."""

from __future__ import annotations

import time
import urllib.request

import redis

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2

from .conftest import PipelineStack

IN_PROGRESS = {c.PIPELINE_STATE_VAD, c.PIPELINE_STATE_ASR, c.PIPELINE_STATE_INDEXING}


def _states(pipeline: PipelineStack, tenant: str, ids: list[str]) -> list[int]:
    return [pipeline.state_of(tenant, rec_id).state for rec_id in ids]


def _exactly_once(pipeline: PipelineStack, tenant: str, ids: list[str]) -> None:
    """One call document per recording, and as many utterance documents as the call says it has."""
    es = pipeline.es_client()
    calls, utterances = f"callscribe-calls-{tenant}", f"callscribe-utterances-{tenant}"
    es.indices.refresh(index=[calls, utterances])
    found = es.search(index=calls, query={"terms": {"recording_id": ids}}, size=len(ids) + 10)
    docs = [hit["_source"] for hit in found["hits"]["hits"]]
    assert sorted(d["recording_id"] for d in docs) == sorted(ids)
    for doc in docs:
        count = es.count(index=utterances, query={"term": {"recording_id": doc["recording_id"]}})["count"]
        assert count == doc["utterance_count"] > 0, doc["recording_id"]


def _metric(url: str, name: str) -> float:
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(name + " "))


def test_worker_killed_mid_batch_of_20(pipeline: PipelineStack, make_calls) -> None:  # type: ignore[no-untyped-def]
    ids = [pipeline.upload(p, "acme", f"kill-worker-{i}") for i, p in enumerate(make_calls("kill-worker", 20))]

    def mid_batch() -> bool:
        states = _states(pipeline, "acme", ids)
        return states.count(c.PIPELINE_STATE_DONE) >= 2 and any(s in IN_PROGRESS for s in states)

    pipeline.wait_until("the batch half-way", mid_batch)
    pipeline.kill("worker")
    client = redis.Redis.from_url(pipeline.state["redis"]["url"])
    pending = client.xpending("callscribe:jobs", "callscribe-workers")["pending"]
    assert pending >= 1, "the killed worker should have left unacknowledged entries behind"
    pipeline.start("worker")
    pipeline.wait_indexed("acme", ids, timeout=600)
    _exactly_once(pipeline, "acme", ids)
    metrics = pipeline.envs["worker"]["INGEST_WORKER_METRICS_ADDRESS"]
    assert _metric(f"http://{metrics}/metrics", "callscribe_ingest_worker_reclaimed_total") >= 1


def _kill_and_restart_mid_run(pipeline: PipelineStack, make_calls, service: str, down_s: float) -> None:  # type: ignore[no-untyped-def]
    ids = [pipeline.upload(p, "acme", f"kill-{service}-{i}") for i, p in enumerate(make_calls(f"kill-{service}", 6))]
    pipeline.wait_until(
        "a job in flight", lambda: any(s in IN_PROGRESS for s in _states(pipeline, "acme", ids)), timeout=120
    )
    pipeline.kill(service)
    time.sleep(down_s)
    pipeline.start(service)
    pipeline.wait_indexed("acme", ids, timeout=600)
    _exactly_once(pipeline, "acme", ids)


def test_vad_killed_mid_run(pipeline: PipelineStack, make_calls) -> None:  # type: ignore[no-untyped-def]
    _kill_and_restart_mid_run(pipeline, make_calls, "vad", down_s=3)


def test_asr_killed_mid_run(pipeline: PipelineStack, make_calls) -> None:  # type: ignore[no-untyped-def]
    _kill_and_restart_mid_run(pipeline, make_calls, "asr", down_s=3)


def test_redis_flushed_mid_run(pipeline: PipelineStack, make_calls) -> None:  # type: ignore[no-untyped-def]
    ids = [pipeline.upload(p, "acme", f"flush-{i}") for i, p in enumerate(make_calls("flush", 8))]
    pipeline.wait_until(
        "the first recordings indexed",
        lambda: _states(pipeline, "acme", ids).count(c.PIPELINE_STATE_DONE) >= 1,
        timeout=300,
    )
    client = redis.Redis.from_url(pipeline.state["redis"]["url"])
    client.flushall()
    assert client.dbsize() == 0
    # The queue and every progress record are gone; the reconciler finds the archive's recordings
    # that have no indexed call and queues them, and restores "done" for those that have one.
    pipeline.wait_indexed("acme", ids, timeout=600)
    _exactly_once(pipeline, "acme", ids)


def test_elasticsearch_down_for_20_seconds(pipeline: PipelineStack, make_calls) -> None:  # type: ignore[no-untyped-def]
    ids = [pipeline.upload(p, "acme", f"es-down-{i}") for i, p in enumerate(make_calls("es-down", 6))]
    pipeline.wait_until(
        "a job in flight", lambda: any(s in IN_PROGRESS for s in _states(pipeline, "acme", ids)), timeout=120
    )
    pipeline.stop_es()
    time.sleep(20)
    pipeline.start_es()
    pipeline.wait_indexed("acme", ids, timeout=600)
    _exactly_once(pipeline, "acme", ids)


def test_poison_job_goes_to_dead_letters_and_requeue_works(pipeline: PipelineStack, make_calls) -> None:  # type: ignore[no-untyped-def]
    (path,) = make_calls("poison", 1)
    rec_id = pipeline.upload(path, "globex", "poison-0")
    pipeline.wait_indexed("globex", [rec_id])
    rec = pipeline.state_of("globex", rec_id)
    client = redis.Redis.from_url(pipeline.state["redis"]["url"], decode_responses=True)
    # A job whose fingerprint does not match the archive's: never retried, never "repaired".
    forged = {
        "recording_id": rec_id,
        "tenant": "globex",
        "bucket": rec.object.bucket,
        "key": rec.object.key,
        "version_id": rec.object.version_id,
        "sha256": "0" * 64,
        "attempts": 0,
    }
    client.xadd("callscribe:jobs", forged)

    def dead_letters(tenant: str) -> list[ingest_pb2.DeadLetter]:
        reply = pipeline.ingest().ListDeadLetters(
            ingest_pb2.ListDeadLettersRequest(), metadata=pipeline.auth(tenant), timeout=10
        )
        return list(reply.dead_letters)

    pipeline.wait_until("the dead letter", lambda: len(dead_letters("globex")) == 1, timeout=120)
    (letter,) = dead_letters("globex")
    assert letter.recording_id == rec_id and letter.stage == "verify" and letter.attempts == 1
    assert "FINGERPRINT MISMATCH" in letter.reason
    assert pipeline.state_of("globex", rec_id).state == c.PIPELINE_STATE_FAILED
    assert all(d.recording_id != rec_id for d in dead_letters("acme")), "acme must not see globex's dead letters"

    requeued = pipeline.ingest().RequeueDeadLetters(
        ingest_pb2.RequeueDeadLettersRequest(recording_id=rec_id), metadata=pipeline.auth("globex"), timeout=10
    )
    assert list(requeued.recording_ids) == [rec_id]
    # It went back onto the stream with fresh attempts, was processed again, and (still forged) failed again.
    pipeline.wait_until("the dead letter again", lambda: len(dead_letters("globex")) == 1, timeout=120)
    (again,) = dead_letters("globex")
    assert again.entry_id != letter.entry_id and again.attempts == 1
    # The real job of the same recording still runs clean, and the state says so again.
    client.xadd("callscribe:jobs", {**forged, "sha256": rec.object.sha256})
    pipeline.wait_indexed("globex", [rec_id])
