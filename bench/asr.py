"""ASR benchmark: callscribe's VAD + ASR services vs faster-whisper's BatchedInferencePipeline, same corpus.

    python bench/asr.py [--quick] [--minutes 30] [--calls-in-flight 6] [--json OUT]

On synthetic two-channel English calls (espeak-ng + sox, known turns; cached under
~/.cache/callscribe/bench-asr/ or --corpus-dir), in one run:
1. callscribe: SeaweedFS + the real VAD and ASR services (the stack launcher code, in a temp dir);
   each call is put in the hot bucket, then --calls-in-flight calls at a time go
   DetectSpeech(ObjectRef) -> Transcribe(every segment of the call, by ObjectRef), as the pipeline
   worker does, so the ASR batches segments of many calls together;
2. the peer: faster-whisper's BatchedInferencePipeline in this process, the same Whisper base
   CTranslate2 dir, int8, the same threads and batch size, one file per channel (its Silero VAD).
Throughput = call audio seconds / wall second; WER over the whole corpus, per channel (hypotheses
in time order vs the channel's planted turns; lowercased, punctuation removed, digits spelled out).
Targets: callscribe / peer throughput >= 1.2, WER difference <= +1 point.
The GPU measurement (FunASR Paraformer-large shape and Whisper through the service on a GPU) is
bench/asr_gpu.py.
Exit 0 on a MISS (it is a measurement); 1 on errors. Everything started is stopped, the temp dir removed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import soundfile as sf
import wer

from callscribe.cli.samples import Turn, synthesize_call
from callscribe.stack import servers
from callscribe.stack.procs import stop
from callscribe.stack.services import grpc_address, metrics_url, service_env, start_service
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET
from callscribe.stack.tenants import TenantSpec, write_tenants_file
from callscribe.v1 import asr_pb2, asr_pb2_grpc, vad_pb2, vad_pb2_grpc
from callscribe.v1 import common_pb2 as c

TENANT = "bench"
RATIO_TARGET = 1.2
WER_TARGET_POINTS = 1.0
RPC_TIMEOUT_S = 1800.0
CORPUS_VERSION = 1
NOISE_LEVELS = (0.0, 0.002, 0.0, 0.004)  # white noise under call i: NOISE_LEVELS[i % 4]
SAMPLE_RATE = 16000
MIB = 2**20

# --------------------------------------------------------------------------- dialogue

GREETINGS = [
    "Thank you for calling Acme support, my name is Dana. How can I help you today?",
    "Good morning, you are speaking with Sam from the billing team. What can I do for you?",
    "Hello and welcome to Acme customer service. May I have your name, please?",
]
TOPICS: list[list[tuple[str, str]]] = [
    [
        ("customer", "I bought a blender last week and it stopped working, so I would like a refund."),
        ("agent", "I am sorry to hear that. You can return it within thirty days for a full refund."),
        ("customer", "Could you tell me when the money will be back on my card?"),
        ("agent", "The refund usually reaches your account within three to five business days."),
    ],
    [
        ("customer", "What are your opening hours on Saturday and Sunday?"),
        ("agent", "We are open from nine in the morning until five in the afternoon on weekends."),
        ("customer", "Is the store on Main Street open on public holidays?"),
        ("agent", "On public holidays that store closes early, at two in the afternoon."),
    ],
    [
        ("customer", "I was charged twice for the same order on my last bill."),
        ("agent", "Let me check your account. I can see the duplicate payment and I will reverse it today."),
        ("customer", "Why did my monthly fee go up this month?"),
        ("agent", "The price of your plan changed in March, and we sent you a letter about it in February."),
    ],
    [
        ("customer", "Can I pay my bill with a credit card over the phone?"),
        ("agent", "Yes, I can take the payment now. Please read me the card number when you are ready."),
    ],
    [
        ("agent", "Could you please confirm your delivery address?"),
        ("customer", "It is forty two Maple Street, apartment seven, in Springfield."),
        ("customer", "I moved last month and I need to change my address."),
        ("agent", "No problem, I have updated your address and the next parcel will go there."),
    ],
    [
        ("agent", "Can you give me your order number, please?"),
        ("customer", "Yes, the order number is four seven two nine one."),
        ("customer", "My parcel has not arrived yet, and the tracking page has not changed for a week."),
        ("agent", "I can see the parcel is at the local depot and it should be delivered tomorrow."),
    ],
    [
        ("customer", "The order number is eight three zero five six two, and one item was missing."),
        ("agent", "I apologize for that. I will send the missing item with express delivery at no cost."),
    ],
    [
        ("customer", "I cannot log in to my account because I forgot my password."),
        ("agent", "I will send a reset link to the email address on your account."),
        ("customer", "Can you also change the phone number on the account?"),
        ("agent", "Of course. What is the new number you would like to use?"),
    ],
    [
        ("customer", "I would like to cancel my subscription at the end of this month."),
        ("agent", "I understand. May I ask why you want to cancel?"),
        ("customer", "It is too expensive for me at the moment."),
        ("agent", "I can offer you a discount for the next six months if you decide to stay."),
    ],
    [
        ("customer", "Is my washing machine still under warranty?"),
        ("agent", "Your warranty covers parts and repairs for two years from the date of purchase."),
    ],
]
CLOSINGS: list[list[tuple[str, str]]] = [
    [
        ("agent", "Is there anything else I can help you with today?"),
        ("customer", "No, that is everything. Thank you for your help."),
        ("agent", "You are welcome. Have a nice day, goodbye."),
    ],
    [
        ("agent", "Thank you for your patience. Is there anything else?"),
        ("customer", "Thanks, goodbye."),
    ],
]


def call_turns(rng: random.Random) -> list[Turn]:
    """A greeting, three to five topics in random order, a closing."""
    turns = [Turn("agent", rng.choice(GREETINGS))]
    for topic in rng.sample(TOPICS, rng.randint(3, 5)):
        turns += [Turn(speaker, text) for speaker, text in topic]
    turns += [Turn(speaker, text) for speaker, text in rng.choice(CLOSINGS)]
    return turns


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Call:
    path: Path
    agent_side: str  # "left" | "right"
    telephone: bool
    duration_s: float
    references: tuple[str, str]  # channel 0, channel 1: that speaker's turns joined in time order


def _spec_key() -> str:
    spec = {
        "version": CORPUS_VERSION,
        "noise": NOISE_LEVELS,
        "greetings": GREETINGS,
        "topics": TOPICS,
        "closings": CLOSINGS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _make_call(directory: Path, index: int) -> Call:
    """Call `index` of the corpus: deterministic turns and conditions; cached as WAV + JSON."""
    meta = directory / f"call-{index:04d}.json"
    if not meta.is_file():
        rng = random.Random(index)
        side, telephone = ("left", "right")[index % 2], index % 3 == 2
        noise = NOISE_LEVELS[index % len(NOISE_LEVELS)]
        path = directory / f"call-{index:04d}.wav"
        placed = synthesize_call(path, call_turns(rng), "en", agent_side=side, telephone=telephone, noise=noise)
        agent = " ".join(t.text for t in placed if t.speaker == "agent")
        customer = " ".join(t.text for t in placed if t.speaker == "customer")
        refs = (agent, customer) if side == "left" else (customer, agent)
        record = {"side": side, "telephone": telephone, "noise": noise, "references": refs}
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.rename(meta)
    record = json.loads(meta.read_text())
    path = meta.with_suffix(".wav")
    refs = tuple(record["references"])
    return Call(path, record["side"], record["telephone"], sf.info(str(path)).duration, (refs[0], refs[1]))


def load_corpus(root: Path, minutes: float) -> list[Call]:
    """Calls 0, 1, 2, ... until their total length reaches `minutes` (generated two at a time, cached)."""
    directory = root / _spec_key()
    directory.mkdir(parents=True, exist_ok=True)
    calls: list[Call] = []
    with ThreadPoolExecutor(2) as pool:
        while sum(c.duration_s for c in calls) < minutes * 60:
            start = len(calls)
            calls += pool.map(lambda i: _make_call(directory, i), range(start, start + 2))
    while len(calls) > 1 and sum(c.duration_s for c in calls[:-1]) >= minutes * 60:
        calls.pop()
    return calls


# --------------------------------------------------------------------------- runs


@dataclass
class PathRun:
    """One path's timed run over the corpus."""

    wall_s: float
    cpu_s: dict[str, float]
    hypotheses: dict[tuple[int, int], str] = field(repr=False)
    stages: dict[str, Any] = field(default_factory=dict)

    def figures(self, calls: list[Call]) -> dict[str, Any]:
        audio = sum(c.duration_s for c in calls)
        return {
            "wall_s": self.wall_s,
            "audio_s_per_wall_s": audio / self.wall_s,
            "wer_percent": 100 * wer.corpus_wer([c.references for c in calls], self.hypotheses),
            "cpu_s": self.cpu_s,
            "cpu_s_total": sum(self.cpu_s.values()),
            **self.stages,
            "channels": wer.channel_details(
                [c.path.name for c in calls], [c.references for c in calls], self.hypotheses
            ),
        }


