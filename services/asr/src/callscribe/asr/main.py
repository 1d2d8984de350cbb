"""Composition root of the ASR service: read settings, load the replicas, serve."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from callscribe.asr.batching import Batcher
from callscribe.asr.engines.registry import batch_cost, load_engine
from callscribe.asr.pool import PoolConfig, ReplicaPool, resolve_devices
from callscribe.asr.servicer import AsrMetrics, AsrServicer
from callscribe.asr.settings import AsrSettings
from callscribe.audio.source import AudioSource, clear_stale_spool
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import GrpcServer, ServiceBinding, serve_until_signalled, start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.storage.tiers import bucket_clients
from callscribe.v1 import asr_pb2, asr_pb2_grpc

log = logging.getLogger("callscribe.asr")

SPOOL_SUFFIX = ".asr"  # the ASR's temp files (recordings read for their segments) in ASR_SPOOL_DIR
BUILTIN_MODELS = {"whisper": ("base", "whisper-base")}
MAX_INLINE_BYTES = 4 * 1024 * 1024  # AudioSource's inline path is not used by the ASR (PCM is decoded in place)


def build(settings: AsrSettings, registry: CollectorRegistry, devices: list[str]) -> tuple[GrpcServer, ReplicaPool]:
    metrics = AsrMetrics(registry)
    cost = batch_cost(settings.engine)
    batcher = Batcher(
        settings.max_batch_size,
        settings.max_wait_ms / 1000,
        settings.max_queue_segments,
        observer=metrics,
        cost=cost,
    )
    config = PoolConfig(
        settings.engine,
        settings.model,
        devices,
        settings.replicas_per_device,
        settings.threads_per_replica,
        settings.model_cache_dir,
    )
    loader = functools.partial(load_engine, batch_size=settings.max_batch_size, precision=settings.precision)
    pool = ReplicaPool(config, batcher, loader)
    source = None
    hot = settings.hot_endpoint
    if hot is not None:
        client, by_bucket = bucket_clients(
            hot, settings.hot_bucket, settings.cold_endpoint(hot), settings.cold_bucket, settings.max_workers + 8
        )
        source = AudioSource(
            client, settings.spool_dir, MAX_INLINE_BYTES, service="asr", spool_suffix=SPOOL_SUFFIX,
            bucket_clients=by_bucket, keys=settings.recording_keys(client),
        )  # fmt: skip
    servicer = AsrServicer(
        pool,
        batcher,
        source,
        engine=settings.engine,
        model=settings.model,
        default_language=settings.language,
        max_segment_seconds=settings.max_segment_seconds,
        hotword_correction=settings.hotword_correction,
        buckets=settings.buckets,
        metrics=metrics,
    )
    binding = ServiceBinding(
        asr_pb2.DESCRIPTOR.services_by_name["AsrService"].full_name,
        asr_pb2_grpc.add_AsrServiceServicer_to_server,
        servicer,
    )
    # A request's handler thread waits for its segments: one thread per segment that can be queued
    # or running, on top of max_workers, so waiting calls never starve health checks or busy answers.
    # A packing engine's batch counts windows, but never holds more segments than the queue did.
    per_batch = settings.max_batch_size if cost is None else settings.max_queue_segments
    running = len(pool.replicas) * per_batch
    server = GrpcServer("asr", settings, [binding], registry, long_call_slots=settings.max_queue_segments + running)
    return server, pool


def model_problem(settings: AsrSettings) -> str | None:
    """Why the configured model cannot be loaded, when that is visible without loading it."""
    if settings.model in BUILTIN_MODELS.get(settings.engine, ()):
        return None
    path = Path(settings.model)
    if not path.is_dir():
        return f"ASR_MODEL {settings.model!r} is neither a built-in model name nor a readable directory"
    return None


def main() -> int:
    settings = load_settings(AsrSettings, "callscribe-asr")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    problem = model_problem(settings)
    if problem:
        log.error("not serving: %s (engine %s)", problem, settings.engine)
        return 1
    try:
        devices = resolve_devices(settings.devices, settings.engine)
    except ValueError as exc:
        log.error("not serving: %s", exc)
        return 2
    if settings.s3_endpoint is not None:
        clear_stale_spool(settings.spool_dir, SPOOL_SUFFIX)
    else:
        log.warning("no ASR_S3_ENDPOINT: only inline pcm segments can be transcribed")
    registry = CollectorRegistry()
    server, pool = build(settings, registry, devices)
    start_metrics_server(settings.metrics_address, registry)
    server.start()  # health answers NOT_SERVING while the replicas load
    try:
        pool.start()
    except Exception as exc:
        log.exception(
            "not serving: the %s model %r could not be loaded on %s: %s",
            settings.engine,
            settings.model,
            ", ".join(devices),
            exc,
        )
        server.stop(0)
        pool.shutdown(timeout=1)
        return 1
    log.info(
        "serving: %s %s (%s), %d replica(s) on %s, batches of up to %d (wait %.0f ms), queue %d segments",
        settings.engine,
        pool.engine.model,
        settings.precision,
        len(pool.replicas),
        ", ".join(devices),
        settings.max_batch_size,
        settings.max_wait_ms,
        settings.max_queue_segments,
    )
    server.mark_serving()
    serve_until_signalled(server, settings.grace_seconds)
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
