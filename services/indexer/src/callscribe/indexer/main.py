"""Composition root of the indexer: read settings, wire Elasticsearch and the enricher, serve.

The gRPC server starts at once with health NOT_SERVING; it turns SERVING once Elasticsearch answered
and the index templates are in place. While Elasticsearch cannot be reached the indexer keeps trying
in the background (and logs why) instead of exiting, so a cluster that starts later is simply waited for.
"""

from __future__ import annotations

import logging
import sys
import threading

from prometheus_client import CollectorRegistry

from callscribe.indexer.enrich import Enricher, make_enricher
from callscribe.indexer.es.client import make_client
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.pii.calls import UnredactedSink
from callscribe.indexer.servicer import IndexerServicer
from callscribe.indexer.settings import IndexerSettings
from callscribe.indexer.store import EsStore
from callscribe.indexer.unredacted import SealedTranscripts
from callscribe.kit.errors import Unavailable
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import GrpcServer, ServiceBinding, serve_until_signalled, start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import connect
from callscribe.storage.trail import Trail
from callscribe.v1 import indexer_pb2, indexer_pb2_grpc

log = logging.getLogger("callscribe.indexer")


def build(
    settings: IndexerSettings,
    registry: CollectorRegistry,
    enricher: Enricher | None = None,
    unredacted_sink: UnredactedSink | None = None,
) -> tuple[GrpcServer, EsStore]:
    """The server (not started) and its store; `enricher` replaces the built-in one (tests). `unredacted_sink`
    receives the unredacted calls of tenants whose redaction policy keeps them (none yet: see pii.calls)."""
    metrics = IndexerMetrics(registry)
    store = EsStore(make_client(settings), settings, metrics)
    sink = unredacted_sink if unredacted_sink is not None else make_sealed_transcripts(settings)
    enrich = enricher or make_enricher(settings)
    servicer = IndexerServicer(store, enrich, settings, metrics, make_trail(settings), sink)
    binding = ServiceBinding(
        indexer_pb2.DESCRIPTOR.services_by_name["IndexerService"].full_name,
        indexer_pb2_grpc.add_IndexerServiceServicer_to_server,
        servicer,
    )
    return GrpcServer("indexer", settings, [binding], registry), store


def make_sealed_transcripts(settings: IndexerSettings) -> SealedTranscripts | None:
    """Where tenants that keep unredacted transcripts have them, encrypted with the recording's data key; None
    without S3 or a KEK (such tenants' calls are then indexed redacted only)."""
    endpoint = settings.trail_endpoint
    if endpoint is None or not settings.encryption_on:
        return None
    client = connect(endpoint, pool_size=8, read_timeout=30.0)
    keys = settings.recording_keys(client)
    assert keys is not None  # encryption_on
    return SealedTranscripts(client, settings.hot_bucket, keys)


def make_trail(settings: IndexerSettings) -> Trail | None:
    """The access trail exports are recorded in; None (and a warning: ExportCalls is then refused) without S3."""
    endpoint = settings.trail_endpoint
    if endpoint is None:
        log.warning(
            "INDEXER_S3_ENDPOINT is not set: ExportCalls is refused, since an export must be recorded in the "
            "tenant's access trail (set INDEXER_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY and INDEXER_HOT_BUCKET)"
        )
        return None
    return Trail(LockedBucket(connect(endpoint, pool_size=8, read_timeout=30.0), settings.hot_bucket))


def connect_until_ready(server: GrpcServer, store: EsStore, retry_seconds: float, stop: threading.Event) -> bool:
    """Try to reach Elasticsearch until it works (then mark SERVING) or `stop` is set; True once serving."""
    delay = min(0.5, retry_seconds)
    while not stop.is_set():
        try:
            store.connect()
        except Unavailable as exc:
            log.warning("not serving yet: %s; trying again in %.1f s", exc.message, delay)
        else:
            server.mark_serving()
            log.info("serving")
            return True
        stop.wait(delay)
        delay = min(delay * 2, retry_seconds)
    return False


def start_connecting(
    server: GrpcServer, store: EsStore, retry_seconds: float
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(
        target=connect_until_ready, args=(server, store, retry_seconds, stop), name="es-connect", daemon=True
    )
    thread.start()
    return thread, stop


def main() -> int:
    settings = load_settings(IndexerSettings, "callscribe-indexer")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    if settings.log_level != "DEBUG":  # the client logs every request at INFO
        logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
    registry = CollectorRegistry()
    try:
        server, store = build(settings, registry)
    except ValueError as exc:  # e.g. an analytics file that does not parse
        print(f"callscribe-indexer: invalid configuration: {exc}", file=sys.stderr)
        return 2
    start_metrics_server(settings.metrics_address, registry)
    server.start()  # health answers NOT_SERVING until Elasticsearch is ready
    _, stop = start_connecting(server, store, settings.startup_retry_seconds)
    serve_until_signalled(server, settings.grace_seconds)
    stop.set()
    store.client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
