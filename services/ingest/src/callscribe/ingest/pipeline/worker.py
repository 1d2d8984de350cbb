"""The pipeline worker's loop (the ingest service's second program, ``python -m callscribe.ingest worker``).

At-least-once delivery over a Redis Stream consumer group:
- an entry is acknowledged only after its recording is indexed (or dead-lettered, or parked for a retry),
  each in one Redis transaction with the move it stands for;
- entries in flight are kept alive (their idle time reset) while being worked on; a worker that
  dies stops doing so, and after the visibility timeout another worker claims its entries;
- overload is not failure: a service that says it is busy, restarting or stopping
  (RESOURCE_EXHAUSTED, UNAVAILABLE) never uses up an attempt; the job waits (backoff growing while the
  pressure lasts, reset by the next success) as often as it takes, and the worker takes fewer jobs at
  once (an admission limit halved on pressure, grown again by successes) so that it does not send
  what would only be refused;
- failures that can pass otherwise (a timeout, an internal error) are retried with exponential
  backoff through a due-time sorted set; after ``max_attempts`` (counting deliveries to dead
  workers) or on a failure no retry can fix (bad audio, fingerprint mismatch) the job goes to the
  dead-letter stream with its stage and reason;
- a stopping worker (SIGTERM) lets jobs in flight finish for ``worker_grace_seconds``, then cancels
  their calls and gives the jobs back to the queue, attempts untouched;
- the reconciler (`reconciler.py`) queues archived recordings that have no indexed call and no live
  job (Redis lost its data, or an enqueue never reached it).
Every stage is idempotent (deterministic ids all the way down), so a job run twice changes nothing.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscribe.ingest.jobs import RedisJobs, job_from_fields
from callscribe.ingest.model import Job, StageAdvance
from callscribe.ingest.pipeline.runner import FAULT, PRESSURE, RELEASED, UNANALYSABLE, Pipeline, StageError
from callscribe.ingest.settings import PipelineSettings
from callscribe.kit.errors import Unavailable

log = logging.getLogger("callscribe.ingest.worker")


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
        self.backpressure = Counter(
            f"{p}_backpressure", "jobs put back because a service was busy or restarting", ["stage"], registry=registry
        )
        self.released = Counter(f"{p}_released", "jobs given back to the queue by a stopping worker", registry=registry)
        self.admission = Gauge(f"{p}_admission_limit", "jobs this worker takes at once now", registry=registry)


class Admission:
    """How many jobs to hold at once: the configured concurrency, halved when a service pushes back
    (at most once per `cooldown_s`, so one burst of refusals counts once), grown by one per success."""

    def __init__(self, maximum: int, cooldown_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self._limit = float(maximum)
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._last_cut = -cooldown_s
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        with self._lock:
            return int(self._limit)

    def pressure(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._last_cut >= self._cooldown_s:
                self._limit = max(1.0, self._limit / 2)
                self._last_cut = now

    def success(self) -> None:
        with self._lock:
            self._limit = min(float(self.maximum), self._limit + 1.0)


@dataclass
class _InFlight:
    entry_id: str
    job: Job
    attempts: int


class Worker:
    def __init__(
        self,
        queue: RedisJobs,
        pipeline: Pipeline,
        settings: PipelineSettings,
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
        self.admission = Admission(settings.worker_concurrency)
        self._pressure_delay = settings.worker_pressure_backoff_seconds
        metrics.admission.set(self.admission.limit)

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
                free = self.admission.limit - self._busy()
                if free <= 0:
                    self.stop_event.wait(0.05)
                    continue
                for entry_id, fields in self._queue.read(free, block_ms=500):
                    job, attempts = job_from_fields(fields)
                    self._submit(entry_id, job, attempts + 1)
            except Unavailable as exc:
                log.warning("%s; retrying in 1 s", exc.message)
                self.stop_event.wait(1.0)
        grace = self._settings.worker_grace_seconds
        log.info("worker stopping: %d job(s) in flight get %.0f s to finish", self._busy(), grace)
        deadline = time.monotonic() + grace
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._busy():
            log.info("giving %d job(s) back to the queue", self._busy())
            self._pipeline.stopping.set()
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
        free = self.admission.limit - self._busy()
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

        def progress(stage: str, detail: str, advance: StageAdvance | None) -> None:
            if stage != current["stage"]:
                now = time.monotonic()
                self._metrics.stage_seconds.labels(str(current["stage"])).observe(now - float(current["since"]))
                current.update(stage=stage, since=now)
            text = f"attempt {attempt}" + (f"; {detail}" if detail else "")
            self._queue.set_state(job.recording_id, stage, text, attempt, advance)

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
        self.admission.success()
        self._metrics.admission.set(self.admission.limit)
        self._pressure_delay = s.worker_pressure_backoff_seconds
        self._metrics.audio_seconds.inc(outcome.audio_ms / 1000)
        log.info("indexed %s/%s: %s", job.tenant, job.recording_id, detail)

    def _failed(self, entry_id: str, job: Job, attempt: int, exc: StageError) -> None:
        s = self._settings
        if exc.kind == RELEASED:
            detail = "given back by a stopping worker; queued again (attempt not counted)"
            self._queue.retry_later(entry_id, job, attempt - 1, 0.0, exc.stage, exc.reason, detail)
            self._metrics.released.inc()
            log.info("%s given back to the queue at %s", job.recording_id, exc.stage)
            return
        if exc.kind == UNANALYSABLE:
            self._queue.not_analysable(entry_id, job, attempt, exc.stage, exc.reason)
            self._metrics.jobs.labels("not_analysable").inc()
            log.warning("%s/%s archived, not analysable (%s): %s", job.tenant, job.recording_id, exc.stage, exc.reason)
            return
        if exc.kind == PRESSURE:
            self.admission.pressure()
            self._metrics.admission.set(self.admission.limit)
            delay = self._pressure_delay
            self._pressure_delay = min(s.worker_pressure_backoff_max_seconds, delay * 2)
            detail = f"waiting for {exc.stage}: {exc.reason}; trying again in {delay:.0f} s (attempt not counted)"
            self._queue.retry_later(entry_id, job, attempt - 1, delay, exc.stage, exc.reason, detail)
            self._metrics.backpressure.labels(exc.stage).inc()
            log.warning(
                "%s: %s pushed back (%s); again in %.0f s, taking at most %d job(s) at once",
                job.recording_id,
                exc.stage,
                exc.reason,
                delay,
                self.admission.limit,
            )
            return
        if exc.kind not in (FAULT, UNANALYSABLE) and attempt < s.worker_max_attempts:
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
        why = exc.reason if exc.kind == FAULT else f"{exc.reason} (gave up after {attempt} attempts)"
        self._queue.dead_letter(entry_id, job, attempt, exc.stage, why)
        self._metrics.jobs.labels("dead_letter").inc()
        log.error("dead letter %s/%s at %s: %s", job.tenant, job.recording_id, exc.stage, why)
