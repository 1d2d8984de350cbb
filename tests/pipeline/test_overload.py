"""Overload and stops are not failures of a recording (issue 15): with INGEST_WORKER_MAX_ATTEMPTS=1 any
counted failure would be a dead letter at once, so none may be counted while a service is down or
stopping, and the work already done is kept (VAD runs once per recording)."""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.request
from collections.abc import Iterator

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2

from .conftest import PipelineStack


def _sum(body: str, prefix: str, *contains: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in body.splitlines()
        if line.startswith(prefix) and all(part in line for part in contains)
    )


def _worker_metric(pipeline: PipelineStack, name: str) -> float:
    address = pipeline.envs["worker"]["INGEST_WORKER_METRICS_ADDRESS"]
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    return _sum(body, name)


def _vad_detect_calls(pipeline: PipelineStack) -> float:
    address = pipeline.envs["vad"]["VAD_METRICS_ADDRESS"]
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    return _sum(body, "callscribe_vad_grpc_requests_total{", "DetectSpeech", 'code="OK"')


def _dead_letter_ids(pipeline: PipelineStack, tenant: str) -> set[str]:
    reply = pipeline.ingest().ListDeadLetters(
        ingest_pb2.ListDeadLettersRequest(page_size=1000), metadata=pipeline.auth(tenant), timeout=10
    )
    return {d.recording_id for d in reply.dead_letters}


@contextlib.contextmanager
def _worker_with(pipeline: PipelineStack, **env: str) -> Iterator[None]:
    """The worker restarted with `env` for the test, and as it was afterwards."""
    saved = dict(pipeline.envs["worker"])
    pipeline.kill("worker")
    pipeline.start("worker", **env)
    try:
        yield
    finally:
        if "worker" in pipeline.procs:
            pipeline.kill("worker")
        pipeline.envs["worker"] = saved
        pipeline.start("worker")


def _sigterm(pipeline: PipelineStack, name: str) -> None:
    proc = pipeline.procs.pop(name)
    os.killpg(proc.pid, signal.SIGTERM)
    pipeline.wait_until(f"{name} to stop on SIGTERM", lambda: not proc.is_alive(), timeout=60)


def test_asr_stopped_while_jobs_wait_for_it_uses_no_attempt_and_vad_runs_once(  # type: ignore[no-untyped-def]
    pipeline: PipelineStack, make_calls
) -> None:
    with _worker_with(pipeline, INGEST_WORKER_MAX_ATTEMPTS="1", INGEST_WORKER_PRESSURE_BACKOFF_MAX_SECONDS="2"):
        _sigterm(pipeline, "asr")  # a graceful stop, as `callscribe stack down` or a rollout does
        vad_before = _vad_detect_calls(pipeline)
        ids = [pipeline.upload(p, "acme", f"asr-stopped-{i}") for i, p in enumerate(make_calls("asr-stopped", 4))]
        pipeline.wait_until(
            "the worker to be pushed back by the stopped ASR",
            lambda: _worker_metric(pipeline, "callscribe_ingest_worker_backpressure_total") >= 4,
            timeout=180,
        )
        waiting = pipeline.state_of("acme", ids[0])
        assert waiting.state in (c.PIPELINE_STATE_QUEUED, c.PIPELINE_STATE_ASR), waiting
        pipeline.start("asr")
        pipeline.wait_indexed("acme", ids, timeout=600)
        assert not _dead_letter_ids(pipeline, "acme") & set(ids)
        # Every recording went through VAD once: retries after the pushback started from ASR.
        assert _vad_detect_calls(pipeline) - vad_before == len(ids)


def test_a_stopping_worker_gives_its_jobs_back_without_using_an_attempt(  # type: ignore[no-untyped-def]
    pipeline: PipelineStack, make_calls
) -> None:
    with _worker_with(pipeline, INGEST_WORKER_MAX_ATTEMPTS="1", INGEST_WORKER_GRACE_SECONDS="0"):
        asr = pipeline.procs["asr"]
        os.killpg(asr.pid, signal.SIGSTOP)  # calls to ASR hang: the jobs are surely in flight
        try:
            ids = [pipeline.upload(p, "acme", f"worker-stop-{i}") for i, p in enumerate(make_calls("worker-stop", 3))]
            pipeline.wait_until(
                "jobs waiting on ASR",
                lambda: all(pipeline.state_of("acme", i).state == c.PIPELINE_STATE_ASR for i in ids),
                timeout=180,
            )
            _sigterm(pipeline, "worker")
            given_back = [pipeline.state_of("acme", rec_id) for rec_id in ids]
            for rec in given_back:
                assert rec.state == c.PIPELINE_STATE_QUEUED, rec
                assert "given back by a stopping worker" in rec.state_detail, rec.state_detail
            assert not _dead_letter_ids(pipeline, "acme") & set(ids)
        finally:
            os.killpg(asr.pid, signal.SIGCONT)
        pipeline.start("worker")
        pipeline.wait_indexed("acme", ids, timeout=600)
        assert not _dead_letter_ids(pipeline, "acme") & set(ids)
