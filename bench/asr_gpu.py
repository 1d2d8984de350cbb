"""ASR on a GPU: callscribe's ASR service against FunASR's AutoModel and faster-whisper, in one run.

    python bench/asr_gpu.py prepare [--out .gpu] [--minutes 12]   # here, on the CPU: everything the run needs
    bash bench/asr_gpu_device.sh ...                              # on the GPU machine: stage, install, run
    python bench/asr_gpu.py run --data DIR --json OUT [--smoke]   # what asr_gpu_device.sh runs

`prepare` (CPU) writes into --out, as folders of at most ~60 MB each (the device tool carries 64 MiB a
call): the English call corpus of bench/asr.py re-encoded as 16 kHz FLAC with each call's FSMN-VAD
segments (the VAD service's engine and parameters) and references (data/); Whisper base (CTranslate2,
float16) split in parts (w0/, w1/, w2/); and the wheels the GPU image lacks (wheels/, ct2/).

`run` (GPU), every part in one process, writing the JSON after each part:
1. FunASR engine, Paraformer-large shape (random weights built here from FunASR's own classes: d 512,
   50 encoder + 16 decoder blocks, vocab 8404). Calls are the corpus calls' VAD segments (1-30 s,
   both channels), cycled to --calls calls.
   (a) the peer: FunASR ``AutoModel.generate`` on the GPU, one call after another (all its segments in
       one generate, output_timestamp=True as the worker asks), at each batch_size of its sweep; also
       the best batch_size over all calls' segments in one list.
   (b) callscribe: the ASR service processes (``python -m callscribe.asr``), one per configuration
       (max batch, max wait, fp32 / bf16 / fp16, replicas), all loaded at once, then measured one after
       another with --in-flight concurrent callers, each sending all the segments of one call with
       word_timestamps, as the pipeline worker does. Segments go inline (PCM16): there is no S3 on the
       GPU machine; a call over the service's 4 MiB message limit goes as several requests at once.
   Figures: speech seconds per wall second (x real time), GPU utilisation (NVML, sampled every 50 ms),
   batch fill (the service's own batch-size histogram), p50 / p99 call latency, peak GPU memory.
2. Whisper engine, Whisper base CTranslate2 float16 on CUDA: the service (calls in flight, windows of
   packed segments) against faster-whisper's ``BatchedInferencePipeline`` on the same model, device
   and batch size, each channel one after another with its own Silero VAD; WER on the corpus for both.
   The peer's VAD runs once untimed and its speech timestamps are replayed in the timed rounds, as
   callscribe's VAD segments come from the VAD service: both timings are ASR only.
Exit 0 when it ran (a MISS is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
MIB = 2**20
PART_BYTES = 60 * 10**6  # a carried folder must stay under the device tool's 64 MiB per call
REQUEST_BYTES = 3_500_000  # inline PCM per request, under the service's 4 MiB message limit
TENANT = "bench"
RATIO_FUNASR = 20.0
REALTIME_FUNASR = 5000.0
RATIO_WHISPER = 1.5
WER_POINTS = 0.5
PEER_BATCHES = (1, 8, 16, 32, 64)
WARM_CALLS = 8

# Wheels the GPU image lacks (its python3 is 3.12 with torch, numpy, scipy, numba, scikit-learn of its own),
# at the versions this project's venv runs: compiled ones for the device's platform, pure ones built here.
CT2_WHEEL = "ctranslate2==4.8.5"  # 43 MB: a folder (and a device call) of its own
GPU_WHEELS_COMPILED = (
    "grpcio==1.85.1",
    "protobuf==7.36.2",
    "pydantic-core==2.50.5",
    "rapidfuzz==3.14.6",
    "soxr==1.1.0",
    "soundfile==0.14.0",
    "argon2-cffi-bindings==26.2.0",
    "pycryptodome==4.5.0",
    "cffi==2.1.1",  # soundfile's; not on the GPU image (found by the first run)
)
GPU_WHEELS_PURE = (
    "funasr==1.4.16",
    "hydra-core==1.3.8",
    "omegaconf==2.3.1",
    "antlr4-python3-runtime==4.9.3",
    "kaldiio==2.18.1",
    "librosa==0.11.0",
    "audioread==3.1.0",
    "pooch==1.9.0",
    "platformdirs==4.14.9",
    "decorator==5.3.1",
    "jaconv==0.5.0",
    "jamo==0.4.1",
    "torch-complex==0.4.4",
    "faster-whisper==1.2.1",
    "jiwer==4.0.0",
    "grpcio-health-checking==1.85.1",
    "grpcio-reflection==1.85.1",
    "pydantic==2.14.4",
    "pydantic-settings==2.16.3",
    "python-dotenv==1.2.4",
    "typing-inspection==0.4.5",
    "annotated-types==0.8.0",
    "minio==7.2.20",
    "argon2-cffi==25.1.0",
    "typing-extensions==4.16.0",
    "pycparser==3.12",
)
DEVICE_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


# --------------------------------------------------------------------------- prepare (CPU)


def prepare(out: Path, minutes: float, corpus_dir: Path, model_cache: Path, wheels: bool) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import soundfile as sf
    import soxr
    from asr import load_corpus  # type: ignore[import-not-found]

    from callscribe.asr.engines.whisper import ensure_whisper_base_dir
    from callscribe.vad.detect import detect
    from callscribe.vad.fsmn_decision import VadParams
    from callscribe.vad.fsmn_model import FsmnVadModel

    data = out / "data"
    (data / "corpus").mkdir(parents=True, exist_ok=True)
    calls = load_corpus(corpus_dir, minutes)
    vad = FsmnVadModel()
    records = []
    for call in calls:
        audio, rate = sf.read(str(call.path), dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
        name = call.path.stem
        sf.write(str(data / "corpus" / f"{name}.flac"), audio, SAMPLE_RATE, subtype="PCM_16")
        params = VadParams()
        stream = functools.partial(vad.stream, params)
        found = detect([audio], ["agent", "customer"], stream, params.max_single_segment_ms)
        records.append(
            {
                "name": name,
                "duration_s": len(audio) / SAMPLE_RATE,
                "references": list(call.references),
                "segments": [[s.channel, s.start_ms, s.end_ms] for s in found.segments],
            }
        )
    model_dir = ensure_whisper_base_dir(model_cache)
    whisper = data / "whisper"
    whisper.mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.json", "preprocessor_config.json"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, whisper / name)
    parts = _split(model_dir / "model.bin", out)
    manifest = {"calls": records, "whisper_parts": parts, "whisper_sha256": _sha256(model_dir / "model.bin")}
    (data / "corpus.json").write_text(json.dumps(manifest, indent=1))
    if wheels:
        download_wheels(out / "wheels", out / "ct2")
    speech = sum(e - s for r in records for _, s, e in r["segments"]) / 1000
    print(f"prepared {len(records)} calls, {sum(r['duration_s'] for r in records) / 60:.1f} min, {speech:.0f} s speech")
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"  {folder}: {size / MIB:.1f} MiB")


def _split(path: Path, out: Path) -> list[str]:
    names = []
    with path.open("rb") as src:
        index = 0
        while chunk := src.read(PART_BYTES):
            folder = out / f"w{index}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"model.bin.part{index}").write_bytes(chunk)
            names.append(f"w{index}/model.bin.part{index}")
            index += 1
    return names


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheels(folder: Path, ct2_folder: Path, python_version: str = "3.12") -> None:
    """The wheels the GPU image lacks, for its CPython (`python_version`) on x86-64 Linux."""
    for where, names in ((ct2_folder, (CT2_WHEEL,)), (folder, GPU_WHEELS_COMPILED)):
        where.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(where)]
        command += ["--python-version", python_version, "--implementation", "cp"]
        for name in DEVICE_PLATFORMS:
            command += ["--platform", name]
        subprocess.run([*command, *names], check=True)
    pure = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(folder), *GPU_WHEELS_PURE]
    subprocess.run(pure, check=True)


# --------------------------------------------------------------------------- corpus (GPU side)


@dataclass(frozen=True)
class Segment:
    channel: int
    start_ms: int
    samples: np.ndarray  # float32, 16 kHz


@dataclass(frozen=True)
class CorpusCall:
    name: str
    duration_s: float
    references: tuple[str, str]
    channels: np.ndarray  # (samples, 2) float32
    segments: list[Segment]

    @property
    def speech_s(self) -> float:
        return sum(len(s.samples) for s in self.segments) / SAMPLE_RATE


def load_prepared(data: Path, limit: int | None = None) -> list[CorpusCall]:
    import soundfile as sf

    manifest = json.loads((data / "corpus.json").read_text())
    calls = []
    for record in manifest["calls"][:limit]:
        audio, rate = sf.read(str(data / "corpus" / f"{record['name']}.flac"), dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE, rate
        segments = [
            Segment(ch, start, audio[start * 16 : end * 16, ch].copy()) for ch, start, end in record["segments"]
        ]
        refs = record["references"]
        calls.append(CorpusCall(record["name"], record["duration_s"], (refs[0], refs[1]), audio, segments))
    return calls


# --------------------------------------------------------------------------- GPU sampling


class GpuSampler:
    """NVML every 50 ms: utilisation (%) and memory, device-wide and per process."""

    def __init__(self) -> None:
        self.ok = False
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.ok = True
        except Exception as exc:  # noqa: BLE001 - no NVML (CPU smoke run): figures say so
            self.error = f"{type(exc).__name__}: {exc}"

    @contextlib.contextmanager
    def window(self, pids: Sequence[int] = ()) -> Iterator[dict[str, Any]]:
        figures: dict[str, Any] = {}
        if not self.ok:
            figures["gpu"] = "not sampled (no NVML)"
            yield figures
            return
        stop = threading.Event()
        utils: list[int] = []
        peak = {"device_mib": 0.0, "process_mib": 0.0}

        def loop() -> None:
            nv = self._nvml
            while not stop.is_set():
                utils.append(int(nv.nvmlDeviceGetUtilizationRates(self._handle).gpu))
                peak["device_mib"] = max(peak["device_mib"], nv.nvmlDeviceGetMemoryInfo(self._handle).used / MIB)
                with contextlib.suppress(Exception):
                    used = sum(
                        (p.usedGpuMemory or 0)
                        for p in nv.nvmlDeviceGetComputeRunningProcesses(self._handle)
                        if not pids or p.pid in pids
                    )
                    peak["process_mib"] = max(peak["process_mib"], used / MIB)
                stop.wait(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield figures
        finally:
            stop.set()
            thread.join()
            figures["gpu_util_mean_percent"] = float(np.mean(utils)) if utils else 0.0
            figures["gpu_util_samples"] = len(utils)
            figures["gpu_mem_peak_device_mib"] = peak["device_mib"]
            figures["gpu_mem_peak_process_mib"] = peak["process_mib"]


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class ServiceConfig:
    engine: str
    batch: int
    wait_ms: float
    precision: str
    replicas: int = 1  # engine replicas (threads) in one service process
    processes: int = 1  # service processes on the same GPU, calls spread over them

    @property
    def label(self) -> str:
        label = f"{self.engine} b{self.batch} w{self.wait_ms:g} {self.precision} r{self.replicas}"
        return label if self.processes == 1 else f"{label} x{self.processes}"


@dataclass
class Service:
    config: ServiceConfig
    process: subprocess.Popen[bytes]
    address: str
    metrics_url: str
    log: Path
    stub: Any = None
    channel: Any = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(config: ServiceConfig, model: str, device: str, tenants: Path, work: Path) -> Service:
    port, metrics = _free_port(), _free_port()
    env = {
        **os.environ,
        "ASR_ENGINE": config.engine,
        "ASR_MODEL": model,
        "ASR_DEVICES": device,
        "ASR_PRECISION": config.precision,
        "ASR_MAX_BATCH_SIZE": str(config.batch),
        "ASR_MAX_WAIT_MS": str(config.wait_ms),
        "ASR_REPLICAS_PER_DEVICE": str(config.replicas),
        "ASR_MAX_QUEUE_SEGMENTS": "16384",
        "ASR_LANGUAGE": "zh" if config.engine == "funasr" else "en",
        "ASR_TENANTS_FILE": str(tenants),
        "ASR_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "ASR_METRICS_ADDRESS": f"127.0.0.1:{metrics}",
        "ASR_MODEL_CACHE_DIR": str(work / "model-cache"),
        "ASR_LOG_LEVEL": "WARNING",
    }
    log = work / f"asr-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "callscribe.asr"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Service(config, process, f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics}/metrics", log)


def wait_serving(services: list[Service], timeout_s: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from callscribe.v1 import asr_pb2_grpc

    deadline = time.monotonic() + timeout_s
    for service in services:
        channel = grpc.insecure_channel(service.address, options=[("grpc.max_receive_message_length", 64 * MIB)])
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.config.label} exited: {service.log.read_text()[-3000:]}")
            with contextlib.suppress(grpc.RpcError):
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service.config.label} not serving after {timeout_s:.0f} s")
            time.sleep(0.5)
        service.channel = channel
        service.stub = asr_pb2_grpc.AsrServiceStub(channel)


def stop_services(services: list[Service]) -> None:
    for service in services:
        if service.channel is not None:
            service.channel.close()
        if service.process.poll() is None:
            service.process.terminate()
    for service in services:
        try:
            service.process.wait(30)
        except subprocess.TimeoutExpired:
            service.process.kill()


def scrape(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def call_requests(call: CorpusCall, language: int) -> list[Any]:
    """All of a call's segments with word timestamps, in as few requests as the message limit allows."""
    from callscribe.v1 import asr_pb2

    requests: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for i, seg in enumerate(call.segments):
        pcm = (np.clip(seg.samples, -1, 1) * 32767).astype("<i2").tobytes()
        if current and size + len(pcm) > REQUEST_BYTES:
            requests.append(current)
            current, size = [], 0
        current.append(
            asr_pb2.AsrSegment(
                segment_id=str(i),
                pcm=asr_pb2.Pcm16(data=pcm, sample_rate_hz=SAMPLE_RATE),
                start_ms=seg.start_ms,
                end_ms=seg.start_ms + len(seg.samples) * 1000 // SAMPLE_RATE,
                channel=seg.channel,
            )
        )
        size += len(pcm)
    if current:
        requests.append(current)
    return [asr_pb2.TranscribeRequest(segments=s, language=language, word_timestamps=True) for s in requests]


