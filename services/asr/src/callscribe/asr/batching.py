"""Dynamic batching of speech segments from concurrent requests onto engine replicas.

Requests `submit` jobs (a segment, the engine options, a group key) and get one future per job.
Replica workers loop on `next_batch` + `execute`: a batch holds up to `max_batch_size` jobs of ONE
group (the engine takes one set of options per call, so language, hotwords and word timestamps
must match), and is handed out when it is full or when its oldest job has waited `max_wait_s`,
whichever comes first (a condition wait until that deadline or the next submit; no polling).
Among groups that are ready, the one whose oldest job is oldest goes first.

Inside a group, jobs are bucketed by length: the group's jobs sorted by duration, the batch is the
contiguous run of `max_batch_size` that contains the oldest job and spans the smallest range of
durations, so padded engines (every input padded to the longest) waste little compute and the
oldest job is always served (nothing starves).

An engine that packs segments into shared windows (Whisper) gives a `cost`: how many batch slots
(windows) one pack group's segments take. Then `max_batch_size` counts slots, not segments, and a
batch takes whole pack groups (a call channel's segments) in arrival order: splitting a channel's
segments over batches, or bucketing them by length among other calls, would leave half-empty
windows, each costing a full encoder pass. A pack group bigger than a batch is taken in pieces.

A failing `infer` is retried on the two halves of the batch, recursively down to single jobs, so
one bad segment fails only its own future. An engine that returns another number of outputs than
inputs breaks its contract: the whole batch fails with `EngineContractError` (no retry: it is a
bug, not a bad input). Every future is resolved, with a result or an exception, also at `close()`
(waiting jobs fail with UNAVAILABLE) and when a worker dies mid-batch.

The queue is bounded in segments: a submit that does not fit raises RESOURCE_EXHAUSTED at once,
all or nothing (a request is never half queued). The ideas follow Ray Serve's batch queue (wait
for the first item, then up to a timeout for a full batch); the code is our own.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from callscribe.asr.engines.base import SAMPLE_RATE, AsrInput, AsrOutput, InferOptions
from callscribe.kit.errors import ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

Infer = Callable[[Sequence[AsrInput], InferOptions], list[AsrOutput]]
Cost = Callable[[Sequence[int]], int]  # batch slots taken by one pack group's segments (sample counts)


class EngineContractError(RuntimeError):
    """The engine returned a different number of outputs than it was given inputs."""


@dataclass(frozen=True)
class Job:
    """One segment to transcribe. Jobs batch together only with jobs of the same `key`."""

    input: AsrInput
    options: InferOptions
    group: Hashable | None = None  # None: the options themselves

    @property
    def key(self) -> Hashable:
        return self.options if self.group is None else (self.group, self.options)


class BatchObserver(Protocol):
    """Metrics hooks; called with the batcher's lock held or from a worker: keep them cheap."""

    def queue_depth(self, depth: int) -> None: ...

    def batch_formed(self, size: int) -> None: ...

    def inference(self, size: int, seconds: float, audio_seconds: float, ok: bool) -> None: ...


class NullObserver:
    def queue_depth(self, depth: int) -> None:
        pass

    def batch_formed(self, size: int) -> None:
        pass

    def inference(self, size: int, seconds: float, audio_seconds: float, ok: bool) -> None:
        pass


@dataclass(eq=False)
class _Pending:
    seq: int
    job: Job
    future: Future[AsrOutput]
    enqueued: float
    length: int  # samples

    @property
    def audio_seconds(self) -> float:
        return self.length / SAMPLE_RATE


@dataclass
class Batch:
    options: InferOptions
    items: list[_Pending] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> list[int]:
        return [p.length for p in self.items]