def _cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each process and its children, now."""
    out = {}
    for name, pid in pids.items():
        proc = psutil.Process(pid)
        total = 0.0
        for member in (proc, *proc.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = member.cpu_times()
                total += times.user + times.system
        out[name] = total
    return out


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


# --------------------------------------------------------------------------- the peer


def whisper_dir(cache_dir: Path) -> Path:
    from callscribe.asr.engines.whisper import ensure_whisper_base_dir

    return ensure_whisper_base_dir(cache_dir)


def run_peer(calls: list[Call], model_dir: Path, threads: int, batch_size: int, beam_size: int) -> PathRun:
    """BatchedInferencePipeline, each channel of each call as its own 16 kHz mono array, one after another."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from faster_whisper.audio import decode_audio

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)
    pipeline = BatchedInferencePipeline(model)

    def transcribe(call: Call) -> tuple[str, str]:
        channels = decode_audio(str(call.path), sampling_rate=SAMPLE_RATE, split_stereo=True)
        texts = []
        for audio in channels:
            segments, _ = pipeline.transcribe(audio, language="en", batch_size=batch_size, beam_size=beam_size)
            texts.append(" ".join(s.text.strip() for s in segments))
        return texts[0], texts[1]

    transcribe(calls[0])  # warm-up
    me = {"bench process": os.getpid()}
    before, started = _cpu_of(me), time.perf_counter()
    hypotheses: dict[tuple[int, int], str] = {}
    for i, call in enumerate(calls):
        hypotheses[(i, 0)], hypotheses[(i, 1)] = transcribe(call)
    wall = time.perf_counter() - started
    return PathRun(wall, _cpu_delta(before, _cpu_of(me)), hypotheses)


