"""`python -m callscribe.ingest lifecycle`: the storage lifecycle's composition root.

Scheduled passes every INGEST_LIFECYCLE_INTERVAL_SECONDS (tiering and expiry of every tenant, then the survey
the metrics and alerts read); the integrity audit goes round every recording in a thread of its own, at
INGEST_AUDIT_BYTES_PER_SECOND, resuming from its checkpoint, a new round each interval after the last one
ended; LifecycleService runs a pass now. Health is SERVING once Redis answers and both tiers' buckets have
Object Lock.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscribe.ingest.jobs import LifecycleRedis
from callscribe.ingest.lifecycle.audit import AuditEvent, Auditor
from callscribe.ingest.lifecycle.erasure import Eraser
from callscribe.ingest.lifecycle.expiry import Expirer, ExpiryEvent
from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.ingest.lifecycle.mover import MoveEvent, Mover, MoverConfig, survey
from callscribe.ingest.lifecycle.servicer import LifecycleServicer
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.ingest.settings import LifecycleSettings
from callscribe.kit.errors import DomainError
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import GrpcServer, ServiceBinding, service_channel, start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.kit.tenants import TenantRegistry
from callscribe.storage.trail import Trail
from callscribe.v1 import indexer_pb2_grpc, lifecycle_pb2, lifecycle_pb2_grpc

log = logging.getLogger("callscribe.ingest.lifecycle")


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "callscribe_lifecycle_events_total",
            "recordings handled by tiering, by outcome (MOVED, HOT_LOCK_EXTENDED, HOT_RELEASED, FAILED, BUSY)",
            ["outcome"],
            registry=registry,
        )
        self.bytes_moved = Counter(
            "callscribe_lifecycle_moved_bytes_total", "bytes copied to the cold tier", registry=registry
        )
        self.pass_seconds = Histogram(
            "callscribe_lifecycle_pass_seconds", "one scheduled pass", buckets=(1, 10, 60, 600, 3600), registry=registry
        )
        self.pass_failures = Counter(
            "callscribe_lifecycle_pass_failures_total", "scheduled passes that stopped on an error", registry=registry
        )
        self.tier_bytes = Gauge("callscribe_lifecycle_tier_bytes", "audio bytes per tier", ["tier"], registry=registry)
        self.tier_recordings = Gauge(
            "callscribe_lifecycle_tier_recordings", "recordings per tier", ["tier"], registry=registry
        )
        self.lag = Gauge(
            "callscribe_lifecycle_mover_lag_seconds",
            "how long the oldest recording past its hot_days has waited to move (0: none waits)",
            registry=registry,
        )
        self.lapsing = Gauge(
            "callscribe_lifecycle_hot_locks_lapsing",
            "recordings not moved yet whose hot lock ends within INGEST_LIFECYCLE_ALERT_DAYS",
            registry=registry,
        )
        self.last_pass = Gauge(
            "callscribe_lifecycle_last_pass_timestamp_seconds", "end of the last complete pass", registry=registry
        )

        self.audited = Counter(
            "callscribe_lifecycle_audited_total",
            "recordings the integrity audit re-hashed, by finding (OK, MISMATCH, MISSING; UNREADABLE: not now)",
            ["integrity"],
            registry=registry,
        )
        self.audit_bytes = Counter(
            "callscribe_lifecycle_audit_bytes_total", "bytes the integrity audit hashed", registry=registry
        )
        self.audit_failures = Counter(
            "callscribe_lifecycle_integrity_failures_total",
            "recordings found with a copy that does not hash to its fingerprint, or missing: ALARM",
            registry=registry,
        )
        self.audit_round_done = Gauge(
            "callscribe_lifecycle_audit_round_timestamp_seconds",
            "end of the last complete audit round",
            registry=registry,
        )
        self.expired = Counter(
            "callscribe_lifecycle_expired_total", "recordings deleted at the end of their retention", registry=registry
        )
        self.expiry_kept = Counter(
            "callscribe_lifecycle_expiry_kept_total",
            "recordings past their retention kept for now (a legal hold, a lock still on, S3 away)",
            registry=registry,
        )

    def observe(self, event: MoveEvent) -> None:
        self.events.labels(event.outcome).inc()
        if event.outcome == "MOVED":
            self.bytes_moved.inc(event.size_bytes)

    def observe_audit(self, event: AuditEvent) -> None:
        self.audited.labels(event.integrity or "UNREADABLE").inc()
        self.audit_bytes.inc(event.bytes_hashed)
        if event.integrity in ("MISMATCH", "MISSING"):
            self.audit_failures.inc()

    def observe_expiry(self, event: ExpiryEvent) -> None:
        (self.expired if event.tombstone else self.expiry_kept).inc()


@dataclass
class Lifecycle:
    mover: Mover
    auditor: Auditor
    expirer: Expirer
    eraser: Eraser
    store: S3RecordingStore
    state: LifecycleRedis
    metrics: LifecycleMetrics
    tenants: TenantRegistry


def build(settings: LifecycleSettings, registry: CollectorRegistry) -> Lifecycle:
    client, cold = settings.s3_clients(16, settings.lifecycle_s3_read_timeout_seconds)
    part = settings.lifecycle_part_size_mb * 1024 * 1024
    keys = settings.recording_keys(client)  # erasure and expiry destroy keys; nothing here decrypts a record
    store = S3RecordingStore(client, settings.hot_bucket, part, 2, 4, cold=cold, keys=keys, open_records=False)
    state = LifecycleRedis(settings.redis_url, settings.redis_timeout_seconds)
    index = IndexClient(
        indexer_pb2_grpc.IndexerServiceStub(service_channel(settings.indexer_address, settings.services_ca_file)),
        settings.service_token.get_secret_value(),
    )
    config = MoverConfig(
        extend_before_days=settings.lifecycle_extend_before_days,
        extend_days=settings.lifecycle_extend_days,
        part_size=part,
        lease_seconds=settings.lifecycle_lease_seconds,
        concurrency=settings.lifecycle_concurrency,
        kill_at=settings.lifecycle_kill_at,
    )
    metrics = LifecycleMetrics(registry)
    tenants = TenantRegistry.load(settings.tenants_file)
    mover = Mover(store, tenants, state, index, config, observe=metrics.observe)
    auditor = Auditor(
        store, tenants, state, index, settings.audit_bytes_per_second, settings.audit_retention_days,
        observe=metrics.observe_audit,
    )  # fmt: skip
    expirer = Expirer(store, tenants, state, index, settings.audit_retention_days, observe=metrics.observe_expiry)
    eraser = Eraser(store, state, index, settings.audit_retention_days, trail=Trail(store.hot))
    return Lifecycle(mover, auditor, expirer, eraser, store, state, metrics, tenants)


def scheduled(settings: LifecycleSettings, life: Lifecycle, stop: threading.Event) -> None:
    """Every interval: a tiering pass and an expiry pass over every tenant, then the survey behind the metrics."""
    metrics, store, tenants = life.metrics, life.store, life.tenants
    while not stop.is_set():
        started = time.monotonic()
        try:
            moved = sum(1 for _ in life.mover.run())
            expired = sum(1 for event in life.expirer.run() if event.tombstone)
            found = survey(
                store, tenants, datetime.now(UTC), settings.lifecycle_alert_days, settings.hot_lock_grace_days
            )
            metrics.tier_bytes.labels("HOT").set(found.hot_bytes)
            metrics.tier_bytes.labels("COLD").set(found.cold_bytes)
            metrics.tier_recordings.labels("HOT").set(found.hot_recordings)
            metrics.tier_recordings.labels("COLD").set(found.cold_recordings)
            metrics.lag.set(found.overdue_seconds)
            metrics.lapsing.set(found.lapsing)
            metrics.last_pass.set(time.time())
            log.info(
                "scheduled pass: tiering handled %d recordings, %d expired, %d hot locks lapsing soon",
                moved, expired, found.lapsing,
            )  # fmt: skip
        except DomainError as exc:
            metrics.pass_failures.inc()
            log.warning("scheduled pass stopped: %s", exc.message)
        metrics.pass_seconds.observe(time.monotonic() - started)
        stop.wait(settings.lifecycle_interval_seconds)


def audit_rounds(settings: LifecycleSettings, life: Lifecycle, stop: threading.Event) -> None:
    """The audit, round after round (each resumes from the checkpoint a restart left); a round's end is a metric."""
    while not stop.is_set():
        try:
            for _event in life.auditor.run():
                if stop.is_set():
                    return
            life.metrics.audit_round_done.set(time.time())
        except DomainError as exc:
            log.warning("audit round stopped (it resumes from its checkpoint): %s", exc.message)
        stop.wait(settings.lifecycle_interval_seconds)


