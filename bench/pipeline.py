"""Pipeline benchmark: synthetic two-channel calls through the whole local stack, end to end.

    python bench/pipeline.py [--calls 50] [--min-s 60] [--max-s 180] [--concurrency 8] [--json OUT]

Starts the local stack (`callscribe.stack.up`: SeaweedFS, Redis, the Elasticsearch-API server,
ingest, VAD, ASR (Whisper base, int8, CPU), indexer and the worker) in a temp dir, generates the
calls with espeak-ng and sox (English and Mandarin, agent left or right, 1 to 3 minutes; cached in
.bench-cache/pipeline), uploads them all, and waits until every one is indexed. Reports:
- audio hours per wall hour (first upload to last call indexed);
- CPU seconds per audio hour, per service process (with its children) and for the servers;
- time per stage (the worker's `callscribe_ingest_worker_stage_seconds` histogram: mean, sum);
- peak RSS per service (sampled every 0.5 s);
- the indexer's write rate: every indexed call is indexed again through `IndexCall` (gRPC,
  `--concurrency` callers, as the worker calls it), against the raw `elasticsearch.helpers.bulk`
  of the very same documents (the indexer's own document builder), per call with the same refresh
  policy and the same concurrency, into fresh indices with the same templates. Target: >= 0.8x.
Exit 0 on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import psutil
import soundfile as sf
from elasticsearch import Elasticsearch, helpers

from callscribe.cli.samples import Turn, synthesize_call
from callscribe.cli.uploads import file_sha256
from callscribe.stack import stack
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2, indexer_pb2_grpc, ingest_pb2, ingest_pb2_grpc

TENANT = "acme"
BULK_TARGET = 0.8
CACHE = Path(".bench-cache/pipeline")

EN_AGENT = [
    "Thank you for calling customer support, my name is Dana, how can I help you today?",
    "I am sorry to hear that, let me check your account.",
    "Could you please confirm your order number?",
    "Under our refund policy you can return it within thirty days.",
    "The refund of eighty five dollars will reach your card in three days.",
    "I have updated the address on your account.",
    "Is there anything else I can help you with?",
    "Thank you for calling, have a nice day.",
]
EN_CUSTOMER = [
    "Hi, I bought a blender last week and it stopped working.",
    "I would like a refund for my order.",
    "My order number is one two three four five.",
    "I was charged twice for the same order.",
    "When will the money be back on my card?",
    "I want to cancel my subscription.",
    "That is great, thank you very much.",
    "No, that is all, goodbye.",
]
ZH_AGENT = [
    "您好，欢迎致电客服中心，请问有什么可以帮您？",
    "好的，请问您的订单号是多少？",
    "根据我们的退费政策，三十天内可以退货。",
    "已经为您办理退费，三个工作日内到账。",
    "请问还有什么可以帮您？",
    "感谢您的来电，再见。",
]
ZH_CUSTOMER = [
    "你好，我想咨询一下退费政策。",
    "我上周买的东西有问题。",
    "订单号是一二三四五，金额是一百五十八块五。",
    "我想取消我的会员。",
    "好的，谢谢你。",
]


def make_calls(count: int, min_s: float, max_s: float, seed: int = 7) -> list[tuple[Path, str, str, float]]:
    """(path, language, agent side, seconds) per call; cached by parameters."""
    rng = random.Random(seed)
    directory = CACHE / f"{int(min_s)}-{int(max_s)}-{seed}"  # call i is the same whatever the count
    directory.mkdir(parents=True, exist_ok=True)
    calls = []
    for i in range(count):
        language = "zh" if i % 3 == 2 else "en"
        side = "left" if i % 2 == 0 else "right"
        target_s = rng.uniform(min_s, max_s)
        path = directory / f"call-{i:03d}-{language}.wav"
        if not path.exists():
            agent, customer = (ZH_AGENT, ZH_CUSTOMER) if language == "zh" else (EN_AGENT, EN_CUSTOMER)
            per_turn_s = 3.2 if language == "en" else 3.6
            turns = []
            for t in range(max(2, int(target_s / (per_turn_s + 0.6)))):
                pool = agent if t % 2 == 0 else customer
                turns.append(Turn("agent" if t % 2 == 0 else "customer", rng.choice(pool)))
            synthesize_call(path, turns, language, agent_side=side, gap_ms=rng.choice((400, 600, 900, 1500)))
        calls.append((path, language, side, sf.info(str(path)).duration))
    return calls


class Sampler:
    """Peak RSS and CPU seconds per named process (with its children), sampled in the background."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak_rss: dict[str, int] = dict.fromkeys(pids, 0)
        self._cpu0 = {name: self._cpu(p) for name, p in self._procs.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _family(proc: psutil.Process) -> list[psutil.Process]:
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu(self, proc: psutil.Process) -> float:
        total = 0.0
        for p in self._family(proc):
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, proc in self._procs.items():
                rss = 0
                for p in self._family(proc):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rss += p.memory_info().rss
                self.peak_rss[name] = max(self.peak_rss[name], rss)

    def cpu_seconds(self) -> dict[str, float]:
        return {name: self._cpu(p) - self._cpu0[name] for name, p in self._procs.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def upload(stub: ingest_pb2_grpc.IngestServiceStub, token: str, path: Path, language: str, side: str) -> str:
    meta = c.RecordingMetadata(
        call_id=path.stem,
        agent_id=f"agent-{hash(path.stem) % 5}",
        channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT if side == "left" else c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
        language=c.LANGUAGE_ZH if language == "zh" else c.LANGUAGE_EN,
        filename=path.name,
    )
    data = path.read_bytes()
    chunk = 1024 * 1024  # the service takes chunks of at most 4 MiB
    messages = iter(
        [
            ingest_pb2.UploadRecordingRequest(metadata=meta, sha256=file_sha256(path), size_bytes=len(data)),
            *(ingest_pb2.UploadRecordingRequest(chunk=data[i : i + chunk]) for i in range(0, len(data), chunk)),
        ]
    )
    ack = stub.UploadRecording(messages, metadata=[("authorization", f"Bearer {token}")], timeout=120)
    return str(ack.recording_id)


def stage_times(metrics_url: str) -> dict[str, dict[str, float]]:
    body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    stages: dict[str, dict[str, float]] = {}
    for line in body.splitlines():
        for kind in ("sum", "count"):
            prefix = f'callscribe_ingest_worker_stage_seconds_{kind}{{stage="'
            if line.startswith(prefix):
                stage = line[len(prefix) :].split('"', 1)[0]
                stages.setdefault(stage, {})[kind] = float(line.split()[-1])
    return {
        s: {"sum_s": v.get("sum", 0.0), "mean_s": v.get("sum", 0.0) / max(1.0, v.get("count", 0.0))}
        for s, v in stages.items()
    }


def bulk_comparison(state: dict[str, Any], token: str, ids: list[str], concurrency: int) -> dict[str, Any]:
    """The indexer's document writes against raw helpers.bulk of the same documents, same run, same server.

    - indexer bulk path: `EsStore.index_call` (the service's write code: locate the call's documents,
      one bulk with overwrite in place and stale deletes, refresh as configured) on the stored, enriched
      calls, `concurrency` threads, first into a fresh tenant's indices, then once more (re-index);
    - raw: `helpers.bulk` of the same documents (built by the indexer's own document code) per call, same
      refresh policy, same threads, into fresh indices with the same mappings; and all of them in one bulk;
    - IndexCall over gRPC with enrichment (ITN, punctuation, analytics, sentiment), as the worker calls it.
    """
    from prometheus_client import CollectorRegistry

    from callscribe.indexer import documents, mappings
    from callscribe.indexer.es.client import make_client
    from callscribe.indexer.metrics import IndexerMetrics
    from callscribe.indexer.settings import IndexerSettings
    from callscribe.indexer.store import EsStore

    auth = [("authorization", f"Bearer {token}")]
    indexer = indexer_pb2_grpc.IndexerServiceStub(grpc.insecure_channel(state["grpc"]["indexer"]))
    enriched = [indexer.GetCall(indexer_pb2.GetCallRequest(recording_id=i), metadata=auth, timeout=30) for i in ids]
    raw_calls = []
    for stored in enriched:  # what the worker sends: IndexCall computes the rest itself
        call = indexer_pb2.Call()
        call.CopyFrom(stored)
        call.ClearField("analytics")
        call.ClearField("indexed_at")
        for u in call.utterances:
            u.normalized_text = ""
            u.sentiment = 0.0
        raw_calls.append(call)
    total_docs = sum(1 + len(call.utterances) for call in enriched)

    settings = IndexerSettings(  # type: ignore[call-arg]
        elasticsearch_url=state["elasticsearch"]["url"], tenants_file=Path(state["tenants_file"])
    )
    store = EsStore(make_client(settings), settings, IndexerMetrics(CollectorRegistry()))
    store.connect()

    es = Elasticsearch(state["elasticsearch"]["url"], request_timeout=60)
    from callscribe.kit.tenants import Tenant

    # Enough documents to time (the stored calls copied under new recording ids), each side writing them
    # for the first time (fresh tenant indices for the indexer, fresh indices for raw bulk) in 3 rounds taken
    # in turn, then once more over the same documents (re-index). Raw bulk gets its documents ready-made;
    # the indexer builds them from the Call, as it must.
    copies = max(1, -(-3000 // total_docs))
    stamp = int(time.time())

    def copies_for(tenant: str) -> list[indexer_pb2.Call]:
        out = []
        for k in range(copies):
            for stored in enriched:
                call = indexer_pb2.Call()
                call.CopyFrom(stored)
                call.tenant = tenant
                call.metadata.tenant = tenant
                call.recording_id = f"{stored.recording_id[:28]}{k:04x}"
                out.append(call)
        return out

    def timed(fn: Any, items: list[Any]) -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(fn, items))
        return time.perf_counter() - started

    def raw_round(n: int) -> tuple[float, list[list[dict[str, Any]]]]:
        calls_index, utterances_index = f"benchraw{stamp}-{n}-calls", f"benchraw{stamp}-{n}-utterances"
        for name, kind in ((calls_index, "calls"), (utterances_index, "utterances")):
            es.indices.create(index=name, mappings=mappings.mappings(kind))
        batches = [documents.bulk_actions(c, calls_index, utterances_index) for c in copies_for("acme")]
        return timed(lambda batch: helpers.bulk(es, batch, refresh=settings.refresh), batches), batches

    def store_round(n: int) -> tuple[float, Tenant, list[indexer_pb2.Call]]:
        tenant = Tenant(name=f"benchw{stamp}r{n}")
        store.ensure_tenant(tenant)
        calls = copies_for(tenant.name)
        return timed(lambda call: store.index_call(tenant, call), calls), tenant, calls

    rounds = []
    for n in range(3):
        if n % 2 == 0:
            raw = raw_round(n)
            written = store_round(n)
        else:
            written = store_round(n)
            raw = raw_round(n)
        rounds.append((raw[0], written[0]))
    docs_written = total_docs * copies
    raw_s = sorted(r for r, _ in rounds)[1]
    store_s = sorted(w for _, w in rounds)[1]
    again_raw_s = timed(lambda batch: helpers.bulk(es, batch, refresh=settings.refresh), raw[1])
    _, tenant, calls = written
    again_store_s = timed(lambda call: store.index_call(tenant, call), calls)
    figures = {"again": (again_raw_s, again_store_s)}
    actions = raw[1]
    started = time.perf_counter()
    helpers.bulk(es, [a for batch in actions for a in batch], chunk_size=500, refresh=settings.refresh)
    one_bulk_s = time.perf_counter() - started

    # As the worker calls it: IndexCall takes only the pipeline's service account, acting for the tenant.
    pipeline_auth = [("authorization", f"Bearer {state['service_token']}"), ("x-callscribe-tenant", TENANT)]

    def via_indexer(call: indexer_pb2.Call) -> None:
        indexer.IndexCall(indexer_pb2.IndexCallRequest(call=call), metadata=pipeline_auth, timeout=120)

    rpc_s = timed(via_indexer, raw_calls)
    return {
        "calls": len(enriched),
        "documents": docs_written,
        "rounds_s": rounds,
        "concurrency": concurrency,
        "refresh": settings.refresh,
        "indexer_bulk_docs_per_s": docs_written / store_s,
        "raw_per_call_docs_per_s": docs_written / raw_s,
        "ratio": raw_s / store_s,
        "target": BULK_TARGET,
        "met": raw_s / store_s >= BULK_TARGET,
        "reindex_indexer_docs_per_s": docs_written / figures["again"][1],
        "reindex_raw_docs_per_s": docs_written / figures["again"][0],
        "reindex_ratio": figures["again"][0] / figures["again"][1],
        "raw_one_bulk_docs_per_s": docs_written / one_bulk_s,
        "index_call_rpc_docs_per_s": total_docs / rpc_s,
        "index_call_rpc_ms_per_call": 1000 * rpc_s * concurrency / len(enriched),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--min-s", type=float, default=60.0)
    parser.add_argument("--max-s", type=float, default=180.0)
    parser.add_argument("--concurrency", type=int, default=8, help="IndexCall callers in the bulk comparison")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    print(f"generating {args.calls} calls of {args.min_s:.0f}-{args.max_s:.0f} s (cached in {CACHE}) ...", flush=True)
    calls = make_calls(args.calls, args.min_s, args.max_s)
    audio_s = sum(seconds for *_, seconds in calls)
    print(f"  {len(calls)} calls, {audio_s / 60:.1f} min of audio", flush=True)
    home = Path(tempfile.mkdtemp(prefix="callscribe-bench-pipeline-"))
    state = stack.up(home, prometheus=False)
    try:
        pids = {name: entry["pid"] for name, entry in state["processes"].items()}
        services = {n: p for n, p in pids.items() if n in ("ingest", "vad", "asr", "indexer", "worker")}
        servers_ = {n: p for n, p in pids.items() if n not in services}
        sampler = Sampler(pids)
        token = state["tenants"][TENANT]
        ingest = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(state["grpc"]["ingest"]))
        started = time.perf_counter()
        ids = [upload(ingest, token, path, language, side) for path, language, side, _ in calls]
        uploaded_s = time.perf_counter() - started
        print(f"  uploaded in {uploaded_s:.1f} s; waiting for the pipeline ...", flush=True)
        auth = [("authorization", f"Bearer {token}")]
        pending = set(ids)
        failed: list[str] = []
        last_report = 0.0
        while pending:
            for rec_id in list(pending):
                rec = ingest.GetRecording(ingest_pb2.GetRecordingRequest(recording_id=rec_id), metadata=auth)
                if rec.state == c.PIPELINE_STATE_DONE:
                    pending.discard(rec_id)
                elif rec.state == c.PIPELINE_STATE_FAILED:
                    pending.discard(rec_id)
                    failed.append(f"{rec_id}: {rec.state_detail}")
            if time.perf_counter() - last_report > 30:
                print(
                    f"  {len(ids) - len(pending)}/{len(ids)} done after {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
                last_report = time.perf_counter()
            time.sleep(1.0)
        wall_s = time.perf_counter() - started
        cpu = sampler.cpu_seconds()
        sampler.stop()
        audio_h = audio_s / 3600
        stages = stage_times(state["metrics"]["worker"])
        print("  comparing the indexer's writes with raw helpers.bulk ...", flush=True)
        bulk = bulk_comparison(
            state, token, [i for i in ids if not any(f.startswith(i) for f in failed)], args.concurrency
        )
    finally:
        stack.down(home)
    result = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
        "calls": len(calls),
        "audio_minutes": audio_s / 60,
        "failed": failed,
        "wall_s": wall_s,
        "audio_hours_per_wall_hour": audio_s / wall_s,
        "cpu_s_per_audio_hour": {n: cpu[n] / audio_h for n in services}
        | {"servers": sum(cpu[n] for n in servers_) / audio_h},
        "stage_seconds": stages,
        "peak_rss_mib": {n: sampler.peak_rss[n] / 2**20 for n in pids},
        "bulk": bulk,
    }
    print(f"\n== {len(calls)} calls, {audio_s / 60:.1f} min of audio, {len(failed)} failed")
    print(f"wall {wall_s:.0f} s: {result['audio_hours_per_wall_hour']:.2f} audio hours per wall hour")
    print("CPU seconds per audio hour: " + ", ".join(f"{n} {v:.0f}" for n, v in result["cpu_s_per_audio_hour"].items()))
    print("stages (mean s per recording): " + ", ".join(f"{s} {v['mean_s']:.2f}" for s, v in stages.items()))
    print("peak RSS MiB: " + ", ".join(f"{n} {v:.0f}" for n, v in result["peak_rss_mib"].items()))
    print(
        f"indexer bulk writes: {bulk['indexer_bulk_docs_per_s']:.0f} docs/s (EsStore.index_call, {args.concurrency} "
        f"threads, refresh={bulk['refresh']}) vs raw helpers.bulk per call {bulk['raw_per_call_docs_per_s']:.0f} "
        f"docs/s: ratio {bulk['ratio']:.2f} (target >= {BULK_TARGET}: {'met' if bulk['met'] else 'MISS'}); "
        f"raw one bulk of everything {bulk['raw_one_bulk_docs_per_s']:.0f} docs/s"
    )
    print(
        f"re-indexing the same calls: indexer {bulk['reindex_indexer_docs_per_s']:.0f} docs/s vs raw "
        f"{bulk['reindex_raw_docs_per_s']:.0f} docs/s: ratio {bulk['reindex_ratio']:.2f}"
    )
    print(
        f"IndexCall over gRPC with enrichment (ITN, punctuation, analytics, sentiment): "
        f"{bulk['index_call_rpc_docs_per_s']:.0f} docs/s, {bulk['index_call_rpc_ms_per_call']:.0f} ms per call"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
