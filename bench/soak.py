"""Soak and chaos: many calls of mixed lengths through the whole local stack while services die.

    python bench/soak.py [--calls 200] [--min-s 10] [--max-s 1800] [--audio-min 240] [--uploaders 32]
                         [--searchers 2] [--chaos-every-s 30] [--chaos-max 12] [--max-wall-s 7200] [--spread-s 0]
                         [--json OUT]

Starts the local stack (`callscribe.stack.up`, as `make demo` does: SeaweedFS, Redis with its
append-only file, the Elasticsearch-API server, ingest, VAD, ASR (Whisper base on CPU), indexer and the
worker) in a temp dir, then at once:
- `--uploaders` threads upload `--calls` calls whose lengths run from `--min-s` to `--max-s` (one of
  them the longest), skewed towards short calls so that all of them hold `--audio-min` minutes (each call is built from
  the pipeline bench's synthetic calls, cut or joined, with a unique tail so every call is new bytes);
  an upload refused as UNAVAILABLE (ingest being restarted) is sent again; only an acknowledged upload
  counts, and every acknowledged one must end indexed;
- `--searchers` threads search the indexer in a loop;
- a chaos loop: every `--chaos-every-s` seconds, up to `--chaos-max` times, `kill -9` of a random service
  (ingest, vad, asr, indexer) or of the worker, restarted at once through `stack.restart`, or a Redis
  restart (SIGTERM, then the same port and append-only file). Loopback only, bounded in count and time.
It waits until every acknowledged call is indexed (or dead-lettered) or `--max-wall-s` passes, then
prints: acknowledged / indexed / dead-lettered / not indexed, duplicates (a recording with more than one
call document), p50/p99 time-to-indexed for calls under 1 minute and for all, upload p50/p99 latency,
peak RSS per service, and search latency p50/p99 under load. Targets: every acknowledged call indexed,
0 dead letters, 0 duplicates. Exit 0 when they hold, 1 otherwise (a soak is a check as well as figures).

`run()` is what tests/pipeline/test_soak.py runs in CI at a reduced size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
import soundfile as sf
from elasticsearch import Elasticsearch

from callscribe.cli.uploads import file_sha256
from callscribe.stack import stack
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2, indexer_pb2_grpc, ingest_pb2, ingest_pb2_grpc

TENANT = "acme"
SERVICES = ("ingest", "vad", "asr", "indexer", "worker")
CHAOS_TARGETS = (*SERVICES, "redis")
SEARCHES = ("refund", "order", "address", "thank you", "退款", "")


@dataclass
class Config:
    calls: int = 200
    min_s: float = 10.0
    max_s: float = 1800.0
    audio_min: float = 240.0
    uploaders: int = 32
    searchers: int = 2
    chaos_every_s: float = 30.0
    chaos_max: int = 12
    max_wall_s: float = 7200.0
    spread_s: float = 0.0  # uploads start spread over this many seconds (a day's calls trickle in)
    seed: int = 20261205


@dataclass
class Report:
    config: dict[str, Any]
    acknowledged: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    not_indexed: int = 0
    duplicates: int = 0
    upload_retries: int = 0
    chaos: list[str] = field(default_factory=list)
    audio_minutes: float = 0.0
    wall_s: float = 0.0
    time_to_indexed_short_s: dict[str, float] = field(default_factory=dict)
    time_to_indexed_all_s: dict[str, float] = field(default_factory=dict)
    upload_latency_s: dict[str, float] = field(default_factory=dict)
    search_latency_ms: dict[str, float] = field(default_factory=dict)
    searches: int = 0
    search_errors: int = 0
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.acknowledged > 0
            and self.indexed == self.acknowledged
            and self.dead_lettered == 0
            and self.duplicates == 0
        )


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": q(0.5), "p99": q(0.99), "max": ordered[-1]}


# ----------------------------------------------------------------------------------------- calls


def _lengths(cfg: Config, rng: random.Random) -> list[float]:
    """Lengths from `min_s` to `max_s` that hold `audio_min` minutes in all: u uniform in [0, 1] gives
    min * (max/min) ** (u ** k), log-uniform for k = 1, more short calls for larger k; k is chosen (by
    bisection) so the total fits, so a few calls still come near `max_s` as call centers see them."""
    draws = sorted(rng.random() for _ in range(cfg.calls))
    draws[-1] = 1.0  # one call of the longest length, whatever the draw
    ratio = cfg.max_s / cfg.min_s
    target = cfg.audio_min * 60

    def total(k: float) -> float:
        return sum(cfg.min_s * ratio ** (u**k) for u in draws)

    low, high = 0.05, 64.0
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if total(mid) > target else (low, mid)
    k = math.sqrt(low * high)
    lengths = [cfg.min_s * ratio ** (u**k) for u in draws]
    rng.shuffle(lengths)
    return lengths


def make_calls(cfg: Config, out: Path, sources: list[Path]) -> list[tuple[Path, float]]:
    """`cfg.calls` stereo WAVs built from `sources` (16 kHz stereo synthetic calls): each cut from or joined
    out of them to its length, with a unique 20 ms tail of low noise so that no two are the same bytes."""
    rng = random.Random(cfg.seed)
    pool = [sf.read(str(p), dtype="int16", always_2d=True)[0] for p in sources]
    rate = sf.info(str(sources[0])).samplerate
    out.mkdir(parents=True, exist_ok=True)
    calls = []
    for i, seconds in enumerate(_lengths(cfg, rng)):
        frames = int(seconds * rate)
        parts, have = [], 0
        while have < frames:
            piece = pool[rng.randrange(len(pool))]
            parts.append(piece[: frames - have])
            have += len(parts[-1])
        tail = np.random.default_rng(cfg.seed + i).integers(-40, 40, (rate // 50, 2), dtype=np.int16)
        path = out / f"soak-{i:03d}.wav"
        sf.write(str(path), np.concatenate([*parts, tail]), rate, subtype="PCM_16")
        calls.append((path, frames / rate))
    return calls


def _upload(
    stub: ingest_pb2_grpc.IngestServiceStub, token: str, path: Path, index: int
) -> ingest_pb2.UploadRecordingResponse:
    meta = c.RecordingMetadata(
        call_id=path.stem,
        agent_id=f"agent-{index % 7}",
        channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT if index % 2 == 0 else c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
        language=c.LANGUAGE_EN,
        filename=path.name,
    )
    data = path.read_bytes()
    step = 1024 * 1024

    def messages():  # type: ignore[no-untyped-def]
        yield ingest_pb2.UploadRecordingRequest(metadata=meta, sha256=file_sha256(path), size_bytes=len(data))
        for at in range(0, len(data), step):
            yield ingest_pb2.UploadRecordingRequest(chunk=data[at : at + step])

    return stub.UploadRecording(messages(), metadata=[("authorization", f"Bearer {token}")], timeout=300)


# ----------------------------------------------------------------------------------------- the run


class _Peaks:
    """Peak RSS per process name of the stack (PIDs re-read every sample: restarted processes count)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):  # the state file is rewritten by restarts: read it next time
                state = json.loads((self.home / "stack.json").read_text())
                for name, entry in state["processes"].items():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        proc = psutil.Process(entry["pid"])
                        rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
                        self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {name: rss / 2**20 for name, rss in sorted(self.peaks.items())}