# --------------------------------------------------------------------------- callscribe


@dataclass(frozen=True)
class ServiceSettings:
    threads: int
    batch_size: int
    max_wait_ms: float
    vad_workers: int
    in_flight: int

    def asr_env(self, cache_dir: Path) -> dict[str, str]:
        return {
            "ASR_ENGINE": "whisper",
            "ASR_MODEL": "base",
            "ASR_DEVICES": "cpu",
            "ASR_REPLICAS_PER_DEVICE": "1",
            "ASR_THREADS_PER_REPLICA": str(self.threads),
            "ASR_MAX_BATCH_SIZE": str(self.batch_size),
            "ASR_MAX_WAIT_MS": str(self.max_wait_ms),
            "ASR_MAX_QUEUE_SEGMENTS": "4096",
            "ASR_LANGUAGE": "en",
            "ASR_MODEL_CACHE_DIR": str(cache_dir),
            "ASR_LOG_LEVEL": "WARNING",
        }

    def vad_env(self) -> dict[str, str]:
        return {
            "VAD_WORKERS": str(self.vad_workers),
            "VAD_POOL": "process",
            "VAD_QUEUE_SIZE": str(max(4, self.in_flight * 2)),
            "VAD_LOG_LEVEL": "WARNING",
        }


class Stack:
    """SeaweedFS (Object Lock buckets) + the VAD and ASR services, as the stack launcher runs them."""

    def __init__(self, work: Path, settings: ServiceSettings, model_cache: Path, cleanup: contextlib.ExitStack):
        self.s3 = servers.start_seaweedfs(work / "s3")
        cleanup.callback(stop, self.s3.process)
        servers.create_locked_buckets(self.s3, (HOT_BUCKET, COLD_BUCKET))
        self.client = servers.minio_client(self.s3)
        tenants = work / "tenants.json"
        token = write_tenants_file(tenants, {TENANT: TenantSpec("GOVERNANCE", 1)})[TENANT]
        self.auth = (("authorization", f"Bearer {token}"),)
        self.work, self.cleanup = work, cleanup
        self.state = {
            "home": str(work),
            "tenants_file": str(tenants),
            "s3": {
                "endpoint": self.s3.endpoint,
                "access_key": self.s3.access_key,
                "secret_key": self.s3.secret_key,
                "hot_bucket": HOT_BUCKET,
                "cold_bucket": COLD_BUCKET,
            },
            "redis": {"url": "redis://127.0.0.1:1/0"},
        }
        self.pids = {"seaweedfs": self.s3.process.pid}
        self.vad = vad_pb2_grpc.VadServiceStub(self._start("vad", settings.vad_env()))
        self.asr = asr_pb2_grpc.AsrServiceStub(self._start("asr", settings.asr_env(model_cache)))

    def _start(self, name: str, extra: dict[str, str]) -> grpc.Channel:
        env = {**service_env(name, self.state), **extra}
        proc = start_service(name, env, self.work / "logs" / f"{name}.log", timeout=600)
        self.cleanup.callback(stop, proc)
        self.pids[name] = proc.pid
        if name == "asr":
            self.asr_metrics_url = metrics_url(name, env)
        channel = grpc.insecure_channel(
            grpc_address(name, env), options=[("grpc.max_receive_message_length", 64 * MIB)]
        )
        self.cleanup.callback(channel.close)
        return channel

    def put(self, call: Call) -> c.ObjectRef:
        """The call in the hot bucket, as ingest stores it (recordings/<tenant>/<id>/audio)."""
        sha = hashlib.sha256(call.path.read_bytes()).hexdigest()
        key = f"recordings/{TENANT}/{sha[:32]}/audio"
        result = self.client.fput_object(HOT_BUCKET, key, str(call.path), part_size=16 * MIB)
        return c.ObjectRef(bucket=HOT_BUCKET, key=key, version_id=result.version_id or "", sha256=sha)

    def asr_metrics(self) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.asr_metrics_url, timeout=10) as reply:
            text = reply.read().decode()
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