@dataclass
class Timed:
    """Calls through the service: wall, speech seconds, per-call latencies and texts."""

    wall_s: float
    speech_s: float
    calls: int
    latencies: list[float] = field(default_factory=list)
    texts: dict[tuple[int, int], str] = field(default_factory=dict)


def run_calls(
    group: list[Service],
    calls: list[CorpusCall],
    prepared: list[list[Any]],
    in_flight: int,
    auth: tuple[tuple[str, str], ...],
    cap_s: float,
) -> Timed:
    """`in_flight` callers, each sending one call's requests at once (to one process of the group, in
    turn) and waiting for all of them; no new call is started after `cap_s` seconds (the figures count
    the calls that ran)."""
    done: list[tuple[int, float, list[Any]]] = []
    lock = threading.Lock()
    started = time.perf_counter()

    def one(index: int) -> None:
        if time.perf_counter() - started > cap_s:
            return
        t0 = time.perf_counter()
        stub = group[index % len(group)].stub
        futures = [stub.Transcribe.future(r, metadata=auth, timeout=600) for r in prepared[index]]
        replies = [f.result() for f in futures]
        with lock:
            done.append((index, time.perf_counter() - t0, replies))

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(one, range(len(calls))))
    wall = time.perf_counter() - started
    timed = Timed(wall, sum(calls[i].speech_s for i, _, _ in done), len(done), [lat for _, lat, _ in done])
    for index, _, replies in done:
        call = calls[index]
        by_channel: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
        for request, reply in zip(prepared[index], replies, strict=True):
            for seg, result in zip(request.segments, reply.results, strict=True):
                by_channel[seg.channel].append((seg.start_ms, result.text.strip()))
        for ch in (0, 1):
            timed.texts[(index, ch)] = " ".join(t for _, t in sorted(by_channel[ch]) if t)
        assert len(call.segments) == sum(len(r.results) for r in replies)
    return timed


