"""Ingest benchmark: UploadRecording throughput vs a raw S3 put_object, and server memory on a big upload.

    python bench/ingest.py [--quick] [--big-mb 1024] [--rounds 1] [--scale 1] [--s3-cpus LIST] [--json OUT]

Starts SeaweedFS, Redis and the real ingest service (the stack launcher code) in a temp dir, then:
1. uploads 10 MiB WAV files through ingest with 1, 8 and 32 concurrent streams, and the same sizes
   (new unique bytes) with the minio client's put_object to a locked bucket of the same SeaweedFS;
2. uploads --big-mb WAVs through ingest (sampling the server's RSS) and raw.
Each level starts with an untimed round of `streams` uploads per path; then each path's uploads run
in two halves, ingest, raw, raw, ingest, with dirty pages flushed before each timed batch, so drift
during the run falls on both paths alike.
MB means MiB (2**20 bytes) throughout. Exit 0 even on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
import urllib3
from minio import Minio
from minio.commonconfig import GOVERNANCE
from minio.error import MinioException
from minio.retention import Retention

from callscribe.cli.uploads import CHUNK_BYTES, UploadMessage, upload_method
from callscribe.cli.uploads import upload_messages as cli_upload_messages
from callscribe.stack import servers
from callscribe.stack.procs import SERVER_STOP_S, ManagedProcess, StackError, log_tail, stop
from callscribe.stack.services import grpc_address, service_env, start_service
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET
from callscribe.stack.tenants import TenantSpec, write_tenants_file
from callscribe.v1 import common_pb2 as c

MIB = 1024 * 1024
FILE_MIB = 10
SAMPLE_RATE_HZ = 16000
WAV_HEADER_BYTES = 44
# The peer's put_object: 16 MiB parts, minio's default 3 parallel parts (the service uses 8 MiB x 2).
PART_SIZE = 16 * MIB
PARALLEL_PARTS = 3
RAW_BUCKET = "callscribe-bench-raw"
TENANT = "bench"
RETENTION_DAYS = 1
RATIO_TARGET = 0.8
RSS_TARGET_MIB = 64.0
RSS_INTERVAL_S = 0.05
FULL_LEVELS = ((1, 32), (8, 64), (32, 96))  # (streams, uploads)
QUICK_LEVELS = ((1, 4), (8, 16), (32, 32))
WARMUP_UPLOADS = 2
RPC_TIMEOUT_S = 900.0


class BenchError(RuntimeError):
    """The benchmark could not run (not a MISS: a MISS is a result)."""


@dataclass(frozen=True)
class Stack:
    s3: servers.S3Server
    ingest: ManagedProcess
    redis: ManagedProcess
    ingest_s3_endpoint: str
    address: str
    token: str


@dataclass(frozen=True)
class Phase:
    """One timed batch of uploads; cpu_s: CPU seconds each process (ingest, s3, client) used meanwhile."""

    seconds: float
    nbytes: int
    cpu_s: dict[str, float]


@dataclass(frozen=True)
class Level:
    streams: int
    uploads: int
    mib: float
    ingest: Phase
    raw: Phase

    @property
    def ingest_s(self) -> float:
        return self.ingest.seconds

    @property
    def raw_s(self) -> float:
        return self.raw.seconds

    @property
    def ingest_mibps(self) -> float:
        return self.mib / self.ingest_s

    @property
    def raw_mibps(self) -> float:
        return self.mib / self.raw_s

    @property
    def ratio(self) -> float:
        return self.ingest_mibps / self.raw_mibps

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(ingest_mibps=self.ingest_mibps, raw_mibps=self.raw_mibps, ratio=self.ratio)
        doc.update(target=RATIO_TARGET, passed=self.ratio >= RATIO_TARGET)
        return doc


@dataclass(frozen=True)
class BigUpload:
    """`mib`: the size of one file; each path uploads two such files (ingest, raw, raw, ingest)."""

    mib: float
    ingest: Phase
    raw: Phase
    rss_baseline_mib: float
    rss_peak_mib: float

    @property
    def ingest_s(self) -> float:
        return self.ingest.seconds

    @property
    def raw_s(self) -> float:
        return self.raw.seconds

    @property
    def ingest_mibps(self) -> float:
        return self.ingest.nbytes / MIB / self.ingest_s

    @property
    def raw_mibps(self) -> float:
        return self.raw.nbytes / MIB / self.raw_s

    @property
    def growth_mib(self) -> float:
        return self.rss_peak_mib - self.rss_baseline_mib

    @property
    def ratio(self) -> float:
        return self.raw_s / self.ingest_s

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(ingest_mibps=self.ingest_mibps, raw_mibps=self.raw_mibps, ratio=self.ratio)
        doc.update(rss_growth_mib=self.growth_mib, rss_target_mib=RSS_TARGET_MIB)
        doc.update(rss_passed=self.growth_mib <= RSS_TARGET_MIB, ratio_passed=self.ratio >= RATIO_TARGET)
        return doc


# --- WAV files -------------------------------------------------------------------------------


def wav_header(data_bytes: int) -> bytes:
    """A canonical 44-byte header: PCM 16-bit, 16 kHz, mono."""
    byte_rate = SAMPLE_RATE_HZ * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, SAMPLE_RATE_HZ, byte_rate, 2, 16),
        *(b"data", data_bytes),
    )


def write_wav(path: Path, total_bytes: int, rng: np.random.Generator) -> Path:
    """Unique noise in 8 MiB blocks, never the whole file in memory."""
    data_bytes = (total_bytes - WAV_HEADER_BYTES) & ~1
    with path.open("wb") as out:
        out.write(wav_header(data_bytes))
        left = data_bytes
        while left:
            block = min(left, 8 * MIB)
            out.write(rng.bytes(block))
            left -= block
    return path


def make_files(directory: Path, prefix: str, count: int, rng: np.random.Generator) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [write_wav(directory / f"{prefix}-{i:04d}.wav", FILE_MIB * MIB, rng) for i in range(count)]


# --- the stack -------------------------------------------------------------------------------


def ingest_env(workdir: Path, s3: servers.S3Server, redis_url: str, big_mib: int) -> dict[str, str]:
    state = {
        "home": str(workdir),
        "tenants_file": str(workdir / "tenants.json"),
        "s3": {
            "endpoint": s3.endpoint,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "hot_bucket": HOT_BUCKET,
            "cold_bucket": COLD_BUCKET,
        },
        "redis": {"url": redis_url},
    }
    env = service_env("ingest", state)
    env["INGEST_LOG_LEVEL"] = "WARNING"
    env["INGEST_MAX_UPLOAD_MB"] = str(max(2048, big_mib + 64))
    return env


def start_stack(workdir: Path, big_mib: int, cleanup: contextlib.ExitStack) -> Stack:
    """SeaweedFS + Redis + ingest; each is stopped by ``cleanup`` (last started, first stopped)."""
    s3 = servers.start_seaweedfs(workdir / "s3")
    cleanup.callback(stop, s3.process, SERVER_STOP_S)
    servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET, RAW_BUCKET))
    redis = servers.start_redis(workdir / "redis")
    cleanup.callback(stop, redis.process, SERVER_STOP_S)
    tokens = write_tenants_file(workdir / "tenants.json", {TENANT: TenantSpec("GOVERNANCE", RETENTION_DAYS)})
    env = ingest_env(workdir, s3, redis.url, big_mib)
    proc = start_service("ingest", env, workdir / "ingest.log")
    cleanup.callback(stop, proc)
    return Stack(s3, proc, redis.process, env["INGEST_S3_ENDPOINT"], grpc_address("ingest", env), tokens[TENANT])


# --- clients ---------------------------------------------------------------------------------

Worker = Callable[[Path], int]


def upload_messages(path: Path) -> Iterator[UploadMessage]:
    """What `callscribe upload` sends: the SHA-256 and size first (the service writes to S3 while
    receiving), then the chunks. Hashing is client work inside the timed upload, like the peer's own
    SHA-256 of its parts."""
    meta = c.RecordingMetadata(
        tenant=TENANT, call_id=path.stem, agent_id="bench", channel_layout=c.CHANNEL_LAYOUT_MONO,
        language=c.LANGUAGE_AUTO, filename=path.name,
    )  # fmt: skip
    return cli_upload_messages(meta, path)


class IngestClients:
    """One channel (its own TCP connection) per worker thread."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._channels: list[grpc.Channel] = []

    def worker(self) -> Worker:
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", 8 * MIB)]
        channel = grpc.insecure_channel(self._stack.address, options=options)
        self._channels.append(channel)
        upload_call = upload_method(channel)
        auth = (("authorization", f"Bearer {self._stack.token}"),)

        def upload(path: Path) -> int:
            ack = upload_call(upload_messages(path), metadata=auth, timeout=RPC_TIMEOUT_S)
            size = path.stat().st_size
            if ack.duplicate or ack.audio.size_bytes != size:
                raise BenchError(
                    f"{path.name}: unexpected ack (duplicate={ack.duplicate}, size={ack.audio.size_bytes})"
                )
            return size

        return upload

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()

    def __enter__(self) -> IngestClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_client(s3: servers.S3Server, streams: int) -> Minio:
    """Pooled like the service's client (callscribe.storage.client.make_client): streams * parts + 8 connections."""
    http = urllib3.PoolManager(
        maxsize=streams * PARALLEL_PARTS + 8,
        timeout=urllib3.Timeout(connect=5, read=120),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(s3.host, access_key=s3.access_key, secret_key=s3.secret_key, secure=False, http_client=http)


def raw_worker(client: Minio) -> Worker:
    def put(path: Path) -> int:
        size = path.stat().st_size
        retention = Retention(GOVERNANCE, datetime.now(UTC) + timedelta(days=RETENTION_DAYS))
        with path.open("rb") as data:
            client.put_object(
                RAW_BUCKET, f"raw/{path.name}", data, size, content_type="application/octet-stream",
                metadata={"x-amz-meta-call-id": path.stem}, retention=retention,
                part_size=PART_SIZE, num_parallel_uploads=PARALLEL_PARTS,
            )  # fmt: skip
        return size

    return put


def run_parallel(paths: list[Path], workers: list[Worker]) -> tuple[float, int]:
    """Each worker thread takes files from a shared queue; returns (seconds, bytes acknowledged)."""
    todo: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for path in paths:
        todo.put(path)

    def drain(work: Worker) -> int:
        done = 0
        while True:
            try:
                path = todo.get_nowait()
            except queue.Empty:
                return done
            done += work(path)

    start = time.perf_counter()
    with ThreadPoolExecutor(len(workers)) as pool:
        total = sum(pool.map(drain, workers))
    return time.perf_counter() - start, total


# --- measurements ----------------------------------------------------------------------------


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """User + system CPU seconds so far of the ingest server, SeaweedFS (each with children) and this client.

    The servers are children of this process: the client counts itself only.
    """
    procs = {"ingest": stack.ingest.pid, "s3": stack.s3.process.pid, "client": os.getpid()}
    totals = {}
    for name, pid in procs.items():
        proc = psutil.Process(pid)
        total = 0.0
        for member in [proc, *(proc.children(recursive=True) if name != "client" else [])]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = member.cpu_times()
                total += times.user + times.system
        totals[name] = total
    return totals


def parse_cpus(text: str) -> frozenset[int]:
    """'1' or '2,3' or '4-7' -> the CPU numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise argparse.ArgumentTypeError(f"not a CPU list: {text!r} (e.g. 1 or 2,3 or 4-7)")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


def pin_process(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of `pid` and of its descendants onto `cpus` (threads started later inherit it)."""
    proc = psutil.Process(pid)
    for member in [proc, *proc.children(recursive=True)]:
        for thread in member.threads():
            with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
                os.sched_setaffinity(thread.id, cpus)


def pin_stack(stack: Stack, s3_cpus: frozenset[int]) -> frozenset[int]:
    """SeaweedFS onto `s3_cpus`; this client, the ingest server and Redis onto the other CPUs, which are
    returned. As in a deployment, where S3 runs on its own hosts: the ingest path's extra work then
    competes with the client's, not with S3's."""
    available = frozenset(os.sched_getaffinity(0))
    rest = available - s3_cpus
    if not s3_cpus <= available or not rest:
        raise BenchError(
            f"--s3-cpus {sorted(s3_cpus)}: needs CPUs among {sorted(available)} and at least one left for "
            "the client and ingest"
        )
    pin_process(stack.s3.process.pid, s3_cpus)
    for pid in (stack.ingest.pid, stack.redis.pid, os.getpid()):
        pin_process(pid, rest)
    return rest


def settle() -> None:
    """Flush dirty pages before a timed batch: the bench's freshly written files and the previous
    batch's S3 writes would otherwise be written back (kernel CPU, disk) during whichever batch
    happens to run ~30 s later."""
    os.sync()


def timed(stack: Stack, paths: list[Path], workers: list[Worker]) -> Phase:
    settle()
    before = cpu_seconds(stack)
    seconds, nbytes = run_parallel(paths, workers)
    after = cpu_seconds(stack)
    return Phase(seconds, nbytes, {name: round(after[name] - before[name], 2) for name in after})


def combined(first: Phase, second: Phase) -> Phase:
    cpu = {name: round(first.cpu_s[name] + second.cpu_s[name], 2) for name in first.cpu_s}
    return Phase(first.seconds + second.seconds, first.nbytes + second.nbytes, cpu)


def interleaved(
    ingest: Callable[[Any], Phase], raw: Callable[[Any], Phase], ingest_work: tuple[Any, Any], raw_work: tuple[Any, Any]
) -> tuple[Phase, Phase]:
    """Each path's work in two halves, run ingest, raw, raw, ingest: drift during the run (the S3
    server's volumes filling, the machine's other load) falls on both paths alike. (ingest, raw)."""
    ingest_a = ingest(ingest_work[0])
    raw_a = raw(raw_work[0])
    raw_b = raw(raw_work[1])
    ingest_b = ingest(ingest_work[1])
    return combined(ingest_a, ingest_b), combined(raw_a, raw_b)


def warm_up(stack: Stack, workdir: Path, rng: np.random.Generator) -> None:
    """A few untimed uploads on both paths (connections, volume allocation, imports)."""
    files = make_files(workdir / "warmup", "warm", 2 * WARMUP_UPLOADS, rng)
    with IngestClients(stack) as clients:
        run_parallel(files[:WARMUP_UPLOADS], [clients.worker()])
    run_parallel(files[WARMUP_UPLOADS:], [raw_worker(raw_client(stack.s3, 1))])
    shutil.rmtree(workdir / "warmup")


def measure_level(stack: Stack, workdir: Path, streams: int, uploads: int, rng: np.random.Generator) -> Level:
    """`uploads` files per path through `streams` workers, `interleaved`."""
    directory = workdir / f"level-{streams}"
    ingest_files = make_files(directory, f"ingest-{streams}", uploads, rng)
    raw_files = make_files(directory, f"raw-{streams}", uploads, rng)
    half = uploads // 2
    client = raw_client(stack.s3, streams)

    def ingest(paths: list[Path]) -> Phase:
        with IngestClients(stack) as clients:
            return timed(stack, paths, [clients.worker() for _ in range(streams)])

    def raw(paths: list[Path]) -> Phase:
        return timed(stack, paths, [raw_worker(client) for _ in range(streams)])

    # Untimed: one round of `streams` uploads per path at this concurrency first. The first batch at a
    # new concurrency grows every process's memory (page faults in SeaweedFS, the ingest server and
    # the client); without this round that one-off cost fell on whichever path ran first (ingest).
    warm = make_files(directory / "warm", f"warm-{streams}", 2 * streams, rng)
    ingest(warm[:streams])
    raw(warm[streams:])
    shutil.rmtree(directory / "warm")
    ingest_all, raw_all = interleaved(
        ingest, raw, (ingest_files[:half], ingest_files[half:]), (raw_files[:half], raw_files[half:])
    )
    if ingest_all.nbytes != raw_all.nbytes:
        raise BenchError(f"level {streams}: ingest moved {ingest_all.nbytes} bytes, raw {raw_all.nbytes}")
    shutil.rmtree(directory)
    return Level(streams, uploads, ingest_all.nbytes / MIB, ingest_all, raw_all)


class RssSampler:
    """Samples the RSS of a process and its children every RSS_INTERVAL_S in a thread."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.baseline = 0
        self.peak = 0

    def rss(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_S):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssSampler:
        samples = []
        for _ in range(10):
            samples.append(self.rss())
            time.sleep(RSS_INTERVAL_S)
        self.baseline = int(statistics.median(samples))
        self.peak = self.baseline
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def measure_big(stack: Stack, workdir: Path, big_mib: int, rng: np.random.Generator) -> BigUpload:
    """The big file through ingest, raw, raw, ingest (new bytes each time: no duplicate); the RSS
    growth reported is the larger of the two ingest uploads', each from the RSS just before it."""
    paths = [write_wav(workdir / f"big-{big_mib}-{i}.wav", big_mib * MIB, rng) for i in range(2)]
    client = raw_client(stack.s3, 1)
    growths: list[tuple[float, float]] = []

    def ingest(path: Path) -> Phase:
        with IngestClients(stack) as clients, RssSampler(stack.ingest.pid) as rss:
            phase = timed(stack, [path], [clients.worker()])
        growths.append((rss.baseline / MIB, rss.peak / MIB))
        return phase

    def raw(path: Path) -> Phase:
        return timed(stack, [path], [raw_worker(client)])

    ingest_all, raw_all = interleaved(ingest, raw, (paths[0], paths[1]), (paths[0], paths[1]))
    for path in paths:
        path.unlink()
    baseline, peak = max(growths, key=lambda g: g[1] - g[0])
    return BigUpload(big_mib, ingest_all, raw_all, baseline, peak)


# --- report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_levels(levels: list[Level]) -> None:
    head = f"{'streams':>7} {'uploads':>7} {'MiB':>7} {'ingest s':>9} {'raw s':>7} "
    print(head + f"{'ingest MiB/s':>12} {'raw MiB/s':>10} {'ratio':>6} {'target':>7}  result")
    for lv in levels:
        print(
            f"{lv.streams:>7} {lv.uploads:>7} {lv.mib:>7.0f} {lv.ingest_s:>9.2f} {lv.raw_s:>7.2f} "
            f"{lv.ingest_mibps:>12.1f} {lv.raw_mibps:>10.1f} {lv.ratio:>6.2f} {'>=' + str(RATIO_TARGET):>7}  "
            f"{verdict(lv.ratio >= RATIO_TARGET)}"
        )


def batches(levels: list[Level], big: BigUpload) -> list[tuple[str, Phase, Phase]]:
    """(name, ingest phase, raw phase) of every timed batch of a round."""
    return [(f"{lv.streams} stream(s)", lv.ingest, lv.raw) for lv in levels] + [
        (f"big {big.mib:.0f} MiB", big.ingest, big.raw)
    ]


def print_cpu(levels: list[Level], big: BigUpload) -> None:
    """Where the CPU went: seconds used by each process during each timed batch."""
    print("CPU seconds during each batch (ingest server / SeaweedFS / bench client):")
    for name, ingest, raw in batches(levels, big):
        cells = []
        for label, phase in (("ingest path", ingest), ("raw path", raw)):
            cpu = phase.cpu_s
            cells.append(
                f"{label} {cpu['ingest']:6.1f} / {cpu['s3']:6.1f} / {cpu['client']:6.1f} in {phase.seconds:6.2f} s"
            )
        print(f"  {name:<14} {'   '.join(cells)}")


def cpu_per_gib(phase: Phase) -> dict[str, float]:
    """CPU seconds per GiB moved, for each process and in total."""
    gib = phase.nbytes / 2**30
    per = {name: seconds / gib for name, seconds in phase.cpu_s.items()}
    per["total"] = sum(per.values())
    return per


def print_cpu_per_gib(levels: list[Level], big: BigUpload) -> None:
    """The same batches as CPU seconds per GiB. Where the batch keeps every core busy (8 and 32 streams
    on a small box) the throughput ratio follows the CPU ratio, raw total / ingest total. What the ingest
    path adds is its server plus its client's extra (the gRPC send); the S3 column is the same work on
    both paths, so its spread between batches is SeaweedFS's own."""
    print("CPU seconds per GiB (ingest server / SeaweedFS / bench client = total):")
    for name, ingest, raw in batches(levels, big):
        i, r = cpu_per_gib(ingest), cpu_per_gib(raw)
        added = i["ingest"] + i["client"] - r["client"]
        print(
            f"  {name:<14} ingest path {i['ingest']:5.2f} / {i['s3']:5.2f} / {i['client']:5.2f} = {i['total']:5.2f}"
            f"   raw path {r['s3']:5.2f} / {r['client']:5.2f} = {r['total']:5.2f}"
            f"   added by ingest {added:5.2f}, CPU ratio {r['total'] / i['total']:.2f}"
        )


def print_big(big: BigUpload) -> None:
    print(
        f"big upload {big.mib:.0f} MiB x 2 per path, 1 stream: "
        f"ingest {big.ingest_s:.2f} s ({big.ingest_mibps:.1f} MiB/s), "
        f"raw {big.raw_s:.2f} s ({big.raw_mibps:.1f} MiB/s), ratio {big.ratio:.2f} "
        f"(target >= {RATIO_TARGET}) {verdict(big.ratio >= RATIO_TARGET)}"
    )
    print(
        f"ingest server RSS (the larger growth of the two): baseline {big.rss_baseline_mib:.1f} MiB, "
        f"peak {big.rss_peak_mib:.1f} MiB, "
        f"growth {big.growth_mib:.1f} MiB (target <= {RSS_TARGET_MIB:.0f} MiB) "
        f"{verdict(big.growth_mib <= RSS_TARGET_MIB)}"
    )


def print_setup(info: dict[str, Any], stack: Stack) -> None:
    print(f"machine: {info['cpu']}, {info['logical_cores']} logical / {info['physical_cores']} physical cores,")
    print(f"         {info['memory_gib']} GiB RAM, Python {info['python']} (client, ingest and SeaweedFS share it)")
    same = "yes" if stack.ingest_s3_endpoint == stack.s3.endpoint else "NO"
    print(f"S3: SeaweedFS at {stack.s3.endpoint}; ingest uses the same endpoint: {same}")
    print(f"    ingest -> bucket {HOT_BUCKET}, raw put_object -> bucket {RAW_BUCKET} (both Object Lock,")
    print(f"    GOVERNANCE {RETENTION_DAYS} day, part size {PART_SIZE // MIB} MiB, {PARALLEL_PARTS} parallel parts)")
    print(f"files: {FILE_MIB} MiB WAV (PCM 16-bit, 16 kHz, mono, unique noise), {CHUNK_BYTES // MIB} MiB gRPC chunks")


# --- main ------------------------------------------------------------------------------------


def level_plan(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(streams, uploads per path) of each level, with --scale applied."""
    return [(streams, uploads * args.scale) for streams, uploads in (QUICK_LEVELS if args.quick else FULL_LEVELS)]


def check_disk(directory: Path, big_mib: int, rounds: int = 1, level_uploads: tuple[int, ...] = ()) -> None:
    """The big files and their S3 copies, and the levels' files (one level's at a time) and S3 copies
    (kept until the end, like the big ones): both paths, every round."""
    big_need = (2 + 4 * rounds) * big_mib
    level_need = 2 * FILE_MIB * (max(level_uploads, default=0) + rounds * sum(level_uploads))
    need = big_need + level_need
    free_mib = shutil.disk_usage(directory).free / MIB
    if free_mib < need:
        raise BenchError(
            f"not enough disk in {directory}: {free_mib:.0f} MiB free, the run needs {need} MiB (the "
            f"{big_mib} MiB uploads {big_need}: two source files and per round their S3 copies; the "
            f"levels {level_need}); lower --big-mb, --rounds or --scale, or set TMPDIR"
        )


def measure_round(
    args: argparse.Namespace, stack: Stack, workdir: Path, rng: np.random.Generator
) -> tuple[list[Level], BigUpload]:
    big = measure_big(stack, workdir, args.big_mb, rng)
    print(f"  measured the {args.big_mb} MiB upload", flush=True)
    measured = []
    for streams, uploads in level_plan(args):
        measured.append(measure_level(stack, workdir, streams, uploads, rng))
        print(f"  measured {streams} stream(s)", flush=True)
    return measured, big


def medians(rounds: list[tuple[list[Level], BigUpload]]) -> dict[str, Any]:
    """The median of each ratio over the rounds (what the verdict of a multi-round run rests on) and the
    largest RSS growth."""
    levels = {str(lv.streams): statistics.median(r[0][i].ratio for r in rounds) for i, lv in enumerate(rounds[0][0])}
    return {
        "ratio_by_streams": levels,
        "big_ratio": statistics.median(r[1].ratio for r in rounds),
        # The largest, not the median: a later round starts from the RSS the earlier ones left (its
        # 32-stream level grows the server to a few hundred MiB), so its growth says less.
        "big_rss_growth_mib": max(r[1].growth_mib for r in rounds),
    }


def print_medians(summary: dict[str, Any], count: int) -> None:
    print(f"median over {count} rounds:")
    for streams, ratio in summary["ratio_by_streams"].items():
        passed = verdict(ratio >= RATIO_TARGET)
        print(f"  {streams:>2} stream(s): ratio {ratio:.2f} (target >= {RATIO_TARGET}) {passed}")
    big = summary["big_ratio"]
    print(f"  big upload: ratio {big:.2f} (target >= {RATIO_TARGET}) {verdict(big >= RATIO_TARGET)}")
    growth = summary["big_rss_growth_mib"]
    print(
        f"  RSS growth, the largest of the rounds: {growth:.1f} MiB (target <= {RSS_TARGET_MIB:.0f} MiB) "
        f"{verdict(growth <= RSS_TARGET_MIB)}"
    )


def run(args: argparse.Namespace, workdir: Path, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    rng = np.random.default_rng()
    stack = start_stack(workdir, args.big_mb, cleanup)
    info = machine()
    print_setup(info, stack)
    if args.s3_cpus is not None:
        rest = pin_stack(stack, args.s3_cpus)
        print(f"pinned: SeaweedFS on CPU(s) {sorted(args.s3_cpus)}; the client, ingest and Redis on {sorted(rest)}")
    warm_up(stack, workdir, rng)
    rounds = []
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round {number} of {args.rounds}", flush=True)
        rounds.append(measure_round(args, stack, workdir, rng))
    for number, (levels, big) in enumerate(rounds, start=1):
        print()
        if args.rounds > 1:
            print(f"round {number}:")
        print_levels(levels)
        print_big(big)
        print_cpu(levels, big)
        print_cpu_per_gib(levels, big)
    result: dict[str, Any] = {
        "machine": info,
        "s3_endpoint": stack.s3.endpoint,
        "ingest_s3_endpoint": stack.ingest_s3_endpoint,
        "quick": args.quick,
        "scale": args.scale,
        "s3_cpus": sorted(args.s3_cpus) if args.s3_cpus is not None else None,
        "levels": [lv.to_dict() for lv in rounds[0][0]],
        "big": rounds[0][1].to_dict(),
    }
    if args.rounds > 1:
        result["rounds"] = [{"levels": [lv.to_dict() for lv in levels], "big": big.to_dict()} for levels, big in rounds]
        result["median"] = medians(rounds)
        print()
        print_medians(result["median"], args.rounds)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer uploads per level")
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the big upload in MiB (default 1024)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the figures as JSON")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure everything this many times in one run; verdicts on the medians"
    )
    parser.add_argument(
        "--s3-cpus",
        type=parse_cpus,
        default=None,
        metavar="LIST",
        help="pin SeaweedFS to these CPUs (e.g. 1) and the client, ingest and Redis to the others: S3 on "
        "its own cores, as in a deployment (default: all share every CPU)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="this many times the uploads per level (steadier figures: the 32-stream level is 3 uploads per "
        "stream, whose ramp-up and tail weigh more where S3 has its own cores)",
    )
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error("--scale must be at least 1")
    if args.big_mb < 1:
        parser.error("--big-mb must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="callscribe-bench-ingest-"))
    try:
        with contextlib.ExitStack() as cleanup:
            check_disk(workdir, args.big_mb, args.rounds, tuple(uploads for _, uploads in level_plan(args)))
            result = run(args, workdir, cleanup)
    except (BenchError, StackError, grpc.RpcError, MinioException, OSError) as exc:
        print(f"bench/ingest.py: error: {exc}", file=sys.stderr)
        log = workdir / "ingest.log"
        if log.is_file():
            print(f"ingest log tail:\n{log_tail(log)}", file=sys.stderr)
        return 1
    finally:
        # After every server stopped: the locked objects live only in this directory.
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.exit(main())
