"""The inference pool: a fixed number of workers and a bounded queue in front of them.

A job names a spooled audio file; the worker decodes it in blocks and runs the detectors, so
only a path goes in and a small result comes out, whatever the recording's length. A spooled file is
sealed (`callscribe.audio.sealed`): its in-memory key goes with the job, over the pool's pipe to a worker
process, never through a file. Admission
is decided up front, without waiting: when every worker is busy and the queue is full the
caller gets RESOURCE_EXHAUSTED at once.

Workers are processes by default (VAD_POOL=process), each loading and warming its model once in
its initializer, because the GIL would cap threads: sampled with `py-spy --gil`, a FSMN request
holds the GIL for ~23% of its CPU time (kaldi-native-fbank's accept_waveform and the front end's
per-frame Python), so N threads top out near 1 / 0.23 = 4.3 cores (about 1.6x on 2 cores), while
processes scale with cores and a worker that dies (OOM) cannot take the server with it. Silero
holds it only ~4% of the time. VAD_POOL=thread keeps everything in one process (one shared
onnxruntime session per engine, detectors per request): fine for one or two cores and less memory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from callscribe.audio.decode import AudioInfo, AudioStream
from callscribe.audio.sealed import SealedFile
from callscribe.kit.errors import ResourceExhausted, Unavailable
from callscribe.vad.detect import MIXED, Detection, channel_roles, detect
from callscribe.vad.mono import DiarizeConfig

log = logging.getLogger(__name__)

ENGINES = ("fsmn", "silero")
POOL_KINDS = ("process", "thread")
WARM_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ModelConfig:
    default_engine: str
    model_dir: Path | None
    threads: int
    diarize: DiarizeConfig = DiarizeConfig(enabled=False)


@dataclass(frozen=True)
class Job:
    path: str | SealedFile  # a file, or the sealed spool file of a request (its key pickles with it)
    layout: str
    engine: str
    params: Any  # callscribe.vad.engines.VadParams (frozen dataclass: pickles)
    raw_format: str = ""  # a headerless recording's format (ObjectRef.raw_format), "" for all others
    diarize: bool | None = None  # a mono recording's voices split into agent and customer (None: the default)


@dataclass(frozen=True)
class Outcome:
    detection: Detection
    info: AudioInfo
    duration_ms: int
    seconds: float  # decode + detection time in the worker


# ---------------------------------------------------------------------------- worker side
# One model per engine per process, shared by the threads of a thread pool (onnxruntime
# sessions are safe to run concurrently; every request gets its own detector state).

_models: dict[str, Any] = {}
_models_lock = threading.Lock()
_config: ModelConfig | None = None
ENCODER = "voice-encoder"  # the speaker-embedding model's key in _models


def _load(engine: str) -> Any:
    from callscribe.vad import engines  # the models are only imported where they run

    with _models_lock:
        model = _models.get(engine)
        if model is None:
            assert _config is not None, "worker not initialised"
            started = time.perf_counter()
            if engine == ENCODER:
                from callscribe.vad.voice import VoiceEncoder, warm_up

                model = VoiceEncoder()
                warm_up(model)
                _models[engine] = model
                log.info(
                    "voice encoder loaded and warmed in %.2fs (pid %d)", time.perf_counter() - started, os.getpid()
                )
                return model
            if engine == "fsmn" and _config.model_dir is not None:
                model = engines.FsmnVadModel(_config.model_dir, threads=_config.threads)
            else:
                model = engines.load_engine(engine, _config.threads)
            model.warm_up()
            _models[engine] = model
            log.info("%s model loaded and warmed in %.2fs (pid %d)", engine, time.perf_counter() - started, os.getpid())
        return model


def init_worker(config: ModelConfig, log_level: int | None = None) -> None:
    """Load and warm the default engine (process pools: runs once in each worker process)."""
    global _config
    if log_level is not None:  # a worker process
        # SIGTERM/SIGINT reach the whole process group: the parent decides when workers stop,
        # after in-flight requests finished (graceful stop), so workers ignore them.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    _config = config
    _load(config.default_engine)
    if config.diarize.enabled:
        _load(ENCODER)


def warm_worker(_: int) -> int:
    time.sleep(0.2)  # hold this process so the other warm-up tasks reach the others
    return os.getpid()


def run_job(job: Job) -> Outcome:
    started = time.perf_counter()
    model = _load(job.engine)
    with AudioStream(job.path, raw_format=job.raw_format) as audio:
        roles = channel_roles(job.layout, audio.info.channels)
        detection = detect(audio.blocks(), roles, lambda: model.stream(job.params), job.params.max_single_segment_ms)
        info, duration_ms = audio.info, audio.duration_ms
    assert _config is not None, "worker not initialised"
    diarize = _config.diarize.enabled if job.diarize is None else job.diarize
    if roles == [MIXED]:
        if diarize:
            from callscribe.vad.mono import split_speakers

            # A second pass: only the windows' samples are kept.
            with AudioStream(job.path, raw_format=job.raw_format) as audio:
                detection = split_speakers(detection, audio.blocks(), _load(ENCODER), _config.diarize)
        else:
            detection = replace(detection, diarization=replace(detection.diarization, reason="diarization is off"))
    return Outcome(detection, info, duration_ms, time.perf_counter() - started)


# ---------------------------------------------------------------------------- server side


class VadPool:
    def __init__(self, kind: str, workers: int, queue_size: int, config: ModelConfig) -> None:
        if kind not in POOL_KINDS:
            raise ValueError(f"pool kind must be one of {POOL_KINDS}, got {kind!r}")
        self.kind = kind
        self.workers = workers
        self.capacity = workers + queue_size
        self._config = config
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self._admitted = 0
        self._executor: Executor | None = None

    def start(self) -> None:
        """Create the workers and block until each has its default model loaded and warmed."""
        self._executor = self._new_executor()
        if self.kind == "process":
            # Processes start on demand: keep handing out short tasks until each has answered,
            # i.e. has run its initializer (model loaded and warmed).
            pids: set[int] = set()
            deadline = time.monotonic() + WARM_TIMEOUT_S
            while len(pids) < self.workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(pids)} of {self.workers} worker processes started")
                futures = [self._executor.submit(warm_worker, i) for i in range(self.workers)]
                pids.update(f.result() for f in futures)
            log.info("%d worker process(es) ready: %s", len(pids), sorted(pids))
        else:
            init_worker(self._config)
            log.info("%d worker thread(s) ready", self.workers)

    def _new_executor(self) -> Executor:
        if self.kind == "thread":
            return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vad-worker")
        # spawn, never fork: the parent runs gRPC threads, which must not be forked.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self._config, logging.getLogger().level),
        )

    @property
    def in_flight(self) -> int:
        return self._admitted

    @property
    def queued(self) -> int:
        """Admitted requests beyond the worker count: waiting for a worker (or still downloading)."""
        return max(0, self._admitted - self.workers)

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """A slot for one request, or RESOURCE_EXHAUSTED at once when workers and queue are full."""
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"VAD busy: {self.capacity - self.workers} requests queued behind {self.workers} busy worker(s); "
                "retry with backoff"
            )
        with self._lock:
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1
            self._slots.release()

    def run(self, job: Job) -> Outcome:
        """Run `job` on a worker and wait for it (call inside `admitted()`)."""
        executor = self._executor
        if executor is None:
            raise Unavailable("the VAD workers are not started yet; retry shortly")
        try:
            future: Future[Outcome] = executor.submit(run_job, job)
            return future.result()
        except BrokenProcessPool as exc:
            self._replace_broken(executor)
            raise Unavailable(
                "a VAD worker process died (out of memory?) while processing; the pool was restarted, retry"
            ) from exc

    def _replace_broken(self, broken: Executor) -> None:
        with self._lock:
            if self._executor is broken:
                log.error("worker pool broken: starting a new one")
                self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
