"""Composition root of the pipeline worker (``python -m callscribe.ingest worker``): read settings, wire
the job queue, the archive and the service stubs, serve health and metrics, run the loop and the reconciler."""

from __future__ import annotations

import logging
import signal
import threading

from prometheus_client import CollectorRegistry

from callscribe.ingest.jobs import RedisJobs
from callscribe.ingest.pipeline.reconciler import Reconciler, run_reconciler
from callscribe.ingest.pipeline.runner import Chunking, Pipeline, Timeouts
from callscribe.ingest.pipeline.worker import Worker, WorkerMetrics
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.ingest.settings import PipelineSettings
from callscribe.kit.errors import Unavailable
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import GrpcServer, service_channel, start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.v1 import asr_pb2_grpc, indexer_pb2_grpc, vad_pb2_grpc

log = logging.getLogger("callscribe.ingest.worker")


def build(settings: PipelineSettings, registry: CollectorRegistry) -> tuple[Worker, Reconciler, RedisJobs]:
    client, cold = settings.s3_clients(settings.worker_concurrency + 4)
    keys = settings.recording_keys(client)
    store = S3RecordingStore(client, settings.hot_bucket, 8 * 1024 * 1024, 1, 1, cold=cold, keys=keys)
    queue = RedisJobs(
        settings.redis_url,
        settings.job_stream,
        settings.redis_timeout_seconds,
        group=settings.worker_group,
        consumer=settings.consumer,
    )
    token = settings.service_token.get_secret_value()
    indexer = indexer_pb2_grpc.IndexerServiceStub(service_channel(settings.indexer_address, settings.services_ca_file))
    pipeline = Pipeline(
        store,
        vad_pb2_grpc.VadServiceStub(service_channel(settings.vad_address, settings.services_ca_file)),
        asr_pb2_grpc.AsrServiceStub(service_channel(settings.asr_address, settings.services_ca_file)),
        indexer,
        token,
        Timeouts(settings.vad_timeout_seconds, settings.asr_timeout_seconds, settings.indexer_timeout_seconds),
        queue,
        Chunking(settings.asr_chunk_seconds, settings.asr_chunk_segments),
    )
    metrics = WorkerMetrics(registry)
    worker = Worker(queue, pipeline, settings, metrics)
    stale = max(600.0, 4 * settings.worker_visibility_timeout_seconds)
    return worker, Reconciler(store, queue, indexer, token, stale, metrics), queue


def serve_health(settings: PipelineSettings, registry: CollectorRegistry) -> GrpcServer:
    """The worker's gRPC endpoint: health (SERVING once Redis answers and the consumer group exists) and
    reflection, nothing else; probes and the local stack wait on it as on every other service."""
    server = GrpcServer("ingest_worker", settings, [], registry, address=settings.worker_grpc_address)
    server.start()
    return server


def main() -> int:
    settings = load_settings(PipelineSettings, "callscribe-ingest worker")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    worker, reconciler, queue = build(settings, registry)
    start_metrics_server(settings.worker_metrics_address, registry)
    health = serve_health(settings, registry)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing jobs in flight", signum)
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if settings.worker_reconcile_interval_seconds > 0:
        threading.Thread(
            target=run_reconciler,
            args=(reconciler, settings.worker_reconcile_interval_seconds, worker.stop_event),
            name="reconciler",
            daemon=True,
        ).start()
    log.info(
        "worker %s consuming %s (concurrency %d)", settings.consumer, settings.job_stream, settings.worker_concurrency
    )
    while not worker.stop_event.is_set():
        try:
            queue.ensure_group()
            break
        except Unavailable as exc:
            log.warning("not serving yet: %s", exc.message)
            worker.stop_event.wait(1.0)
    health.mark_serving()
    worker.run()
    health.stop(0)
    return 0
