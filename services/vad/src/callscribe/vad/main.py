"""Composition root of the VAD service: read settings, start the workers, serve."""

from __future__ import annotations

import logging
import os
import sys

from prometheus_client import CollectorRegistry

from callscribe.audio.source import AudioSource, clear_stale_spool
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import GrpcServer, ServiceBinding, serve_until_signalled, start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.storage.tiers import bucket_clients
from callscribe.v1 import vad_pb2, vad_pb2_grpc
from callscribe.vad.pool import ModelConfig, VadPool
from callscribe.vad.servicer import VadMetrics, VadServicer
from callscribe.vad.settings import VadSettings

log = logging.getLogger("callscribe.vad")

SPOOL_SUFFIX = ".vad"  # the VAD's temp files in VAD_SPOOL_DIR
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def build(settings: VadSettings, registry: CollectorRegistry) -> tuple[GrpcServer, VadPool]:
    pool = VadPool(
        settings.pool,
        settings.workers,
        settings.queue_limit,
        ModelConfig(settings.engine, settings.model_dir, settings.threads_per_worker, settings.diarize_config),
    )
    hot = settings.hot_endpoint
    client, by_bucket = bucket_clients(
        hot, settings.hot_bucket, settings.cold_endpoint(hot), settings.cold_bucket, pool.capacity + 4
    )
    source = AudioSource(
        client, settings.spool_dir, settings.max_inline_bytes, service="vad", spool_suffix=SPOOL_SUFFIX,
        bucket_clients=by_bucket, keys=settings.recording_keys(client),
    )  # fmt: skip
    servicer = VadServicer(
        pool, source, settings.engine, (settings.hot_bucket, settings.cold_bucket), VadMetrics(registry)
    )
    binding = ServiceBinding(
        vad_pb2.DESCRIPTOR.services_by_name["VadService"].full_name,
        vad_pb2_grpc.add_VadServiceServicer_to_server,
        servicer,
    )
    # One handler thread per admitted request on top of max_workers: admitted requests wait for
    # a worker in their handler thread, and must never starve health checks or busy answers.
    server = GrpcServer("vad", settings, [binding], registry, long_call_slots=pool.capacity)
    return server, pool


def main() -> int:
    settings = load_settings(VadSettings, "callscribe-vad")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    # The voice encoder's matrix products run on numpy's BLAS: as many threads per worker as onnxruntime
    # gets (spawned worker processes read this when they load numpy). More would fight over the cores.
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, str(settings.threads_per_worker))
    clear_stale_spool(settings.spool_dir, SPOOL_SUFFIX)
    registry = CollectorRegistry()
    server, pool = build(settings, registry)
    start_metrics_server(settings.metrics_address, registry)
    server.start()  # health answers NOT_SERVING while the models load
    try:
        pool.start()
    except Exception:
        log.exception(
            "not serving: the %s model%s could not be loaded",
            settings.engine,
            " or the voice encoder (VAD_DIARIZE=true: pip install --no-deps resemblyzer==0.1.4)"
            if settings.diarize
            else "",
        )
        server.stop(0)
        pool.shutdown()
        return 1
    log.info(
        "serving: engine %s, %d %s worker(s), queue %d, mono diarization %s",
        settings.engine,
        pool.workers,
        pool.kind,
        pool.capacity - pool.workers,
        f"on (agent: {settings.diarize_agent})" if settings.diarize else "off",
    )
    server.mark_serving()
    serve_until_signalled(server, settings.grace_seconds)
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