@dataclass(frozen=True)
class CallResult:
    texts: tuple[str, str]
    vad_s: float
    asr_s: float
    segments: int
    speech_s: float


def transcribe_call(stack: Stack, call: Call, ref: c.ObjectRef) -> CallResult:
    """What the pipeline worker does with a recording: DetectSpeech, then one Transcribe of all its segments."""
    layout = c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT if call.agent_side == "left" else c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT
    started = time.perf_counter()
    vad = stack.vad.DetectSpeech(
        vad_pb2.DetectSpeechRequest(object=ref, channel_layout=layout), metadata=stack.auth, timeout=RPC_TIMEOUT_S
    )
    vad_done = time.perf_counter()
    segments = [
        asr_pb2.AsrSegment(
            segment_id=str(i), object=ref, start_ms=s.start_ms, end_ms=s.end_ms, channel=s.channel, role=s.role
        )
        for i, s in enumerate(vad.segments)
    ]
    request = asr_pb2.TranscribeRequest(segments=segments, language=c.LANGUAGE_EN, engine=asr_pb2.ASR_ENGINE_WHISPER)
    reply = stack.asr.Transcribe(request, metadata=stack.auth, timeout=RPC_TIMEOUT_S)
    asr_done = time.perf_counter()
    texts: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
    for seg, result in zip(vad.segments, reply.results, strict=True):
        texts[seg.channel].append((seg.start_ms, result.text.strip()))
    joined = tuple(" ".join(t for _, t in sorted(texts[ch])) for ch in (0, 1))
    speech = sum(s.end_ms - s.start_ms for s in vad.segments) / 1000
    return CallResult((joined[0], joined[1]), vad_done - started, asr_done - vad_done, len(segments), speech)


