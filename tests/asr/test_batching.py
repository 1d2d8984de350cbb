"""The dynamic batcher (and the replica pool around it) with a fake engine: pure, no model, no server.

Timing is driven by a fake clock where it matters (`next_batch(timeout=0)` only looks); the few
real-time checks use bounds that are an order of magnitude away from the behaviour they check.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from callscribe.asr.batching import Batcher, EngineContractError, Job, bucket
from callscribe.asr.engines.base import AsrInput, AsrOutput, Hotword, InferOptions
from callscribe.asr.engines.whisper import window_count
from callscribe.asr.pool import PoolConfig, ReplicaPool, resolve_devices, visible_cuda_devices
from callscribe.kit.errors import ResourceExhausted, Unavailable

EN = InferOptions(language="en")
ZH = InferOptions(language="zh")
EN_HOT = InferOptions(language="en", hotwords=(Hotword("refund"),))
POISON = -1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(item_id: int, length: int = 1600, options: InferOptions = EN) -> Job:
    """A segment whose samples all carry `item_id` (the fake engine echoes it as text)."""
    return Job(AsrInput(np.full(length, item_id, dtype=np.float32)), options)


class FakeEngine:
    name = "fake"
    model = "fake-model"
    device = "cpu"

    def __init__(self, delay: float = 0.0, drop_one: bool = False, gate: threading.Event | None = None) -> None:
        self.delay = delay
        self.drop_one = drop_one
        self.gate = gate
        self.calls: list[tuple[list[int], InferOptions]] = []  # (ids, options) per call
        self._lock = threading.Lock()
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True

    def infer(self, batch: Sequence[AsrInput], options: InferOptions) -> list[AsrOutput]:
        ids = [int(x.samples[0]) for x in batch]
        with self._lock:
            self.calls.append((ids, options))
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        if POISON in ids:
            raise ValueError("poisoned segment")
        outputs = [AsrOutput(text=str(i), language=options.language, confidence=1.0, avg_logprob=-0.1) for i in ids]
        return outputs[:-1] if self.drop_one else outputs


def texts(futures: Sequence[Future[AsrOutput]]) -> list[str]:
    return [f.result(timeout=10).text for f in futures]


def ids_of(batch) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(p.job.input.samples[0]) for p in batch.items]


# --------------------------------------------------------------------------- forming batches


def test_batches_fill_up_to_max_size_then_wait_for_the_rest() -> None:
    clock = FakeClock()
    b = Batcher(max_batch_size=4, max_wait_s=10.0, max_queue=100, clock=clock)
    b.submit([job(i) for i in range(10)])
    first, second = b.next_batch(timeout=0), b.next_batch(timeout=0)
    assert first is not None and second is not None
    assert len(first) == 4 and len(second) == 4
    assert b.next_batch(timeout=0) is None, "2 jobs are not a full batch and have not waited 10 s"
    assert b.depth == 2
    clock.now += 10.0
    rest = b.next_batch(timeout=0)
    assert rest is not None and sorted(ids_of(rest)) == [8, 9]
    assert b.depth == 0


def test_max_wait_is_measured_from_the_oldest_job() -> None:
    clock = FakeClock()
    b = Batcher(max_batch_size=8, max_wait_s=0.02, max_queue=100, clock=clock)
    clock.now = 0.0
    b.submit([job(1)])
    clock.now = 0.015
    b.submit([job(2)])  # a younger job does not push the deadline back
    assert b.next_batch(timeout=0) is None
    clock.now = 0.019
    assert b.next_batch(timeout=0) is None
    clock.now = 0.020
    batch = b.next_batch(timeout=0)
    assert batch is not None and ids_of(batch) == [1, 2]


def test_max_wait_in_real_time_with_a_worker() -> None:
    engine = FakeEngine()
    b = Batcher(max_batch_size=8, max_wait_s=0.3, max_queue=100)
    worker = threading.Thread(target=b.serve, args=(engine.infer,), daemon=True)
    worker.start()
    try:
        started = time.monotonic()
        [alone] = b.submit([job(1)])
        assert alone.result(timeout=10).text == "1"
        waited = time.monotonic() - started
        assert 0.28 <= waited < 3.0, f"a lone job waited {waited:.3f} s for a batch (max_wait 0.3 s)"
        # A full batch does not wait at all, however long max_wait is.
        b.max_wait_s = 30.0
        started = time.monotonic()
        futures = b.submit([job(i) for i in range(8)])
        assert texts(futures) == [str(i) for i in range(8)]
        assert time.monotonic() - started < 3.0
    finally:
        b.close()
        worker.join(5)
    assert not worker.is_alive()


def test_groups_are_never_mixed_and_the_oldest_goes_first() -> None:
    clock = FakeClock()
    b = Batcher(max_batch_size=3, max_wait_s=0.01, max_queue=100, clock=clock)
    options = [EN, ZH, EN_HOT]
    for i in range(12):
        b.submit([job(i, options=options[i % 3])])
        clock.now += 0.001
    clock.now += 1.0
    batches = []
    while (batch := b.next_batch(timeout=0)) is not None:
        batches.append(batch)
    assert sum(len(x) for x in batches) == 12
    for batch in batches:
        assert {p.job.options for p in batch.items} == {batch.options}, "a batch mixed engine options"
    assert [ids_of(x) for x in batches] == [[0, 3, 6], [1, 4, 7], [2, 5, 8], [9], [10], [11]]


def test_a_full_group_is_served_before_a_waiting_one() -> None:
    clock = FakeClock()
    b = Batcher(max_batch_size=2, max_wait_s=5.0, max_queue=100, clock=clock)
    b.submit([job(0, options=ZH)])  # oldest, but alone and not due for 5 s
    b.submit([job(1), job(2)])  # full
    batch = b.next_batch(timeout=0)
    assert batch is not None and ids_of(batch) == [1, 2]
    assert b.next_batch(timeout=0) is None


def test_length_bucketing_reduces_padding_and_always_takes_the_oldest() -> None:
    rng = random.Random(7)
    lengths = [rng.randint(8000, 480000) for _ in range(64)]  # 0.5 s to 30 s
    size = 8

    def padding(batches: list[list[int]]) -> int:
        return sum(max(x) * len(x) - sum(x) for x in batches)

    fifo = [lengths[i : i + size] for i in range(0, len(lengths), size)]
    clock = FakeClock()
    b = Batcher(max_batch_size=size, max_wait_s=0.0, max_queue=1000, clock=clock)
    b.submit([job(i, length) for i, length in enumerate(lengths)])
    bucketed = []
    while (batch := b.next_batch(timeout=0)) is not None:
        waiting_oldest = min(p.seq for p in batch.items)
        assert all(waiting_oldest <= p.seq for p in batch.items)
        bucketed.append(batch.lengths)
    assert sorted(x for batch in bucketed for x in batch) == sorted(lengths)
    assert padding(bucketed) < 0.5 * padding(fifo), (padding(bucketed), padding(fifo))


def test_bucket_picks_the_tightest_run_around_the_oldest() -> None:
    clock = FakeClock()
    b = Batcher(max_batch_size=3, max_wait_s=0.0, max_queue=100, clock=clock)
    # the oldest is 500 samples long; candidates around it: [100, 480, 500], [480, 500, 520], [500, 520, 9000]
    for i, length in enumerate([500, 9000, 100, 520, 480, 10000]):
        b.submit([job(i, length)])
    group = next(iter(b._groups.values()))
    assert sorted(p.length for p in bucket(group, 3)) == [480, 500, 520]


def packed_job(item_id: int, pack_group: object, seconds: float) -> Job:
    return Job(AsrInput(np.full(int(seconds * 16000), item_id, dtype=np.float32), pack_group=pack_group), EN)


def test_window_count_is_the_packing_engines_encoder_passes() -> None:
    second = 16000
    assert window_count([]) == 0
    assert window_count([4 * second] * 7) == 1, "7 x 4 s + 6 gaps of 0.3 s fill one 30 s window"
    assert window_count([4 * second] * 8) == 2
    assert window_count([29 * second, 29 * second]) == 2
    assert window_count([70 * second]) == 3, "a 70 s segment is cut into windows of at most 30 s"


def test_a_packing_engine_batches_whole_call_channels_counted_in_windows() -> None:
    """Each call channel's segments stay in one batch (split, they would leave half-empty windows), and
    max_batch_size counts windows: 3 channels of one window each, not 3 segments."""
    clock = FakeClock()
    b = Batcher(max_batch_size=3, max_wait_s=10.0, max_queue=1000, clock=clock, cost=window_count)
    item = 0
    for call in range(4):  # a request per call: both channels' segments interleaved in time order
        jobs = []
        for _turn in range(5):
            for channel in (0, 1):
                jobs.append(packed_job(item, (call, channel), 3.0 + (item % 3)))
                item += 1
        b.submit(jobs)
    owner = {i: (i // 10, i % 2) for i in range(item)}
    seen: list[list[int]] = []
    while (batch := b.next_batch(timeout=0)) is not None:
        seen.append(ids_of(batch))
    assert [len(x) for x in seen] == [15, 15], "3 channels of 5 segments = 3 windows a batch"
    clock.now += 10.0
    rest = b.next_batch(timeout=0)
    assert rest is not None and len(rest) == 10, "the last 2 channels wait for max_wait: 2 windows are not 3"
    seen.append(ids_of(rest))
    groups_per_batch = [{owner[i] for i in ids} for ids in seen]
    assert all(len(g) <= 3 for g in groups_per_batch)
    for channel in {owner[i] for i in range(item)}:
        assert sum(channel in g for g in groups_per_batch) == 1, f"channel {channel} was split over batches"
    assert groups_per_batch[0] == {(0, 0), (0, 1), (1, 0)}, "the oldest channels go first"


def test_a_channel_bigger_than_a_batch_is_taken_in_pieces() -> None:
    clock = FakeClock()
    b = Batcher(max_batch_size=2, max_wait_s=0.0, max_queue=1000, clock=clock, cost=window_count)
    b.submit([packed_job(i, "one channel", 10.0) for i in range(12)])  # 2 of 10 s per window (3 + gaps > 30 s)
    sizes = []
    while (batch := b.next_batch(timeout=0)) is not None:
        assert window_count(batch.lengths) <= 2
        sizes.append(len(batch))
    assert sizes == [4, 4, 4], sizes


# --------------------------------------------------------------------------- failures


def test_one_poisoned_segment_fails_only_its_own_future() -> None:
    engine = FakeEngine()
    b = Batcher(max_batch_size=8, max_wait_s=0.0, max_queue=100)
    ids = [0, 1, 2, POISON, 4, 5, 6, 7]
    futures = b.submit([job(i) for i in ids])
    batch = b.next_batch(timeout=0)
    assert batch is not None and len(batch) == 8
    b.execute(batch, engine.infer)
    for i, future in zip(ids, futures, strict=True):
        if i == POISON:
            with pytest.raises(ValueError, match="poisoned"):
                future.result(timeout=1)
        else:
            assert future.result(timeout=1).text == str(i)
    sizes = [len(call_ids) for call_ids, _ in engine.calls]
    assert sizes[0] == 8 and sizes.count(1) == 2, sizes  # halves down to the bad one and its neighbour
    assert len(sizes) <= 1 + 2 * 3, "more retries than a binary split needs"


def test_an_engine_returning_the_wrong_count_fails_the_batch() -> None:
    engine = FakeEngine(drop_one=True)
    b = Batcher(max_batch_size=4, max_wait_s=0.0, max_queue=100)
    futures = b.submit([job(i) for i in range(4)])
    batch = b.next_batch(timeout=0)
    assert batch is not None
    b.execute(batch, engine.infer, "fake")
    for future in futures:
        with pytest.raises(EngineContractError, match=r"returned 3 result\(s\) for a batch of 4"):
            future.result(timeout=1)
    assert len(engine.calls) == 1, "a broken engine contract is not retried"


def test_a_worker_dying_mid_batch_resolves_its_futures() -> None:
    class Dying(BaseException):
        pass

    def infer(batch: Sequence[AsrInput], options: InferOptions) -> list[AsrOutput]:
        raise Dying()

    b = Batcher(max_batch_size=4, max_wait_s=0.0, max_queue=100)
    futures = b.submit([job(i) for i in range(3)])
    batch = b.next_batch(timeout=0)
    assert batch is not None
    with pytest.raises(Dying):
        b.execute(batch, infer)
    for future in futures:
        with pytest.raises(Unavailable):
            future.result(timeout=1)


def test_a_full_queue_refuses_at_once_and_all_or_nothing() -> None:
    b = Batcher(max_batch_size=4, max_wait_s=10.0, max_queue=5)
    b.submit([job(i) for i in range(3)])
    started = time.monotonic()
    with pytest.raises(ResourceExhausted, match="3 segments queued"):
        b.submit([job(i) for i in range(3)])
    assert time.monotonic() - started < 0.5
    assert b.depth == 3, "a refused submit must queue nothing"
    b.submit([job(3), job(4)])  # exactly fits
    assert b.depth == 5


def test_close_resolves_every_waiting_future_and_lets_running_batches_finish() -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    b = Batcher(max_batch_size=2, max_wait_s=0.0, max_queue=100)
    worker = threading.Thread(target=b.serve, args=(engine.infer,), daemon=True)
    worker.start()
    running = b.submit([job(0), job(1)])
    deadline = time.monotonic() + 5
    while not engine.calls and time.monotonic() < deadline:  # the worker holds the first batch
        time.sleep(0.005)
    waiting = b.submit([job(i) for i in range(2, 7)])
    assert b.close() == 5
    for future in waiting:
        assert future.done()
        with pytest.raises(Unavailable, match="shutting down"):
            future.result(timeout=0)
    gate.set()
    assert texts(running) == ["0", "1"]
    worker.join(5)
    assert not worker.is_alive()
    with pytest.raises(Unavailable):
        b.submit([job(9)])
    assert b.next_batch(timeout=0) is None


def test_a_cancelled_job_leaves_the_queue() -> None:
    b = Batcher(max_batch_size=4, max_wait_s=0.0, max_queue=3)
    futures = b.submit([job(i) for i in range(3)])
    assert futures[1].cancel()
    assert b.depth == 2
    b.submit([job(3)])  # its slot is free again
    batch = b.next_batch(timeout=0)
    assert batch is not None and sorted(ids_of(batch)) == [0, 2, 3]


# --------------------------------------------------------------------------- concurrency


def test_concurrent_submitters_each_get_their_own_results() -> None:
    engine = FakeEngine(delay=0.01)
    b = Batcher(max_batch_size=8, max_wait_s=0.005, max_queue=1000)
    workers = [threading.Thread(target=b.serve, args=(engine.infer,), daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def caller(n: int) -> None:
        try:
            mine = [n * 100 + k for k in range(5)]
            options = EN if n % 2 else ZH
            barrier.wait()
            futures = b.submit([job(i, length=1600 * (1 + k), options=options) for k, i in enumerate(mine)])
            results[n] = texts(futures)
            assert all(f.result().language == options.language for f in futures)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(20)
    b.close()
    for w in workers:
        w.join(5)
    assert not errors, errors
    for n in range(16):
        assert results[n] == [str(n * 100 + k) for k in range(5)]
    sizes = [len(ids) for ids, _ in engine.calls]
    assert sum(sizes) == 80
    assert max(sizes) > 5, f"no batch ever took segments of two requests: {sizes}"


def test_observer_sees_depth_batches_and_audio() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.depths: list[int] = []
            self.batches: list[int] = []
            self.inferences: list[tuple[int, float, bool]] = []

        def queue_depth(self, depth: int) -> None:
            self.depths.append(depth)

        def batch_formed(self, size: int) -> None:
            self.batches.append(size)

        def inference(self, size: int, seconds: float, audio_seconds: float, ok: bool) -> None:
            self.inferences.append((size, audio_seconds, ok))

    rec = Recorder()
    b = Batcher(max_batch_size=4, max_wait_s=0.0, max_queue=100, observer=rec)
    b.submit([job(1, 16000), job(POISON, 8000), job(3, 32000)])
    batch = b.next_batch(timeout=0)
    assert batch is not None
    b.execute(batch, FakeEngine().infer)
    assert rec.depths == [3, 0]
    assert rec.batches == [3]
    assert (3, 0.0, False) == rec.inferences[0]
    assert sum(audio for _, audio, ok in rec.inferences if ok) == pytest.approx(3.0)  # 1 s + 2 s, not the bad one


# --------------------------------------------------------------------------- devices and the replica pool


def test_devices_cpu_and_auto_without_gpu(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_devices("cpu", "whisper", count=lambda _: 2) == ["cpu"]
    with caplog.at_level(logging.WARNING, logger="callscribe.asr.pool"):
        assert resolve_devices("auto", "whisper", count=lambda _: 0) == ["cpu"]
    assert "no CUDA device visible: ASR runs on the CPU" in caplog.text


def test_devices_auto_and_explicit_with_gpus() -> None:
    assert resolve_devices("auto", "funasr", count=lambda _: 2) == ["cuda:0", "cuda:1"]
    assert resolve_devices("cuda:1,cuda:0", "whisper", count=lambda _: 2) == ["cuda:1", "cuda:0"]
    with pytest.raises(ValueError, match="cuda:2"):
        resolve_devices("cuda:0,cuda:2", "whisper", count=lambda _: 2)


def test_hidden_gpus_count_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_cuda_devices("whisper") == 0
    assert visible_cuda_devices("funasr") == 0


def test_pool_has_one_warm_replica_and_worker_per_device_slot(tmp_path: Path) -> None:
    loaded: list[tuple[str, int]] = []
    engines: list[FakeEngine] = []

    def loader(name: str, model: str, device: str, threads: int, cache_dir: Path) -> FakeEngine:
        loaded.append((device, threads))
        engine = FakeEngine(delay=0.05)
        engine.device = device
        engines.append(engine)
        return engine

    b = Batcher(max_batch_size=1, max_wait_s=0.0, max_queue=100)
    pool = ReplicaPool(PoolConfig("fake", "m", ["cuda:0", "cuda:1"], 2, 0, tmp_path), b, loader)
    assert not pool.ready
    pool.start()
    try:
        assert pool.ready
        assert sorted(loaded) == [("cuda:0", 1)] * 2 + [("cuda:1", 1)] * 2
        assert all(e.warmed for e in engines)
        threads = {r.thread for r in pool.replicas}
        assert len(threads) == 4 and all(t is not None and t.is_alive() for t in threads)
        futures = b.submit([job(i) for i in range(8)])
        assert texts(futures) == [str(i) for i in range(8)]
        assert sum(1 for e in engines if e.calls) >= 2, "the work was not spread over the replicas"
    finally:
        pool.shutdown(timeout=5)
    assert all(r.thread is not None and not r.thread.is_alive() for r in pool.replicas)


def test_pool_start_fails_when_a_replica_cannot_load(tmp_path: Path) -> None:
    def loader(name: str, model: str, device: str, threads: int, cache_dir: Path) -> FakeEngine:
        raise FileNotFoundError(f"no model at {model}")

    pool = ReplicaPool(PoolConfig("fake", "/missing", ["cpu"], 1, 2, tmp_path), Batcher(), loader)
    with pytest.raises(FileNotFoundError, match="/missing"):
        pool.start()
    assert not pool.ready