def _chaos(home: Path, cfg: Config, stop: threading.Event, log: list[str], rng: random.Random) -> None:
    started = time.monotonic()
    while len(log) < cfg.chaos_max and not stop.wait(cfg.chaos_every_s):
        target = rng.choice(CHAOS_TARGETS)
        at = time.monotonic() - started
        try:
            if target != "redis":
                state = stack.status(home)
                os.killpg(state["processes"][target]["pid"], signal.SIGKILL)  # the whole process group
            stack.restart(home, target)
            log.append(f"{at:.0f}s: {'restarted redis' if target == 'redis' else 'kill -9 ' + target}")
        except Exception as exc:  # noqa: BLE001 - recorded: a restart that fails is a finding of the soak
            log.append(f"{at:.0f}s: {target}: restart FAILED: {exc}")


def run(cfg: Config, sources: list[Path], work: Path, say: Callable[[str], None] = print) -> Report:
    report = Report(config=asdict(cfg))
    calls = make_calls(cfg, work / "calls", sources)
    report.audio_minutes = sum(s for _, s in calls) / 60
    say(f"  {len(calls)} calls, {report.audio_minutes:.1f} min of audio; starting the stack ...")
    home = work / "stack"
    state = stack.up(home, prometheus=False)
    rng = random.Random(cfg.seed)
    stop = threading.Event()
    peaks = _Peaks(home)
    token = state["tenants"][TENANT]
    auth = [("authorization", f"Bearer {token}")]
    ingest = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(state["grpc"]["ingest"]))
    indexer = indexer_pb2_grpc.IndexerServiceStub(grpc.insecure_channel(state["grpc"]["indexer"]))
    acked: dict[str, tuple[float, float]] = {}  # recording id -> (acknowledged at, seconds of audio)
    upload_s: list[float] = []
    search_ms: list[float] = []
    lock = threading.Lock()
    counters = {"retries": 0, "searches": 0, "search_errors": 0}

    def upload_one(item: tuple[int, tuple[Path, float]]) -> None:
        index, (path, seconds) = item
        start_at = begun + index * cfg.spread_s / max(1, len(calls))
        time.sleep(max(0.0, start_at - time.monotonic()))
        for _ in range(60):
            started = time.perf_counter()
            try:
                ack = _upload(ingest, token, path, index)
            except grpc.RpcError as exc:
                if exc.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.CANCELLED,
                ):
                    with lock:
                        counters["retries"] += 1
                    time.sleep(1.0)
                    continue
                with lock:
                    report.failures.append(f"upload {path.name}: {exc.code().name}: {exc.details()}")
                return
            with lock:
                upload_s.append(time.perf_counter() - started)
                acked.setdefault(ack.recording_id, (time.monotonic(), seconds))
            return
        with lock:
            report.failures.append(f"upload {path.name}: still refused after 60 tries")

    def search_loop() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                indexer.Search(
                    indexer_pb2.SearchRequest(query=rng.choice(SEARCHES), page_size=20), metadata=auth, timeout=30
                )
            except grpc.RpcError:
                with lock:
                    counters["search_errors"] += 1
            else:
                with lock:
                    search_ms.append((time.perf_counter() - started) * 1000)
            with lock:
                counters["searches"] += 1
            time.sleep(0.2)

    begun = time.monotonic()
    threads = [threading.Thread(target=search_loop, daemon=True) for _ in range(cfg.searchers)]
    threads.append(threading.Thread(target=_chaos, args=(home, cfg, stop, report.chaos, rng), daemon=True))
    for t in threads:
        t.start()
    try:
        with ThreadPoolExecutor(cfg.uploaders) as pool:
            list(pool.map(upload_one, enumerate(calls)))
        say(f"  {len(acked)} uploads acknowledged after {time.monotonic() - begun:.0f} s; waiting for the pipeline ...")
        done: dict[str, float] = {}
        failed: dict[str, str] = {}
        last = 0.0
        while len(done) + len(failed) < len(acked) and time.monotonic() - begun < cfg.max_wall_s:
            for rec_id in [r for r in acked if r not in done and r not in failed]:
                try:
                    rec = ingest.GetRecording(
                        ingest_pb2.GetRecordingRequest(recording_id=rec_id), metadata=auth, timeout=10
                    )
                except grpc.RpcError:
                    break  # ingest is being restarted: ask again next round
                if rec.state == c.PIPELINE_STATE_DONE:
                    done[rec_id] = time.monotonic()
                elif rec.state in (c.PIPELINE_STATE_FAILED, c.PIPELINE_STATE_NOT_ANALYSABLE):
                    failed[rec_id] = rec.state_detail
            if time.monotonic() - last > 30:
                say(
                    f"  {len(done)}/{len(acked)} indexed after {time.monotonic() - begun:.0f} s; "
                    f"chaos so far: {len(report.chaos)}"
                )
                last = time.monotonic()
            time.sleep(1.0)
        stop.set()
        report.wall_s = time.monotonic() - begun
        report.acknowledged = len(acked)
        report.indexed = len(done)
        report.dead_lettered = len(failed)
        report.not_indexed = len(acked) - len(done) - len(failed)
        report.failures += [f"{rec_id}: {why}" for rec_id, why in failed.items()]
        waits = {r: done[r] - acked[r][0] for r in done}
        report.time_to_indexed_all_s = _quantiles(list(waits.values()))
        report.time_to_indexed_short_s = _quantiles([w for r, w in waits.items() if acked[r][1] < 60])
        report.duplicates = _duplicates(state, list(done))
    finally:
        stop.set()
        report.peak_rss_mib = peaks.stop()
        stack.down(home)
    report.upload_retries = counters["retries"]
    report.upload_latency_s = _quantiles(upload_s)
    report.search_latency_ms = _quantiles(search_ms)
    report.searches = counters["searches"]
    report.search_errors = counters["search_errors"]
    return report