def _metric_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    def d(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = d("callscribe_asr_batch_size_count")
    return {
        "asr_batches": batches,
        "asr_mean_batch": d("callscribe_asr_batch_size_sum") / batches if batches else 0.0,
        "asr_engine_s": d("callscribe_asr_inference_seconds_sum"),
        "asr_engine_calls": d("callscribe_asr_inference_seconds_count"),  # > batches: failed batches were split
    }


def run_callscribe(stack: Stack, calls: list[Call], in_flight: int) -> PathRun:
    """`in_flight` calls at a time through VAD then ASR; wall from the first request to the last result."""
    refs = [stack.put(call) for call in calls]
    transcribe_call(stack, calls[0], refs[0])  # warm-up
    metrics, cpu_before = stack.asr_metrics(), _cpu_of(stack.pids)
    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        results = list(pool.map(lambda pair: transcribe_call(stack, *pair), zip(calls, refs, strict=True)))
    wall = time.perf_counter() - started
    cpu = _cpu_delta(cpu_before, _cpu_of(stack.pids))
    stages = {
        "vad_s_sum": sum(r.vad_s for r in results),
        "asr_s_sum": sum(r.asr_s for r in results),
        "segments": sum(r.segments for r in results),
        "speech_s": sum(r.speech_s for r in results),
        **_metric_delta(metrics, stack.asr_metrics()),
    }
    hypotheses = {(i, ch): r.texts[ch] for i, r in enumerate(results) for ch in (0, 1)}
    return PathRun(wall, cpu, hypotheses, stages)


# --------------------------------------------------------------------------- report


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    ours, peer = result["callscribe"], result["peer"]
    ratio = ours["audio_s_per_wall_s"] / peer["audio_s_per_wall_s"]
    wer_diff = ours["wer_percent"] - peer["wer_percent"]
    return {
        "throughput_ratio": ratio,
        "throughput_ok": ratio >= RATIO_TARGET,
        "wer_diff_points": wer_diff,
        "wer_ok": wer_diff <= WER_TARGET_POINTS,
    }


def _print_paths(result: dict[str, Any]) -> None:
    print(f"\n{'':44s} {'wall s':>8s} {'audio s/s':>10s} {'WER %':>7s} {'CPU s':>8s}")
    for key, label in (("callscribe", "callscribe (VAD + ASR services, gRPC, S3)"), ("peer", "faster-whisper Batched")):
        r = result[key]
        print(
            f"{label:44s} {r['wall_s']:8.1f} {r['audio_s_per_wall_s']:10.2f} "
            f"{r['wer_percent']:7.2f} {r['cpu_s_total']:8.1f}"
        )
    ours = result["callscribe"]
    split = ", ".join(f"{k} {v:.1f}" for k, v in ours["cpu_s"].items())
    print(f"\ncallscribe CPU s by process: {split}; peer: bench process {result['peer']['cpu_s_total']:.1f}")
    print(
        f"callscribe stages (per-call latencies summed over {result['corpus']['calls']} calls, overlapping): "
        f"VAD {ours['vad_s_sum']:.1f} s, ASR {ours['asr_s_sum']:.1f} s; {ours['segments']} segments, "
        f"{ours['speech_s']:.0f} s of speech; ASR engine busy {ours['asr_engine_s']:.1f} s in "
        f"{ours['asr_batches']:.0f} batches (mean {ours['asr_mean_batch']:.1f} segments)"
    )
    if ours["asr_engine_calls"] > ours["asr_batches"]:
        print(
            f"  {ours['asr_engine_calls']:.0f} engine calls for {ours['asr_batches']:.0f} batches: failed batches split"
        )


def report(result: dict[str, Any]) -> None:
    corpus, s = result["corpus"], result["settings"]
    print(
        f"\ncorpus: {corpus['minutes']:.1f} min, {corpus['calls']} calls, {corpus['channels']} channels "
        f"(synthetic English, stereo; {corpus['telephone_calls']} of them 8 kHz mu-law)"
    )
    print(
        f"settings: Whisper base CTranslate2 int8, language en, beam {s['beam_size']}; callscribe: ASR 1 replica x "
        f"{s['threads']} threads, max batch {s['batch_size']}, max wait {s['max_wait_ms']:g} ms, VAD "
        f"{s['vad_workers']} worker (FSMN), {s['in_flight']} calls in flight; peer: cpu_threads={s['threads']}, "
        f"batch_size={s['batch_size']}, its Silero VAD, channels one after another; {result['host']['cpus']} cores"
    )
    load = result["host"]
    print(f"load average (1 min) at start {load['load_avg_start'][0]:.1f}, at end {load['load_avg_end'][0]:.1f}")
    _print_paths(result)
    v = result["verdict"]
    print(
        f"\ncallscribe / peer throughput: {v['throughput_ratio']:.2f}x (target >= {RATIO_TARGET}: "
        f"{'PASS' if v['throughput_ok'] else 'MISS'})"
    )
    print(
        f"WER difference: {v['wer_diff_points']:+.2f} points (target <= +{WER_TARGET_POINTS:g}: "
        f"{'PASS' if v['wer_ok'] else 'MISS'})"
    )


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="corpus length (call audio)")
    parser.add_argument("--quick", action="store_true", help="a 5-minute corpus")
    parser.add_argument("--calls-in-flight", type=int, default=6, help="concurrent calls on the callscribe path")
    parser.add_argument("--threads", type=int, default=2, help="ASR replica threads = peer cpu_threads")
    parser.add_argument("--batch-size", type=int, default=16, help="ASR max batch = peer batch_size")
    parser.add_argument("--max-wait-ms", type=float, default=20.0, help="ASR_MAX_WAIT_MS")
    parser.add_argument("--beam-size", type=int, default=1, help="peer beam (the service decodes greedily)")
    parser.add_argument("--corpus-dir", type=Path, default=Path.home() / ".cache" / "callscribe" / "bench-asr")
    parser.add_argument("--model-cache", type=Path, default=Path.home() / ".cache" / "callscribe" / "models")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.minutes = 5.0
    return args


