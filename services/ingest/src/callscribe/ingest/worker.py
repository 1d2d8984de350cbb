"""The pipeline worker: the ingest service's second process role (``python -m callscribe.ingest worker``).

At-least-once delivery over a Redis Stream consumer group:
- an entry is acknowledged only after its recording is indexed (or dead-lettered, or parked for a retry),
  each in one Redis transaction with the move it stands for;
- entries in flight are kept alive (their idle time reset) while being worked on; a worker that
  dies stops doing so, and after the visibility timeout another worker claims its entries;
- failures that can pass (a service restarting, Elasticsearch down) are retried with exponential
  backoff through a due-time sorted set; after ``max_attempts`` (counting deliveries to dead
  workers) or on a failure no retry can fix (bad audio, fingerprint mismatch) the job goes to the
  dead-letter stream with its stage and reason;
- the reconciler queues archived recordings that have no indexed call and no live job (Redis lost
  its data, or an enqueue never reached it).
Every stage is idempotent (deterministic ids all the way down), so a job run twice changes nothing.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscribe.ingest.jobs import WorkQueue, job_from_fields
from callscribe.ingest.model import Job
from callscribe.ingest.pipeline import Pipeline, StageError, Timeouts
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.ingest.worker_settings import WorkerSettings
from callscribe.kit.errors import Unavailable
from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.kit.logs import configure_logging
from callscribe.kit.server import start_metrics_server
from callscribe.kit.settings import load_settings
from callscribe.storage.client import make_client
from callscribe.v1 import asr_pb2_grpc, indexer_pb2, indexer_pb2_grpc, vad_pb2_grpc

log = logging.getLogger("callscribe.ingest.worker")

IN_PROGRESS = ("queued", "vad", "asr", "indexing")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = "callscribe_ingest_worker"
        self.jobs = Counter(f"{p}_jobs", "jobs finished, by outcome", ["outcome"], registry=registry)
        self.stage_seconds = Histogram(
            f"{p}_stage_seconds",
            "time per pipeline stage",
            ["stage"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
        )
        self.in_flight = Gauge(f"{p}_in_flight", "jobs being processed by this worker", registry=registry)
        self.audio_seconds = Counter(f"{p}_audio_seconds", "audio seconds indexed", registry=registry)
        self.reclaimed = Counter(f"{p}_reclaimed", "entries claimed from dead workers", registry=registry)
        self.reconciled = Counter(f"{p}_reconciled", "recordings queued by reconciliation", registry=registry)


@dataclass
class _InFlight:
    entry_id: str
    job: Job
    attempts: int


class Worker:
    def __init__(
        self,
        queue: WorkQueue,
        pipeline: Pipeline,
        settings: WorkerSettings,
        metrics: WorkerMetrics,
    ) -> None:
        self._queue = queue
        self._pipeline = pipeline
        self._settings = settings
        self._metrics = metrics
        self._pool = ThreadPoolExecutor(settings.worker_concurrency, thread_name_prefix="job")
        self._in_flight: dict[str, _InFlight] = {}
        self._lock = threading.Lock()
        self.stop_event = threading.Event()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Until stopped: claim stale entries, promote due retries, read new entries, keep in-flight ones alive."""
        housekeeping_every = max(1.0, min(10.0, self._settings.worker_visibility_timeout_seconds / 4))
        last_housekeeping = 0.0
        while not self.stop_event.is_set():
            try:
                if time.monotonic() - last_housekeeping >= housekeeping_every:
                    self._housekeeping()
                    last_housekeeping = time.monotonic()
                free = self._settings.worker_concurrency - self._busy()
                if free <= 0:
                    self.stop_event.wait(0.05)
                    continue
                for entry_id, fields in self._queue.read(free, block_ms=500):
                    job, attempts = job_from_fields(fields)
                    self._submit(entry_id, job, attempts + 1)
            except redis.RedisError as exc:
                log.warning("job queue (Redis) unreachable, retrying in 1 s: %s", exc)
                self.stop_event.wait(1.0)
        log.info("worker stopping: waiting for %d job(s) in flight", self._busy())
        self._pool.shutdown(wait=True)

    def _busy(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _housekeeping(self) -> None:
        self._queue.ensure_group()
        with self._lock:
            alive = list(self._in_flight)
        self._queue.keep_alive(alive)
        self._queue.promote_due()
        free = self._settings.worker_concurrency - self._busy()
        if free > 0:
            idle_ms = int(self._settings.worker_visibility_timeout_seconds * 1000)
            for entry_id, fields, delivered in self._queue.claim_stale(idle_ms, free):
                job, attempts = job_from_fields(fields)
                self._metrics.reclaimed.inc()
                log.warning(
                    "claimed %s (recording %s) from a worker that stopped (delivered %d times)",
                    entry_id,
                    job.recording_id,
                    delivered,
                )
                self._submit(entry_id, job, attempts + delivered)

    def _submit(self, entry_id: str, job: Job, attempt: int) -> None:
        with self._lock:
            if entry_id in self._in_flight:
                return
            self._in_flight[entry_id] = _InFlight(entry_id, job, attempt)
        self._metrics.in_flight.inc()
        future = self._pool.submit(self._process, entry_id, job, attempt)
        future.add_done_callback(functools.partial(self._done_callback, entry_id))

    def _done_callback(self, entry_id: str, future: Future[None]) -> None:
        self._finished(entry_id, future)

    def _finished(self, entry_id: str, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.pop(entry_id, None)
        self._metrics.in_flight.dec()
        exc = future.exception()
        if exc is not None:  # only Redis failures reach here; the entry stays pending and is reclaimed
            log.error("job %s left pending for reclaim: %s", entry_id, exc)

    # -- one job ----------------------------------------------------------------------------
    def _process(self, entry_id: str, job: Job, attempt: int) -> None:
        s = self._settings
        if attempt > s.worker_max_attempts:
            reason = f"delivered {attempt - 1} times without finishing (a worker died each time?)"
            self._queue.dead_letter(entry_id, job, attempt - 1, "worker", reason)
            self._metrics.jobs.labels("dead_letter").inc()
            log.error("dead letter %s: %s", job.recording_id, reason)
            return
        started = time.monotonic()
        current: dict[str, Any] = {"stage": "verify", "since": started}

        def progress(stage: str) -> None:
            now = time.monotonic()
            self._metrics.stage_seconds.labels(str(current["stage"])).observe(now - float(current["since"]))
            current.update(stage=stage, since=now)
            self._queue.set_state(job.recording_id, stage, f"attempt {attempt}", attempt)

        try:
            outcome = self._pipeline.process(job, progress)
        except StageError as exc:
            self._failed(entry_id, job, attempt, exc)
            return
        now = time.monotonic()
        self._metrics.stage_seconds.labels(str(current["stage"])).observe(now - float(current["since"]))
        detail = f"{outcome.utterances} utterances from {outcome.segments} segments in {now - started:.1f} s"
        self._queue.done(entry_id, job, detail)
        self._metrics.jobs.labels("done").inc()
        self._metrics.audio_seconds.inc(outcome.audio_ms / 1000)
        log.info("indexed %s/%s: %s", job.tenant, job.recording_id, detail)

    def _failed(self, entry_id: str, job: Job, attempt: int, exc: StageError) -> None:
        s = self._settings
        if exc.retryable and attempt < s.worker_max_attempts:
            delay = min(s.worker_backoff_max_seconds, s.worker_backoff_seconds * 2 ** (attempt - 1))
            self._queue.retry_later(entry_id, job, attempt, delay, exc.stage, exc.reason)
            self._metrics.jobs.labels("retry").inc()
            log.warning(
                "%s attempt %d failed at %s (%s); retry in %.0f s",
                job.recording_id,
                attempt,
                exc.stage,
                exc.reason,
                delay,
            )
            return
        why = exc.reason if not exc.retryable else f"{exc.reason} (gave up after {attempt} attempts)"
        self._queue.dead_letter(entry_id, job, attempt, exc.stage, why)
        self._metrics.jobs.labels("dead_letter").inc()
        log.error("dead letter %s/%s at %s: %s", job.tenant, job.recording_id, exc.stage, why)


class TenantRefused(Exception):
    """The services refuse to act for this tenant (not in their tenants file)."""


class Reconciler:
    """Queues archived recordings that have no indexed call and no live job."""

    def __init__(
        self,
        store: S3RecordingStore,
        queue: WorkQueue,
        indexer: indexer_pb2_grpc.IndexerServiceStub,
        token: str,
        stale_after_s: float,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._indexer = indexer
        self._token = token
        self._stale_after_s = stale_after_s
        self._metrics = metrics

    def run_once(self, batch: int = 500) -> int:
        """One pass over the archive; a tenant the services refuse (e.g. removed from the tenants file) is
        logged and skipped, and never holds up the others."""
        by_tenant: dict[str, list[str]] = {}
        refused: dict[str, str] = {}
        queued = 0
        for tenant, rec_id in self._store.list_all():
            if tenant in refused:
                continue
            ids = by_tenant.setdefault(tenant, [])
            ids.append(rec_id)
            if len(ids) == batch:
                queued += self._check_or_skip(tenant, ids, refused)
                by_tenant[tenant] = []
        for tenant, ids in by_tenant.items():
            if ids and tenant not in refused:
                queued += self._check_or_skip(tenant, ids, refused)
        for tenant, why in refused.items():
            log.warning("reconciliation skipped tenant %s: %s", tenant, why)
        return queued

    def _check_or_skip(self, tenant: str, ids: list[str], refused: dict[str, str]) -> int:
        try:
            return self._check(tenant, ids)
        except TenantRefused as exc:
            refused[tenant] = str(exc)
            return 0

    def _check(self, tenant: str, ids: list[str]) -> int:
        metadata = (("authorization", f"Bearer {self._token}"), (ACTING_TENANT_HEADER, tenant))
        try:
            reply = self._indexer.FindIndexed(
                indexer_pb2.FindIndexedRequest(tenant=tenant, recording_ids=ids), metadata=metadata, timeout=30
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                raise TenantRefused(f"{exc.code().name}: {exc.details()}") from exc
            raise Unavailable(f"indexer unreachable: {exc.code().name}: {exc.details()}") from exc
        indexed = set(reply.recording_ids)
        states = self._queue.states(ids)
        for rec_id in indexed:
            if rec_id not in states:  # Redis lost its data: the index says the work is done
                self._queue.set_state(rec_id, "done", "indexed (state restored by reconciliation)")
        missing = [rec_id for rec_id in ids if rec_id not in indexed]
        if not missing:
            return 0
        now = time.time()
        queued = 0
        for rec_id in missing:
            fields = states.get(rec_id)
            if fields:
                state = fields.get("state", "")
                if state == "failed":
                    continue  # a dead letter: requeued by a person, not by reconciliation
                if state in IN_PROGRESS and now - float(fields.get("updated_at") or 0) < self._stale_after_s:
                    continue  # a live job
            record = self._store.find(tenant, rec_id)
            if record is None or record.object is None:
                continue
            obj = record.object
            self._queue.requeue(Job(rec_id, tenant, obj.bucket, obj.key, obj.version_id, obj.sha256))
            queued += 1
            log.info("reconciliation queued %s/%s (state %s)", tenant, rec_id, (fields or {}).get("state", "none"))
        if self._metrics is not None:
            self._metrics.reconciled.inc(queued)
        return queued


def _channel(address: str, ca_file: object) -> grpc.Channel:
    limit = 64 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    if ca_file is not None:
        with open(str(ca_file), "rb") as handle:
            return grpc.secure_channel(address, grpc.ssl_channel_credentials(handle.read()), options=options)
    return grpc.insecure_channel(address, options=options)


def build(settings: WorkerSettings, registry: CollectorRegistry) -> tuple[Worker, Reconciler]:
    client = make_client(
        settings.s3_endpoint,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
        settings.s3_region,
        pool_size=settings.worker_concurrency + 4,
    )
    store = S3RecordingStore(client, settings.hot_bucket, 8 * 1024 * 1024, 1, 1)
    queue = WorkQueue(
        settings.redis_url,
        settings.job_stream,
        settings.worker_group,
        settings.consumer,
        settings.redis_timeout_seconds,
    )
    token = settings.service_token.get_secret_value()
    indexer = indexer_pb2_grpc.IndexerServiceStub(_channel(settings.indexer_address, settings.services_ca_file))
    pipeline = Pipeline(
        store,
        vad_pb2_grpc.VadServiceStub(_channel(settings.vad_address, settings.services_ca_file)),
        asr_pb2_grpc.AsrServiceStub(_channel(settings.asr_address, settings.services_ca_file)),
        indexer,
        token,
        Timeouts(settings.vad_timeout_seconds, settings.asr_timeout_seconds, settings.indexer_timeout_seconds),
    )
    metrics = WorkerMetrics(registry)
    worker = Worker(queue, pipeline, settings, metrics)
    stale = max(600.0, 4 * settings.worker_visibility_timeout_seconds)
    return worker, Reconciler(store, queue, indexer, token, stale, metrics)


def run_reconciler(reconciler: Reconciler, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            queued = reconciler.run_once()
        except (Unavailable, redis.RedisError) as exc:
            log.warning("reconciliation postponed: %s", exc)
            continue
        if queued:
            log.info("reconciliation queued %d recording(s)", queued)


def main() -> int:
    settings = load_settings(WorkerSettings, "callscribe-ingest worker")
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    worker, reconciler = build(settings, registry)
    start_metrics_server(settings.worker_metrics_address, registry)

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
    worker.run()
    return 0
