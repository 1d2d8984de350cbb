"""Fairness benchmark: short calls uploaded behind long ones, through the whole local stack.

    python bench/fairness.py [--long-s 1320] [--long 2] [--short-s 20] [--short 3] [--json OUT]

Starts the local stack (as bench/pipeline.py does: SeaweedFS, Redis, the Elasticsearch-API server,
ingest, VAD, ASR (Whisper base, int8, CPU), indexer and the worker), uploads `--long` calls of
`--long-s` seconds, waits until all of them are being transcribed, then uploads `--short` calls of
`--short-s` seconds one after the other (each once the previous one is indexed) and measures each
one's time from acknowledged upload to indexed. Target (issue 15, on a 2-core box): with two
22-minute calls in flight, a 20 s call is indexed in under 60 s. Also printed: the long calls'
progress line when the last short call was indexed. The long calls are not waited for.
Exit 0 on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil
from pipeline import TENANT, make_calls, upload

from callscribe.stack import stack
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2, ingest_pb2_grpc

TARGET_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-s", type=float, default=1320.0, help="length of each long call (22 min)")
    parser.add_argument("--long", type=int, default=2, help="long calls in flight")
    parser.add_argument("--short-s", type=float, default=20.0)
    parser.add_argument("--short", type=int, default=3, help="short calls measured, one after the other")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    print(f"generating {args.long} calls of {args.long_s:.0f} s and {args.short} of {args.short_s:.0f} s ...")
    long_calls = make_calls(args.long, args.long_s, args.long_s, seed=11)
    short_calls = make_calls(args.short, args.short_s, args.short_s, seed=13)
    home = Path(tempfile.mkdtemp(prefix="callscribe-bench-fairness-"))
    state = stack.up(home, prometheus=False)
    try:
        token = state["tenants"][TENANT]
        auth = [("authorization", f"Bearer {token}")]
        ingest = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(state["grpc"]["ingest"]))

        def get(rec_id: str) -> ingest_pb2.Recording:
            return ingest.GetRecording(ingest_pb2.GetRecordingRequest(recording_id=rec_id), metadata=auth, timeout=10)

        long_ids = [upload(ingest, token, path, language, side) for path, language, side, _ in long_calls]
        print(f"  {len(long_ids)} long calls uploaded; waiting until all are in ASR ...", flush=True)
        deadline = time.monotonic() + 900
        while not all(get(i).state == c.PIPELINE_STATE_ASR for i in long_ids):
            if time.monotonic() > deadline:
                print("ERROR: the long calls never reached ASR", file=sys.stderr)
                return 1
            time.sleep(0.5)
        times: list[float] = []
        for path, language, side, seconds in short_calls:
            started = time.perf_counter()
            rec_id = upload(ingest, token, path, language, side)
            while True:
                rec = get(rec_id)
                if rec.state == c.PIPELINE_STATE_DONE:
                    break
                if rec.state == c.PIPELINE_STATE_FAILED:
                    print(f"ERROR: short call {rec_id} failed: {rec.state_detail}", file=sys.stderr)
                    return 1
                if time.perf_counter() - started > 1800:
                    print(f"ERROR: short call {rec_id} not indexed after 30 min", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            took = time.perf_counter() - started
            times.append(took)
            print(f"  short call of {seconds:.1f} s indexed {took:.1f} s after its upload", flush=True)
        long_progress = {i: f"{c.PipelineState.Name(get(i).state)}: {get(i).state_detail}" for i in long_ids}
    finally:
        stack.down(home)
    verdict = "PASS" if max(times) < TARGET_S else "MISS"
    print(
        f"time to indexed for a {args.short_s:.0f} s call behind {args.long} x {args.long_s / 60:.0f} min: "
        f"median {statistics.median(times):.1f} s, max {max(times):.1f} s (target < {TARGET_S:.0f} s: {verdict})"
    )
    for rec_id, line in long_progress.items():
        print(f"  long call {rec_id[:8]}: {line}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
                    "long_calls": args.long,
                    "long_s": args.long_s,
                    "short_s": args.short_s,
                    "short_time_to_indexed_s": times,
                    "target_s": TARGET_S,
                    "verdict": verdict,
                    "long_progress": long_progress,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