def corpus_facts(calls: list[Call]) -> dict[str, Any]:
    return {
        "minutes": sum(c.duration_s for c in calls) / 60,
        "calls": len(calls),
        "channels": 2 * len(calls),
        "telephone_calls": sum(c.telephone for c in calls),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    calls = load_corpus(args.corpus_dir, args.minutes)
    settings = ServiceSettings(args.threads, args.batch_size, args.max_wait_ms, 1, args.calls_in_flight)
    result: dict[str, Any] = {
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_start": os.getloadavg()},
        "corpus": corpus_facts(calls),
        "settings": {**asdict(settings), "beam_size": args.beam_size},
    }
    model_dir = whisper_dir(args.model_cache)
    with contextlib.ExitStack() as cleanup:
        stack = Stack(work, settings, args.model_cache, cleanup)
        result["callscribe"] = run_callscribe(stack, calls, args.calls_in_flight).figures(calls)
    peer = run_peer(calls, model_dir, args.threads, args.batch_size, args.beam_size)
    result["peer"] = peer.figures(calls)
    result["verdict"] = verdict(result)
    result["host"]["load_avg_end"] = os.getloadavg()
    return result


def main() -> int:
    args = parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"bench needs {tool}", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="callscribe-bench-asr-"))
    try:
        result = run(args, work)
    except Exception as exc:  # noqa: BLE001 - report and exit 1
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