def latency_figures(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_s": 0.0, "p99_s": 0.0}
    values = np.array(latencies)
    return {"p50_s": float(np.percentile(values, 50)), "p99_s": float(np.percentile(values, 99))}


def measure_service(
    group: list[Service],
    calls: list[CorpusCall],
    in_flight: int,
    auth: tuple[tuple[str, str], ...],
    sampler: GpuSampler,
    cap_s: float,
    language: int,
) -> tuple[dict[str, Any], Timed]:
    prepared = [call_requests(call, language) for call in calls]
    warm = min(len(calls), in_flight, WARM_CALLS)
    # CUDA kernels, allocator, threads: `warm` calls for every process of the group (round robin)
    run_calls(group, calls[: warm * len(group)], prepared, in_flight, auth, cap_s)
    before = [scrape(service.metrics_url) for service in group]
    with sampler.window([service.process.pid for service in group]) as gpu:
        timed = run_calls(group, calls, prepared, in_flight, auth, cap_s)
    after = [scrape(service.metrics_url) for service in group]
    config = group[0].config

    def d(name: str) -> float:
        return sum(a.get(name, 0.0) - b.get(name, 0.0) for a, b in zip(after, before, strict=True))

    batches = d("callscribe_asr_batch_size_count")
    mean_batch = d("callscribe_asr_batch_size_sum") / batches if batches else 0.0
    figures = {
        "config": config.label,
        "in_flight": in_flight,
        "calls": timed.calls,
        "speech_s": timed.speech_s,
        "wall_s": timed.wall_s,
        "x_realtime": timed.speech_s / timed.wall_s if timed.wall_s else 0.0,
        "batches": batches,
        "mean_batch": mean_batch,
        # funasr counts segments per batch; whisper counts 30 s windows, which the histogram does not see
        "batch_fill": mean_batch / config.batch if config.engine == "funasr" else None,
        "engine_busy_s": d("callscribe_asr_inference_seconds_sum"),
        **latency_figures(timed.latencies),
        **gpu,
    }
    return figures, timed


# --------------------------------------------------------------------------- FunASR


FUNASR_CONFIGS = (
    ServiceConfig("funasr", 256, 40, "bf16"),
    ServiceConfig("funasr", 256, 40, "fp32"),
    ServiceConfig("funasr", 256, 40, "fp16"),
    ServiceConfig("funasr", 256, 40, "bf16", processes=2),
    ServiceConfig("funasr", 256, 40, "bf16", processes=4),
    ServiceConfig("funasr", 128, 20, "bf16", processes=4),
)
SMOKE_FUNASR_CONFIGS = (
    ServiceConfig("funasr", 8, 10, "fp32"),
    ServiceConfig("funasr", 8, 10, "bf16", processes=2),
)


def funasr_calls(corpus: list[CorpusCall], count: int) -> list[CorpusCall]:
    return [corpus[i % len(corpus)] for i in range(count)]


def peer_automodel(
    model_dir: Path, device: str, calls: list[CorpusCall], batches: Sequence[int], sampler: GpuSampler, cap_s: float
) -> dict[str, Any]:
    """FunASR's own path: AutoModel.generate per call (its segments in one list), at each batch_size."""
    from funasr import AutoModel

    auto = AutoModel(model=str(model_dir), device=device, disable_update=True, disable_pbar=True, disable_log=True)

    def per_call(batch: int) -> dict[str, Any]:
        auto.generate(input=[s.samples for s in calls[0].segments], batch_size=batch, output_timestamp=True)
        speech, count, latencies = 0.0, 0, []
        with sampler.window([os.getpid()]) as gpu:
            started = time.perf_counter()
            for call in calls:
                if time.perf_counter() - started > cap_s:
                    break
                t0 = time.perf_counter()
                out = auto.generate(input=[s.samples for s in call.segments], batch_size=batch, output_timestamp=True)
                assert len(out) == len(call.segments), (len(out), len(call.segments))
                latencies.append(time.perf_counter() - t0)
                speech += call.speech_s
                count += 1
            wall = time.perf_counter() - started
        return {
            "batch_size": batch,
            "calls": count,
            "speech_s": speech,
            "wall_s": wall,
            "x_realtime": speech / wall,
            **latency_figures(latencies),
            **gpu,
        }

    rows = [per_call(b) for b in batches]
    best = max(rows, key=lambda r: r["x_realtime"])
    segments = [s.samples for call in calls for s in call.segments]
    with sampler.window([os.getpid()]) as gpu:
        started = time.perf_counter()
        auto.generate(input=segments, batch_size=best["batch_size"], output_timestamp=True)
        wall = time.perf_counter() - started
    speech = sum(len(s) for s in segments) / SAMPLE_RATE
    one_list = {"batch_size": best["batch_size"], "speech_s": speech, "wall_s": wall, "x_realtime": speech / wall}
    one_list.update(gpu)
    return {"per_call": rows, "best": best, "one_list": one_list}


def engine_alone(
    model_dir: Path, device: str, precision: str, batch: int, calls: list[CorpusCall], sampler: GpuSampler
) -> dict[str, Any]:
    """The FunASR engine in this process, no gRPC, no batcher: every segment of `calls` sorted by length
    (as the batcher buckets them), batches of `batch`, word timestamps. Then one batch under the torch
    profiler: host (CPU) time against GPU kernel time says whether the engine is launch- or GPU-bound."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from callscribe.asr.engines.base import AsrInput, InferOptions
    from callscribe.asr.engines.funasr_engine import FunasrEngine

    engine = FunasrEngine(model_dir, device=device, threads=1, batch_size=batch, precision=precision)
    options = InferOptions(language="zh", word_timestamps=True)
    segments = sorted((s.samples for call in calls for s in call.segments), key=len)
    batches = [[AsrInput(x) for x in segments[i : i + batch]] for i in range(0, len(segments), batch)]
    engine.infer(batches[len(batches) // 2], options)
    with sampler.window([os.getpid()]) as gpu:
        started = time.perf_counter()
        for items in batches:
            engine.infer(items, options)
        wall = time.perf_counter() - started
    speech = sum(len(x) for x in segments) / SAMPLE_RATE
    middle = batches[len(batches) // 2]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        engine.infer(middle, options)
        one_batch = time.perf_counter() - t0
    events = prof.key_averages()
    kernel_us = sum(getattr(e, "self_device_time_total", 0) for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return {
        "precision": precision,
        "batch": batch,
        "segments": len(segments),
        "speech_s": speech,
        "wall_s": wall,
        "x_realtime": speech / wall,
        "profiled_batch_wall_s": one_batch,
        "profiled_batch_speech_s": sum(len(i.samples) for i in middle) / SAMPLE_RATE,
        "profiled_batch_gpu_kernel_s": kernel_us / 1e6,
        "profiled_batch_ops": sum(e.count for e in events),
        "top_cpu_ops": [(e.key, e.count, e.self_cpu_time_total / 1e6) for e in top],
        **gpu,
    }


def _free_gpu() -> None:
    import gc

    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        torch.cuda.empty_cache()


def bench_funasr(
    args: argparse.Namespace,
    corpus: list[CorpusCall],
    groups: list[list[Service]],
    model_dir: Path,
    auth: tuple[tuple[str, str], ...],
    sampler: GpuSampler,
    out: dict[str, Any],
) -> dict[str, Any]:
    from callscribe.v1 import common_pb2 as c

    calls = funasr_calls(corpus, args.calls)
    result: dict[str, Any] = {
        "model": f"random-weight Paraformer ({'tiny' if args.smoke else 'large shape: d 512, 50+16 blocks, 8404'})",
        "calls": len(calls),
        "call_audio_s": sum(c.duration_s for c in calls),
        "speech_s": sum(c.speech_s for c in calls),
        "segments": sum(len(c.segments) for c in calls),
    }
    out["funasr"] = result
    peer_calls = calls[: args.peer_calls]
    result["peer"] = peer_automodel(model_dir, args.device, peer_calls, args.peer_batches, sampler, args.cap_s)
    _free_gpu()  # the peer's model and cache go before the services are measured
    if args.engine_alone:
        result["engine_alone"] = engine_alone(
            model_dir, args.device, "bf16", 256 if not args.smoke else 8, calls[: args.peer_calls * 3], sampler
        )
        _free_gpu()
        write(args.json, out)
    write(args.json, out)
    rows = []
    for group in groups:
        figures, _ = measure_service(group, calls, args.in_flight, auth, sampler, args.cap_s, c.LANGUAGE_ZH)
        rows.append(figures)
        result["service"] = rows
        write(args.json, out)
        print(f"  {figures['config']}: {figures['x_realtime']:.0f}x real time", flush=True)
    best_service = max(rows, key=lambda r: r["x_realtime"])
    best_group = next(g for g in groups if g[0].config.label == best_service["config"])
    sweep = []
    for in_flight in args.in_flight_sweep:
        figures, _ = measure_service(best_group, calls, in_flight, auth, sampler, args.cap_s, c.LANGUAGE_ZH)
        sweep.append(figures)
    result["in_flight_sweep"] = sweep
    best = max([*rows, *sweep], key=lambda r: r["x_realtime"])
    peer_best = result["peer"]["best"]["x_realtime"]
    result["verdict"] = {
        "service_best": best["config"],
        "service_in_flight": best["in_flight"],
        "service_x_realtime": best["x_realtime"],
        "peer_best_x_realtime": peer_best,
        "peer_one_list_x_realtime": result["peer"]["one_list"]["x_realtime"],
        "ratio": best["x_realtime"] / peer_best,
        "ratio_ok": best["x_realtime"] / peer_best >= RATIO_FUNASR,
        "realtime_ok": best["x_realtime"] >= REALTIME_FUNASR,
    }
    return result


# --------------------------------------------------------------------------- Whisper


def bench_whisper(
    args: argparse.Namespace,
    corpus: list[CorpusCall],
    service: Service | None,
    model_dir: Path,
    auth: tuple[tuple[str, str], ...],
    sampler: GpuSampler,
    out: dict[str, Any],
) -> dict[str, Any]:
    assert service is not None
    sys.path.insert(0, str(Path(__file__).parent))
    import wer  # type: ignore[import-not-found]

    from callscribe.v1 import common_pb2 as c

    refs = [call.references for call in corpus]
    names = [call.name for call in corpus]
    result: dict[str, Any] = {"calls": len(corpus), "speech_s": sum(c.speech_s for c in corpus)}
    result["call_audio_s"] = sum(call.duration_s for call in corpus)
    out["whisper"] = result
    peer = WhisperPeer(model_dir, args.device, args.whisper_batch)
    peer.warm(corpus)  # its Silero VAD runs here, untimed; CUDA kernels load
    ours_rounds, peer_rounds = [], []
    ours_texts: dict[tuple[int, int], str] = {}
    peer_texts: dict[tuple[int, int], str] = {}
    for _ in range(args.rounds):
        figures, timed = measure_service([service], corpus, args.whisper_in_flight, auth, sampler, 1e9, c.LANGUAGE_EN)
        figures["x_realtime_call_audio"] = result["call_audio_s"] / timed.wall_s
        ours_rounds.append(figures)
        ours_texts = timed.texts
        with sampler.window([os.getpid()]) as gpu:
            started = time.perf_counter()
            peer_texts = peer.transcribe(corpus)
            wall = time.perf_counter() - started
        peer_rounds.append(
            {
                "wall_s": wall,
                "x_realtime": result["speech_s"] / wall,
                "x_realtime_call_audio": result["call_audio_s"] / wall,
                **gpu,
            }
        )
        result["service"], result["peer"] = ours_rounds, peer_rounds
        write(args.json, out)
    result["service_wer_percent"] = 100 * wer.corpus_wer(refs, ours_texts)
    result["peer_wer_percent"] = 100 * wer.corpus_wer(refs, peer_texts)
    result["channels"] = {
        "service": wer.channel_details(names, refs, ours_texts),
        "peer": wer.channel_details(names, refs, peer_texts),
    }
    ours_wall = statistics.median(r["wall_s"] for r in ours_rounds)
    peer_wall = statistics.median(r["wall_s"] for r in peer_rounds)
    result["verdict"] = {
        "service_wall_s": ours_wall,
        "peer_wall_s": peer_wall,
        "ratio": peer_wall / ours_wall,
        "ratio_ok": peer_wall / ours_wall >= RATIO_WHISPER,
        "wer_diff_points": result["service_wer_percent"] - result["peer_wer_percent"],
        "wer_ok": result["service_wer_percent"] - result["peer_wer_percent"] <= WER_POINTS,
    }
    return result


class WhisperPeer:
    """faster-whisper's BatchedInferencePipeline, each channel as one array; its Silero VAD runs once
    (untimed, the first time a channel is seen) and is replayed afterwards."""

    def __init__(self, model_dir: Path, device: str, batch: int) -> None:
        import faster_whisper.transcribe as fwt
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        compute = "float16" if device.startswith("cuda") else "int8"
        self.model = WhisperModel(str(model_dir), device=device, compute_type=compute, local_files_only=True)
        self.pipeline = BatchedInferencePipeline(self.model)
        self.batch = batch
        self._vad: dict[int, list[dict[str, int]]] = {}
        original = fwt.get_speech_timestamps

        def replayed(audio: np.ndarray, *a: Any, **k: Any) -> list[dict[str, int]]:
            key = id(audio)
            if key not in self._vad:
                self._vad[key] = original(audio, *a, **k)
            return self._vad[key]

        fwt.get_speech_timestamps = replayed
        self._arrays: dict[tuple[str, int], np.ndarray] = {}

    def transcribe(self, calls: list[CorpusCall]) -> dict[tuple[int, int], str]:
        texts = {}
        for i, call in enumerate(calls):
            for ch in (0, 1):
                audio = self._arrays.setdefault((call.name, ch), np.ascontiguousarray(call.channels[:, ch]))
                segments, _ = self.pipeline.transcribe(
                    audio, language="en", batch_size=self.batch, beam_size=1, word_timestamps=True
                )
                texts[(i, ch)] = " ".join(s.text.strip() for s in segments)
        return texts

    def warm(self, calls: list[CorpusCall]) -> None:
        self.transcribe(calls)


# --------------------------------------------------------------------------- run


def write(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=1, default=str))


def host_facts(device: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "device": device}
    with contextlib.suppress(Exception):
        import torch

        facts["torch"] = torch.__version__
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["cuda"] = torch.version.cuda
    with contextlib.suppress(Exception):
        import ctranslate2

        facts["ctranslate2"] = ctranslate2.__version__
        facts["ctranslate2_cuda_devices"] = ctranslate2.get_cuda_device_count()
    return facts


def run(args: argparse.Namespace) -> int:
    from callscribe.asr.engines.funasr_testmodel import build_random_paraformer
    from callscribe.stack.tenants import TenantSpec, write_tenants_file

    work = Path(tempfile.mkdtemp(prefix="callscribe-asr-gpu-"))
    out: dict[str, Any] = {"host": host_facts(args.device), "args": {k: str(v) for k, v in vars(args).items()}}
    write(args.json, out)
    corpus = load_prepared(args.data, 2 if args.smoke else None)
    token = write_tenants_file(work / "tenants.json", {TENANT: TenantSpec("GOVERNANCE", 1)})[TENANT]
    auth = (("authorization", f"Bearer {token}"),)
    started = time.perf_counter()
    model_dir = work / "paraformer"
    if "funasr" in args.parts:
        build_random_paraformer(model_dir, size="tiny" if args.smoke else "large")
    out["paraformer_build_s"] = time.perf_counter() - started
    whisper_dir = args.data / "whisper"
    configs = list(SMOKE_FUNASR_CONFIGS if args.smoke else FUNASR_CONFIGS)
    whisper_config = ServiceConfig("whisper", args.whisper_batch, 20, "fp16" if args.device != "cpu" else "auto")
    device = "cpu" if args.device == "cpu" else "cuda:0"
    services: list[Service] = []
    whisper_service: Service | None = None
    sampler = GpuSampler()
    try:
        groups: list[list[Service]] = []
        if "funasr" in args.parts:
            for config in configs:
                group = [
                    start_service(config, str(model_dir), device, work / "tenants.json", work)
                    for _ in range(config.processes)
                ]
                groups.append(group)
                services.extend(group)
        if "whisper" in args.parts:
            whisper_service = start_service(whisper_config, str(whisper_dir), device, work / "tenants.json", work)
            services.append(whisper_service)
        started = time.perf_counter()
        wait_serving(services, args.load_timeout_s)
        out["services_ready_s"] = time.perf_counter() - started
        print(f"{len(services)} services ready in {out['services_ready_s']:.0f} s", flush=True)
        for name, part in (
            ("funasr", lambda: bench_funasr(args, corpus, groups, model_dir, auth, sampler, out)),
            ("whisper", lambda: bench_whisper(args, corpus, whisper_service, whisper_dir, auth, sampler, out)),
        ):
            if name not in args.parts:
                continue
            try:
                out[name] = part()
            except Exception:  # noqa: BLE001 - one part failing must not lose the other's figures
                out.setdefault(name, {})["error"] = traceback.format_exc()
                print(f"{name} part failed:\n{out[name]['error']}", file=sys.stderr, flush=True)
            write(args.json, out)
    finally:
        stop_services(services)
        for service in services:
            tail = service.log.read_text(errors="replace")[-2000:]
            if tail.strip():
                out.setdefault("service_logs", {})[service.config.label] = tail
        write(args.json, out)
        shutil.rmtree(work, ignore_errors=True)
    report(out)
    return 1 if any("error" in out.get(p, {}) for p in args.parts) else 0


# --------------------------------------------------------------------------- report


def report(out: dict[str, Any]) -> None:
    host = out["host"]
    print(f"\nhost: {host.get('gpu', host['device'])}, torch {host.get('torch')}, ct2 {host.get('ctranslate2')}")
    f = out.get("funasr", {})
    if "peer" in f:
        print(
            f"\nFunASR {f['model']}: {f['calls']} calls, {f['speech_s']:.0f} s speech "
            f"({f['call_audio_s']:.0f} s of calls), {f['segments']} segments"
        )
        print(f"{'path':46s} {'x RT':>8s} {'GPU %':>6s} {'fill':>5s} {'p50 s':>7s} {'p99 s':>7s} {'mem MiB':>8s}")
        if "engine_alone" in f:
            e = f["engine_alone"]
            _row(f"engine alone (no gRPC), {e['precision']} batch {e['batch']}", e)
            print(
                f"  one profiled batch: {e['profiled_batch_wall_s'] * 1000:.0f} ms wall, "
                f"{e['profiled_batch_gpu_kernel_s'] * 1000:.0f} ms of GPU kernels, {e['profiled_batch_ops']} ops, "
                f"{e['profiled_batch_speech_s']:.0f} s of speech"
            )
        for row in f["peer"]["per_call"]:
            _row(f"AutoModel.generate per call, batch_size {row['batch_size']}", row)
        _row(f"AutoModel.generate one list, batch_size {f['peer']['one_list']['batch_size']}", f["peer"]["one_list"])
        for row in f.get("service", []):
            _row(f"service {row['config']}, {row['in_flight']} in flight", row)
        for row in f.get("in_flight_sweep", []):
            _row(f"service {row['config']}, {row['in_flight']} in flight", row)
        v = f.get("verdict")
        if v:
            print(
                f"service best {v['service_x_realtime']:.0f}x RT / AutoModel best {v['peer_best_x_realtime']:.0f}x = "
                f"{v['ratio']:.1f} (target >= {RATIO_FUNASR:g}: {'PASS' if v['ratio_ok'] else 'MISS'}); "
                f">= {REALTIME_FUNASR:g}x RT: {'PASS' if v['realtime_ok'] else 'MISS'}"
            )
    if "error" in f:
        print(f"FunASR part failed: {f['error'].splitlines()[-1]}")
    w = out.get("whisper", {})
    if "verdict" in w:
        v = w["verdict"]
        print(f"\nWhisper base: {w['calls']} calls, {w['speech_s']:.0f} s speech, {w['call_audio_s']:.0f} s of calls")
        print(f"  service {v['service_wall_s']:.2f} s, WER {w['service_wer_percent']:.2f} %")
        print(f"  BatchedInferencePipeline {v['peer_wall_s']:.2f} s, WER {w['peer_wer_percent']:.2f} %")
        print(
            f"  speed ratio {v['ratio']:.2f} (target >= {RATIO_WHISPER}: {'PASS' if v['ratio_ok'] else 'MISS'}); "
            f"WER {v['wer_diff_points']:+.2f} points (target <= +{WER_POINTS}: {'PASS' if v['wer_ok'] else 'MISS'})"
        )
    if "error" in w:
        print(f"Whisper part failed: {w['error'].splitlines()[-1]}")


def _row(label: str, row: dict[str, Any]) -> None:
    fill = f"{row['batch_fill']:.2f}" if row.get("batch_fill") is not None else "-"
    p50 = f"{row['p50_s']:.2f}" if "p50_s" in row else "-"
    p99 = f"{row['p99_s']:.2f}" if "p99_s" in row else "-"
    print(
        f"{label:46s} {row['x_realtime']:8.0f} {row.get('gpu_util_mean_percent', 0):6.0f} {fill:>5s} "
        f"{p50:>7s} {p99:>7s} {row.get('gpu_mem_peak_process_mib', 0):8.0f}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="on the CPU: corpus, VAD segments, Whisper parts, wheels")
    prep.add_argument("--out", type=Path, default=Path(".gpu"))
    prep.add_argument("--minutes", type=float, default=12.0, help="English corpus length (call audio)")
    prep.add_argument("--corpus-dir", type=Path, default=Path.home() / ".cache" / "callscribe" / "bench-asr")
    prep.add_argument("--model-cache", type=Path, default=Path.home() / ".cache" / "callscribe" / "models")
    prep.add_argument("--no-wheels", action="store_true", help="skip the wheel download")
    go = sub.add_parser("run", help="on the GPU machine: the whole measurement")
    go.add_argument("--data", type=Path, required=True, help="the prepared folder (data/ inside it)")
    go.add_argument("--json", type=Path)
    go.add_argument("--device", default="cuda")
    go.add_argument("--smoke", action="store_true", help="tiny model, 2 calls, CPU-sized sweeps (a dry run)")
    go.add_argument("--parts", default="funasr,whisper")
    go.add_argument("--calls", type=int, default=100, help="FunASR calls (the corpus calls, cycled)")
    go.add_argument("--peer-calls", type=int, default=12, help="calls for each AutoModel batch_size")
    go.add_argument("--peer-batches", default=",".join(map(str, PEER_BATCHES)))
    go.add_argument("--in-flight", type=int, default=32, help="concurrent callers (calls in flight)")
    go.add_argument("--in-flight-sweep", default="16,64", help="in flight for the best configuration")
    go.add_argument("--cap-s", type=float, default=15.0, help="start no new call after this many seconds")
    go.add_argument("--engine-alone", action="store_true", help="also time and profile the engine in-process")
    go.add_argument("--whisper-batch", type=int, default=16)
    go.add_argument("--whisper-in-flight", type=int, default=8)
    go.add_argument("--rounds", type=int, default=2, help="Whisper rounds (service, peer, service, peer)")
    go.add_argument("--load-timeout-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.command == "run":
        args.data = args.data / "data" if (args.data / "data" / "corpus.json").is_file() else args.data
        args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
        args.peer_batches = [int(b) for b in args.peer_batches.split(",")]
        args.in_flight_sweep = [int(b) for b in args.in_flight_sweep.split(",") if b]
        if args.smoke:
            args.calls, args.peer_calls, args.peer_batches = min(args.calls, 4), 2, [1, 4]
            args.in_flight, args.in_flight_sweep, args.rounds = 2, [1], 1
            args.whisper_batch, args.whisper_in_flight = 4, 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "prepare":
        prepare(args.out, args.minutes, args.corpus_dir, args.model_cache, not args.no_wheels)
        return 0
    if not (args.data / "corpus.json").is_file():
        print(f"{args.data} holds no corpus.json: run 'python bench/asr_gpu.py prepare' first", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
