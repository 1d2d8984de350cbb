"""Composition root of the upload API (``python -m callscribe.ingest``): read settings, wire adapters, serve.

Archived recordings that never reached the queue are queued by the pipeline worker's reconciler."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry, Gauge

from callscribe.audio.source import clear_stale_spool
from callscribe.ingest.jobs import RedisJobs
from callscribe.ingest.model import UploadLimits
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.ingest.settings import UploadSettings
from callscribe.ingest.upload.archive import Archiver
from callscribe.ingest.upload.servicer import IngestServicer, UploadMetrics
from callscribe.ingest.upload.spool import SPOOL_SUFFIX
from callscribe.ingest.upload.wire import add_ingest_service
from callscribe.kit.errors import Unavailable
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import GrpcServer, ServiceBinding, serve_until_signalled, start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.storage.trail import Trail
from callscribe.v1 import ingest_pb2

log = logging.getLogger("callscribe.ingest")


def stream_window(window_bytes: int) -> list[tuple[str, int]]:
    """A fixed HTTP/2 window per upload instead of gRPC's BDP probing, which grows the window with the
    link's bandwidth-delay product: with it, what an upload waiting on S3 had not consumed piled up in
    gRPC's buffers (the 1 GiB bench upload's RSS growth ranged 19-200 MiB across runs; with a fixed
    8 MiB window 48-56, with 4 MiB 25-43 but the single stream slower). Memory is bounded by window x
    uploads in flight; 8 MiB still fills a 1 Gb/s link at 60 ms round trip."""
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window_bytes)]


def build(settings: UploadSettings, registry: CollectorRegistry) -> tuple[GrpcServer, S3RecordingStore, Archiver]:
    # Every upload in flight may hold a connection (its lookup, its single PUT) besides the part
    # uploads: a smaller pool opens and drops a TCP connection per request beyond it.
    client, cold = settings.s3_clients(settings.max_concurrent_uploads + settings.s3_max_part_uploads + 8)
    store = S3RecordingStore(
        client,
        settings.hot_bucket,
        settings.s3_part_size_mb * 1024 * 1024,
        settings.s3_parallel_parts,
        settings.s3_max_part_uploads,
        max_streamed_puts=settings.max_concurrent_uploads,
        stream_min_bytes=settings.s3_stream_min_mb * 1024 * 1024,
        streamed_puts=Gauge(
            "callscribe_ingest_s3_streamed_puts_in_flight",
            "single S3 PUTs being sent while their upload is still arriving",
            registry=registry,
        ),
        cold=cold,
        keys=settings.recording_keys(client),
    )
    queue = RedisJobs(settings.redis_url, settings.job_stream, settings.redis_timeout_seconds)
    limits = UploadLimits(settings.spool_dir, settings.max_upload_bytes, settings.memory_upload_mb * 1024 * 1024)
    archiver = Archiver(store, queue, limits, hot_lock_grace_days=settings.hot_lock_grace_days)
    servicer = IngestServicer(
        archiver,
        settings.max_concurrent_uploads,
        UploadMetrics(registry),
        queue,
        max_uploads_per_tenant=settings.tenant_upload_limit,
        idle_seconds=settings.upload_idle_seconds,
        trail=Trail(store.hot),  # the access trail: in the hot bucket (it has Object Lock), under trail/
    )
    binding = ServiceBinding(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        add_ingest_service,
        servicer,
    )
    server = GrpcServer(
        "ingest",
        settings,
        [binding],
        registry,
        long_call_slots=settings.max_concurrent_uploads,
        channel_options=stream_window(settings.stream_window_kb * 1024),
    )
    return server, store, archiver


def main() -> int:
    settings = load_settings(UploadSettings, "callscribe-ingest")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    clear_stale_spool(settings.spool_dir, SPOOL_SUFFIX)  # none of them was ever acknowledged
    registry = CollectorRegistry()
    server, store, archiver = build(settings, registry)
    start_metrics_server(settings.metrics_address, registry)
    server.start()
    try:
        store.ping()
    except Unavailable as exc:
        log.error("not serving: %s", exc.message)
        server.stop(0)
        return 1
    server.mark_serving()
    serve_until_signalled(server, settings.grace_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