class Batcher:
    def __init__(
        self,
        max_batch_size: int = 16,
        max_wait_s: float = 0.02,
        max_queue: int = 256,
        *,
        clock: Callable[[], float] = time.monotonic,
        observer: BatchObserver | None = None,
        cost: Cost | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_s >= 0")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._clock = clock
        self._observer: BatchObserver = observer or NullObserver()
        self._cost = cost
        self._cond = threading.Condition()  # an RLock: future callbacks may re-enter
        self._groups: dict[Hashable, list[_Pending]] = {}  # each in arrival order
        self._depth = 0
        self._seq = 0
        self._closed = False

    # ------------------------------------------------------------------ callers

    @property
    def depth(self) -> int:
        """Segments waiting for a replica (not counting those being inferred)."""
        return self._depth

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, jobs: Sequence[Job]) -> list[Future[AsrOutput]]:
        """Queue every job or none: RESOURCE_EXHAUSTED at once when they do not all fit."""
        if not jobs:
            return []
        with self._cond:
            if self._closed:
                raise Unavailable("the ASR is shutting down: retry on another instance")
            if self._depth + len(jobs) > self.max_queue:
                raise ResourceExhausted(
                    f"ASR busy: {self._depth} segments queued, {len(jobs)} more would exceed the limit of "
                    f"{self.max_queue}; retry with backoff"
                )
            now = self._clock()
            pending = []
            for job in jobs:
                self._seq += 1
                p = _Pending(self._seq, job, Future(), now, len(job.input.samples))
                self._groups.setdefault(job.key, []).append(p)
                pending.append(p)
            self._depth += len(pending)
            self._observer.queue_depth(self._depth)
            self._cond.notify_all()
        for p in pending:  # outside the lock: a cancel by the caller takes the job out of the queue
            p.future.add_done_callback(functools.partial(self._on_done, p))
        return [p.future for p in pending]

    def _on_done(self, pending: _Pending, future: Future[AsrOutput]) -> None:
        if not future.cancelled():
            return
        with self._cond:
            group = self._groups.get(pending.job.key)
            if group is not None and pending in group:
                group.remove(pending)
                if not group:
                    del self._groups[pending.job.key]
                self._depth -= 1
                self._observer.queue_depth(self._depth)

    def close(self) -> int:
        """Refuse new jobs and fail every waiting one with UNAVAILABLE; returns how many failed.

        Batches already handed to a worker finish normally (their futures get results)."""
        with self._cond:
            self._closed = True
            waiting = [p for group in self._groups.values() for p in group]
            self._groups.clear()
            self._depth = 0
            self._observer.queue_depth(0)
            self._cond.notify_all()
        error = Unavailable("the ASR is shutting down: the segment was not transcribed, retry on another instance")
        failed = 0
        for p in waiting:
            if p.future.set_running_or_notify_cancel():
                p.future.set_exception(error)
                failed += 1
        return failed

    # ------------------------------------------------------------------ workers

    def next_batch(self, timeout: float | None = None) -> Batch | None:
        """Block until a batch is ready and take it; None when closed or after `timeout` seconds.

        `timeout=0` only looks (tests drive it with a fake clock)."""
        with self._cond:
            give_up = None if timeout is None else self._clock() + timeout
            while not self._closed:
                now = self._clock()
                batch = self._take_ready(now)
                if batch is not None:
                    return batch
                wake = [g[0].enqueued + self.max_wait_s for g in self._groups.values()]
                if give_up is not None:
                    wake.append(give_up)
                    if now >= give_up:
                        return None
                self._cond.wait(None if not wake else max(0.0, min(wake) - now))
            return None

    def _take_ready(self, now: float) -> Batch | None:
        while True:
            ready = [
                (group[0].seq, key)
                for key, group in self._groups.items()
                if self._full(group) or now - group[0].enqueued >= self.max_wait_s
            ]
            if not ready:
                return None
            _, key = min(ready)
            group = self._groups[key]
            if self._cost is None:
                taken = bucket(group, self.max_batch_size)
            else:
                taken = take_packs(group, self.max_batch_size, self._cost)
            chosen = set(map(id, taken))
            rest = [p for p in group if id(p) not in chosen]
            if rest:
                self._groups[key] = rest
            else:
                del self._groups[key]
            self._depth -= len(taken)
            self._observer.queue_depth(self._depth)
            # Cancelled jobs (the caller went away) are dropped here; the rest can no longer be cancelled.
            items = [p for p in taken if p.future.set_running_or_notify_cancel()]
            if items:
                self._observer.batch_formed(len(items))
                return Batch(items[0].job.options, items)

    def _full(self, group: list[_Pending]) -> bool:
        if self._cost is None or len(group) < self.max_batch_size:  # a segment takes at most one slot
            return len(group) >= self.max_batch_size
        return sum(self._cost(unit_lengths(unit)) for unit in pack_units(group)) >= self.max_batch_size

    def execute(self, batch: Batch, infer: Infer, engine: str = "engine") -> None:
        """Run `batch` through `infer` and resolve every one of its futures (split on failure)."""
        try:
            self._run(batch.options, batch.items, infer, engine)
        except BaseException as exc:  # the worker itself is dying: leave no future unresolved
            error = Unavailable(f"the ASR worker stopped while transcribing ({type(exc).__name__}); retry")
            for p in batch.items:
                if not p.future.done():
                    p.future.set_exception(error)
            raise

    def _run(self, options: InferOptions, items: list[_Pending], infer: Infer, engine: str) -> None:
        started = time.perf_counter()
        try:
            outputs = infer([p.job.input for p in items], options)
        except Exception as exc:  # noqa: BLE001 - whatever the engine raises, isolate the bad segment
            self._observer.inference(len(items), time.perf_counter() - started, 0.0, False)
            if len(items) == 1:
                log.warning("%s failed on one segment (%.2f s): %s: %s", engine, items[0].audio_seconds,
                            type(exc).__name__, exc)  # fmt: skip
                items[0].future.set_exception(exc)
                return
            half = len(items) // 2
            log.info("%s failed on a batch of %d (%s): retrying halves of %d and %d",
                     engine, len(items), type(exc).__name__, half, len(items) - half)  # fmt: skip
            self._run(options, items[:half], infer, engine)
            self._run(options, items[half:], infer, engine)
            return
        seconds = time.perf_counter() - started
        if not isinstance(outputs, list) or len(outputs) != len(items):
            count = len(outputs) if isinstance(outputs, list) else type(outputs).__name__
            error = EngineContractError(
                f"the {engine} engine returned {count} result(s) for a batch of {len(items)} segments "
                "(it must return exactly one per segment): the batch failed, report this as a bug"
            )
            log.error("%s", error)
            self._observer.inference(len(items), seconds, 0.0, False)
            for p in items:
                p.future.set_exception(error)
            return
        self._observer.inference(len(items), seconds, sum(p.audio_seconds for p in items), True)
        for p, out in zip(items, outputs, strict=True):
            p.future.set_result(out)

    def serve(self, infer: Infer, engine: str = "engine") -> None:
        """A replica worker's loop: take batches and run them until `close()`."""
        while True:
            batch = self.next_batch()
            if batch is None:
                return
            self.execute(batch, infer, engine)


