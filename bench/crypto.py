"""Encryption at rest benchmark (issue 19): ingest throughput and CPU per GiB with encryption against without,
in one run.

    python bench/crypto.py [--count 16] [--size-mb 8] [--rounds 2] [--json OUT]

Starts SeaweedFS (the stack's Object Lock buckets and an unversioned keys bucket) and Redis in a temp dir, and two
real ingest processes (`python -m callscribe.ingest`, the local stack's environment): one plain, one with a KEK
file (every recording encrypted with its own data key, Tink AES256_GCM_HKDF_1MB, wrapped and stored in the keys
bucket). Both receive the same kind of uploads, --count WAV recordings of --size-mb of random 16-bit PCM each,
sent over gRPC in 256 KiB chunks, 4 at a time, rounds interleaved (plain, encrypted, plain, ...) so drift falls on
both. Measured per process: wall MiB/s, and CPU seconds per GiB (user + system of the ingest process, from
/proc through psutil, before and after each round). Target: encryption adds at most 15 % CPU per GiB.
MB means MiB. Exit 0 even on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import struct
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import psutil

from callscribe.stack import servers
from callscribe.stack.procs import stop
from callscribe.stack.services import grpc_address, service_env, start_service
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET, KEYS_BUCKET
from callscribe.stack.tenants import TenantSpec, write_tenants_file
from callscribe.storage.keys import FileKek
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

MIB = 1024 * 1024
CHUNK = 256 * 1024
TENANT = "bench"
TARGET = 1.15


def wav(size: int) -> bytes:
    pcm = os.urandom(size - 44)
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", len(pcm))
    return header + pcm


def upload(stub: ingest_pb2_grpc.IngestServiceStub, token: str, data: bytes, n: int) -> None:
    def messages():  # type: ignore[no-untyped-def]
        meta = c.RecordingMetadata(call_id=f"bench-{n}", agent_id="agent", filename="call.wav")
        yield pb.UploadRecordingRequest(metadata=meta)
        view = memoryview(data)
        for at in range(0, len(data), CHUNK):
            yield pb.UploadRecordingRequest(chunk=bytes(view[at : at + CHUNK]))

    reply = stub.UploadRecording(messages(), metadata=(("authorization", f"Bearer {token}"),), timeout=300)
    if reply.sha256 != hashlib.sha256(data).hexdigest() or reply.duplicate:
        raise RuntimeError(f"upload {n}: unexpected reply {reply}")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def round_of(name: str, ingest: dict[str, Any], token: str, count: int, size: int, seed: int) -> dict[str, float]:
    payloads = [wav(size) for _ in range(count)]
    proc = psutil.Process(ingest["pid"])
    cpu0, t0 = cpu_seconds(proc), time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: upload(ingest["stub"], token, payloads[i], seed + i), range(count)))
    wall, cpu = time.perf_counter() - t0, cpu_seconds(proc) - cpu0
    gib = count * size / 1024**3
    return {"mib_s": count * size / MIB / wall, "cpu_s_per_gib": cpu / gib, "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="callscribe-bench-crypto-"))
    started: list[Any] = []
    try:
        s3 = servers.start_seaweedfs(home / "s3", home / "logs" / "s3.log")
        started.append(s3.process)
        servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET))
        servers.create_keys_bucket(s3, KEYS_BUCKET)
        redis = servers.start_redis(home / "redis", home / "logs" / "redis.log")
        started.append(redis.process)
        tokens = write_tenants_file(home / "tenants.json", {TENANT: TenantSpec("GOVERNANCE", 1)})
        kek = FileKek.create(home / "kek.json")
        state = {
            "home": str(home), "tenants_file": str(home / "tenants.json"), "redis": {"url": redis.url},
            "s3": {"endpoint": s3.endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key,
                   "hot_bucket": HOT_BUCKET, "cold_bucket": COLD_BUCKET, "keys_bucket": KEYS_BUCKET},
        }  # fmt: skip
        ingests: dict[str, dict[str, Any]] = {}
        for name, extra in (("plain", {}), ("encrypted", {"kek_file": str(kek.path)})):
            env = service_env("ingest", {**state, "home": str(home / name), **extra})
            env["INGEST_MAX_UPLOAD_MB"] = str(args.size_mb * 2)
            proc = start_service("ingest", env, home / "logs" / f"ingest-{name}.log")
            started.append(proc)
            channel = grpc.insecure_channel(grpc_address("ingest", env))
            ingests[name] = {"pid": proc.pid, "stub": ingest_pb2_grpc.IngestServiceStub(channel)}
        size = args.size_mb * MIB
        results: dict[str, list[dict[str, float]]] = {"plain": [], "encrypted": []}
        seed = 0
        for n in range(args.rounds):
            for name in ("plain", "encrypted"):
                result = round_of(name, ingests[name], tokens[TENANT], args.count, size, seed)
                seed += args.count
                results[name].append(result)
                line = f"{result['mib_s']:7.1f} MiB/s  {result['cpu_s_per_gib']:6.2f} CPU s/GiB"
                print(f"round {n + 1} {name:<9}: {line}", flush=True)
        summary = {
            name: {key: sum(r[key] for r in rs) / len(rs) for key in ("mib_s", "cpu_s_per_gib")}
            for name, rs in results.items()
        }
        ratio = summary["encrypted"]["cpu_s_per_gib"] / summary["plain"]["cpu_s_per_gib"]
        speed = summary["encrypted"]["mib_s"] / summary["plain"]["mib_s"]
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(f"\n{'':<10} {'MiB/s':>8} {'CPU s/GiB':>10}")
        for name, s in summary.items():
            print(f"{name:<10} {s['mib_s']:8.1f} {s['cpu_s_per_gib']:10.2f}")
        print(f"encryption: CPU per GiB x{ratio:.3f} (target <= x{TARGET}: {verdict}); throughput x{speed:.3f}")
        if args.json:
            machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
            doc = {"rounds": results, "summary": summary, "cpu_ratio": ratio, "speed_ratio": speed,
                   "verdict": verdict, "machine": machine}  # fmt: skip
            args.json.write_text(json.dumps(doc, indent=2))
        return 0
    finally:
        for proc in reversed(started):
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