def _duplicates(state: dict[str, Any], ids: list[str]) -> int:
    """Recordings with more than one call document, or whose utterance count disagrees with their call."""
    es = Elasticsearch(state["elasticsearch"]["url"], request_timeout=30)
    calls, utterances = f"callscribe-calls-{TENANT}", f"callscribe-utterances-{TENANT}"
    es.indices.refresh(index=[calls, utterances])
    bad = 0
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        found = es.search(index=calls, query={"terms": {"recording_id": batch}}, size=len(batch) * 2)
        seen: dict[str, int] = {}
        for hit in found["hits"]["hits"]:
            seen[hit["_source"]["recording_id"]] = seen.get(hit["_source"]["recording_id"], 0) + 1
        bad += sum(1 for n in seen.values() if n > 1)
    return bad


def print_report(report: Report) -> None:
    def q(d: dict[str, float], unit: str) -> str:
        return (
            f"p50 {d['p50']:.1f}{unit}, p99 {d['p99']:.1f}{unit}, max {d['max']:.1f}{unit} (n={d['n']:.0f})"
            if d
            else "n/a"
        )

    print(
        f"== soak: {report.acknowledged} acknowledged, {report.audio_minutes:.1f} min of audio, "
        f"wall {report.wall_s:.0f} s"
    )
    print(
        f"indexed {report.indexed}, dead-lettered {report.dead_lettered}, not indexed {report.not_indexed}, "
        f"duplicates {report.duplicates}  -> {'PASS' if report.ok else 'FAIL'}"
    )
    print(f"chaos ({len(report.chaos)}): " + "; ".join(report.chaos))
    print(f"time to indexed, calls under 1 min: {q(report.time_to_indexed_short_s, ' s')}")
    print(f"time to indexed, all calls: {q(report.time_to_indexed_all_s, ' s')}")
    print(
        f"upload latency: {q(report.upload_latency_s, ' s')} ({report.upload_retries} retries while ingest restarted)"
    )
    print(
        f"search latency under load: {q(report.search_latency_ms, ' ms')} "
        f"({report.searches} searches, {report.search_errors} errors)"
    )
    print("peak RSS MiB: " + ", ".join(f"{n} {v:.0f}" for n, v in report.peak_rss_mib.items()))
    for line in report.failures[:20]:
        print(f"  ! {line}")


def pipeline_sources() -> list[Path]:
    """The pipeline bench's synthetic calls (generated and cached by it; English, 1-3 min)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline import make_calls as pipeline_calls

    return [path for path, language, _, _ in pipeline_calls(12, 60.0, 180.0) if language == "en"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cfg = Config()
    for name, value in asdict(cfg).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cfg = Config(**{name: getattr(args, name) for name in asdict(cfg)})
    print("preparing source calls (the pipeline bench's cache) ...", flush=True)
    sources = pipeline_sources()
    with tempfile.TemporaryDirectory(prefix="callscribe-soak-") as work:
        report = run(cfg, sources, Path(work), say=lambda line: print(line, flush=True))
    report_dict = asdict(report) | {
        "ok": report.ok,
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
    }
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report_dict, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