def bucket(group: list[_Pending], size: int) -> list[_Pending]:
    """Up to `size` jobs of `group` (arrival order): all of them, or the contiguous run by length that
    contains the oldest job and spans the smallest range of lengths (ties: the older run)."""
    if len(group) <= size:
        return list(group)
    order = sorted(group, key=lambda p: (p.length, p.seq))
    oldest = min(range(len(order)), key=lambda i: order[i].seq)
    first = max(0, oldest - size + 1)
    last = min(oldest, len(order) - size)
    best = min(
        range(first, last + 1),
        key=lambda s: (order[s + size - 1].length - order[s].length, sum(p.seq for p in order[s : s + size])),
    )
    return order[best : best + size]


def pack_units(group: list[_Pending]) -> list[list[_Pending]]:
    """The group's jobs by pack group, in order of each pack group's first job."""
    units: dict[Hashable, list[_Pending]] = {}
    for p in group:
        units.setdefault(p.job.input.pack_group, []).append(p)
    return list(units.values())


def unit_lengths(unit: list[_Pending]) -> list[int]:
    return [p.length for p in unit]


def take_packs(group: list[_Pending], size: int, cost: Cost) -> list[_Pending]:
    """Whole pack groups, oldest first, while their slots fit in `size`; the oldest is always taken
    (the part of it that fits when it alone is bigger than a batch)."""
    taken: list[_Pending] = []
    used = 0
    for unit in pack_units(group):
        need = cost(unit_lengths(unit))
        if used + need <= size:
            taken += unit
            used += need
        elif not taken:
            count = 1
            while count < len(unit) and cost(unit_lengths(unit[: count + 1])) <= size:
                count += 1
            return unit[:count]
        if used >= size:
            break
    return taken