def main() -> int:
    settings = load_settings(LifecycleSettings, "callscribe-ingest lifecycle")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    life = build(settings, registry)
    binding = ServiceBinding(
        lifecycle_pb2.DESCRIPTOR.services_by_name["LifecycleService"].full_name,
        lifecycle_pb2_grpc.add_LifecycleServiceServicer_to_server,
        LifecycleServicer(life.mover, life.auditor, life.expirer, life.eraser),
    )
    server = GrpcServer("lifecycle", settings, [binding], registry, address=settings.lifecycle_grpc_address)
    server.start()
    start_metrics_server(settings.lifecycle_metrics_address, registry)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the recording in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set():
        try:
            life.state.ping()
            life.store.hot.check_object_lock()
            life.store.require_cold().check_object_lock()
            if life.store.keys is not None:
                life.store.keys.check()
            break
        except DomainError as exc:
            log.warning("not serving yet: %s", exc.message)
            stop.wait(1.0)
    server.mark_serving()
    if settings.lifecycle_interval_seconds > 0:
        threading.Thread(target=scheduled, args=(settings, life, stop), name="lifecycle-passes", daemon=True).start()
        threading.Thread(target=audit_rounds, args=(settings, life, stop), name="audit-rounds", daemon=True).start()
    log.info("lifecycle serving on %s", settings.lifecycle_grpc_address)
    stop.wait()
    server.stop(5)
    return 0
