"""Storage lifecycle benchmark (issue 18): the mover against a raw S3 copy, the audit against sha256sum, and the
lifecycle's memory on a 1 GiB recording.

    python bench/lifecycle.py [--count 24] [--size-mb 8] [--big-mb 1024] [--json OUT]

Starts SeaweedFS (hot and cold buckets of one server, and a locked scratch bucket for the peer) and Redis in a
temp dir, archives --count recordings of --size-mb random bytes as ingest does (locked, SHA-256 and record in
their metadata), then:
1. move: the real lifecycle program (`python -m callscribe.ingest lifecycle`, one replica) moves them all
   (`RunTiering`, --concurrency recordings at once: copy hashed while read, read back and hashed again,
   location written); the peer copies the same objects with the minio client as wide (get_object streamed
   into put_object, locked, nothing checked), before and after the mover so drift falls on both; target:
   mover >= 0.8x the peer in MiB/s;
2. audit: `RunAudit` re-hashes every copy (hot and cold: 2 x count objects) at no rate limit; the peer is
   `sha256sum` over the same bytes in local files (page cache warm), and the bare S3 read rate (get_object,
   no hashing) is shown too; target: audit >= 0.8x sha256sum;
3. memory: one --big-mb recording moved while the lifecycle's RSS is sampled; target: its peak RSS grows by
   less than 64 MiB over the peak of the small moves (bounded by the part size, not the recording size).
MB means MiB. Exit 0 even on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psutil
from minio.commonconfig import GOVERNANCE
from minio.retention import Retention

from callscribe.ingest.model import ArchivedRecording, AudioFacts, LockPolicy, RecordingInfo, recording_id
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.stack import servers
from callscribe.stack.procs import free_port, stop
from callscribe.stack.services import grpc_address, service_env, start_service
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET
from callscribe.stack.tenants import TenantSpec, write_tenants_file
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.location import Tier
from callscribe.v1 import lifecycle_pb2 as lpb
from callscribe.v1 import lifecycle_pb2_grpc

MIB = 1024 * 1024
TENANT = "bench"
RAW_BUCKET = "bench-raw-copy"
PART = 16 * MIB


def _archive(store: S3RecordingStore, data_source: Any, size: int, name: str) -> ArchivedRecording:
    """A recording archived as ingest archives one: locked, its SHA-256 and record in the metadata."""
    sha = hashlib.sha256()
    for chunk in data_source(size):  # a first pass for the SHA-256, as a client declaring it would
        sha.update(chunk)
    digest = sha.hexdigest()
    rec_id = recording_id(TENANT, digest)
    now = datetime.now(UTC).replace(microsecond=0)
    policy = LockPolicy("GOVERNANCE", now + timedelta(days=1))
    facts = AudioFacts("WAV", "PCM_16", 16000, 1, size // 2, size // 32)
    record = ArchivedRecording(
        rec_id, TENANT, RecordingInfo(TENANT, name, "agent"), facts, "MONO", size, digest, now, retention=policy
    )
    writer = store.open_audio(TENANT, rec_id, digest, name, policy)
    for chunk in data_source(size):
        writer.write(chunk)
    store.commit_audio(writer, record, policy, looked_up=True)
    return record


def _source(seed: int):  # type: ignore[no-untyped-def]
    """Deterministic incompressible bytes (SeaweedFS gzips compressible ones), 1 MiB at a time: the same seed
    gives the same bytes, so the recordings can be hashed before they are written and written again to files."""

    def chunks(size: int):  # type: ignore[no-untyped-def]
        rng = random.Random(seed)
        for at in range(0, size, MIB):
            yield rng.randbytes(min(MIB, size - at))

    return chunks


def _raw_copy(client: Any, keys: list[tuple[str, int]], width: int, suffix: str = "", read_back: bool = False) -> float:
    """The peer: every object streamed from the hot bucket into a locked scratch bucket by the minio client,
    `width` at once (the lifecycle's concurrency), nothing hashed or read back (`read_back`: then read back and
    hashed, the verification the issue asks of a move); seconds."""
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)

    def copy(key_size: tuple[str, int]) -> None:
        key, size = key_size
        response = client.get_object(HOT_BUCKET, key)
        try:
            client.put_object(
                RAW_BUCKET, key + suffix, response, size, part_size=PART, retention=Retention(GOVERNANCE, until)
            )
        finally:
            response.close()
            response.release_conn()
        if read_back:
            again, digest = client.get_object(RAW_BUCKET, key + suffix), hashlib.sha256()
            try:
                for chunk in again.stream(MIB):
                    digest.update(chunk)
            finally:
                again.close()
                again.release_conn()

    started = time.perf_counter()
    with ThreadPoolExecutor(width) as pool:
        list(pool.map(copy, keys))
    return time.perf_counter() - started


def _bare_reads(client: Any, keys: list[tuple[str, int]]) -> float:
    started = time.perf_counter()
    for key, _size in keys:
        response = client.get_object(HOT_BUCKET, key)
        try:
            for _ in response.stream(MIB):
                pass
        finally:
            response.close()
            response.release_conn()
    return time.perf_counter() - started


class RssSampler:
    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size-mb", type=int, default=8)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=4, help="the lifecycle's, and the peer's")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="callscribe-bench-lifecycle-"))
    procs: list[Any] = []
    try:
        s3 = servers.start_seaweedfs(home / "s3", home / "logs" / "s3.log")
        procs.append(s3.process)
        servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET, RAW_BUCKET))
        redis = servers.start_redis(home / "redis", home / "logs" / "redis.log")
        procs.append(redis.process)
        token = "bench-service-token"
        tenants_file = home / "tenants.json"
        tokens = write_tenants_file(tenants_file, {TENANT: TenantSpec("GOVERNANCE", 1)}, {"pipeline": token})
        client = make_client(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", pool_size=16)
        store = S3RecordingStore(client, HOT_BUCKET, PART, 2, 4, cold=LockedBucket(client, COLD_BUCKET, Tier.COLD))
        size = args.size_mb * MIB
        print(f"archiving {args.count} recordings of {args.size_mb} MiB ...", flush=True)
        records = [_archive(store, _source(i), size, f"call-{i}") for i in range(args.count)]
        keys = [(f"recordings/{TENANT}/{r.recording_id}/audio", size) for r in records]
        total_mib = args.count * args.size_mb

        state = {
            "home": str(home),
            "tenants_file": str(tenants_file),
            "s3": {
                "endpoint": s3.endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key,
                "hot_bucket": HOT_BUCKET, "cold_bucket": COLD_BUCKET,
            },
            "redis": {"url": redis.url},
            "grpc": {"indexer": f"127.0.0.1:{free_port()}"},  # no indexer: its updates wait, as when it is away
            "service_token": token,
        }  # fmt: skip
        env = service_env("lifecycle", state)
        env["INGEST_LIFECYCLE_INTERVAL_SECONDS"] = "0"
        env["INGEST_LIFECYCLE_CONCURRENCY"] = str(args.concurrency)
        lifecycle = start_service("lifecycle", env, home / "logs" / "lifecycle.log")
        procs.append(lifecycle)
        stub = lifecycle_pb2_grpc.LifecycleServiceStub(grpc.insecure_channel(grpc_address("lifecycle", env) or ""))
        auth = (("authorization", f"Bearer {tokens[TENANT]}"),)

        raw_before = _raw_copy(client, keys, args.concurrency)
        with RssSampler(lifecycle.pid) as small_rss:
            started = time.perf_counter()
            events = list(stub.RunTiering(lpb.RunTieringRequest(older_than_days=0), metadata=auth))
            mover_s = time.perf_counter() - started
        moved = sum(e.outcome == lpb.TieringEvent.OUTCOME_MOVED for e in events)
        if moved != args.count:
            raise RuntimeError(f"{moved} of {args.count} moved: {[e.detail for e in events][:3]}")
        raw_after = _raw_copy(client, keys, args.concurrency, ".again")  # the peer again, fresh keys
        raw_s = (raw_before + raw_after) / 2
        verified_s = _raw_copy(client, keys, args.concurrency, ".verified", read_back=True)
        move = {
            "mover_mib_s": total_mib / mover_s,
            "mover_recordings_s": args.count / mover_s,
            "raw_copy_mib_s": total_mib / raw_s,
            "raw_before_mib_s": total_mib / raw_before,
            "raw_after_mib_s": total_mib / raw_after,
        }
        move["ratio"] = move["mover_mib_s"] / move["raw_copy_mib_s"]
        move["raw_copy_read_back_mib_s"] = total_mib / verified_s
        move["ratio_to_read_back"] = move["mover_mib_s"] / move["raw_copy_read_back_mib_s"]
        print(
            f"move ({args.concurrency} at once): lifecycle {move['mover_mib_s']:.0f} MiB/s "
            f"({move['mover_recordings_s']:.1f} recordings/s), "
            f"raw copy {move['raw_copy_mib_s']:.0f} MiB/s (before {move['raw_before_mib_s']:.0f}, after "
            f"{move['raw_after_mib_s']:.0f}): ratio {move['ratio']:.2f} {'PASS' if move['ratio'] >= 0.8 else 'MISS'}; "
            f"raw copy read back and hashed {move['raw_copy_read_back_mib_s']:.0f} MiB/s: ratio "
            f"{move['ratio_to_read_back']:.2f}",
            flush=True,
        )

        # audit: every copy, hot and cold
        env_audit = dict(env)
        stop(lifecycle)
        procs.remove(lifecycle)
        env_audit["INGEST_AUDIT_BYTES_PER_SECOND"] = str(100 * 1024 * MIB)
        lifecycle = start_service("lifecycle", env_audit, home / "logs" / "lifecycle-audit.log")
        procs.append(lifecycle)
        stub = lifecycle_pb2_grpc.LifecycleServiceStub(
            grpc.insecure_channel(grpc_address("lifecycle", env_audit) or "")
        )
        started = time.perf_counter()
        audited = list(stub.RunAudit(lpb.RunAuditRequest(), metadata=auth))
        audit_s = time.perf_counter() - started
        hashed = sum(e.bytes_hashed for e in audited)
        if any(e.integrity != 1 for e in audited) or hashed != 2 * args.count * size:
            raise RuntimeError(f"audit: {[(e.integrity, e.detail) for e in audited][:3]}")
        files = home / "files"
        files.mkdir()
        for i, key_size in enumerate(keys * 2):
            (files / f"{i}.bin").write_bytes(b"".join(_source(i % args.count)(key_size[1])))
        subprocess.run(["cat", *map(str, files.iterdir())], stdout=subprocess.DEVNULL, check=True)  # page cache
        started = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, sorted(files.iterdir()))], stdout=subprocess.DEVNULL, check=True)
        sha_s = time.perf_counter() - started
        bare_s = _bare_reads(client, keys)
        audit = {
            "audit_mib_s": hashed / MIB / audit_s,
            "sha256sum_mib_s": hashed / MIB / sha_s,
            "s3_read_mib_s": total_mib / bare_s,
        }
        audit["ratio"] = audit["audit_mib_s"] / audit["sha256sum_mib_s"]
        print(
            f"audit: {audit['audit_mib_s']:.0f} MiB/s over {2 * args.count} copies, sha256sum "
            f"{audit['sha256sum_mib_s']:.0f} MiB/s (bare S3 reads {audit['s3_read_mib_s']:.0f} MiB/s): ratio "
            f"{audit['ratio']:.2f} {'PASS' if audit['ratio'] >= 0.8 else 'MISS'}",
            flush=True,
        )
        shutil.rmtree(files)

        # memory: one big recording
        big = _archive(store, _source(10_000), args.big_mb * MIB, "big")
        with RssSampler(lifecycle.pid) as big_rss:
            started = time.perf_counter()
            events = list(stub.RunTiering(lpb.RunTieringRequest(older_than_days=0), metadata=auth))
            big_s = time.perf_counter() - started
        if [e.outcome for e in events if e.recording_id == big.recording_id] != [lpb.TieringEvent.OUTCOME_MOVED]:
            raise RuntimeError(f"the big recording did not move: {events}")
        memory = {
            "small_peak_rss_mib": small_rss.peak / MIB,
            "big_peak_rss_mib": big_rss.peak / MIB,
            "growth_mib": (big_rss.peak - small_rss.peak) / MIB,
            "big_mib_s": args.big_mb / big_s,
        }
        print(
            f"memory: peak RSS {memory['small_peak_rss_mib']:.0f} MiB moving {args.size_mb} MiB recordings, "
            f"{memory['big_peak_rss_mib']:.0f} MiB moving {args.big_mb} MiB ({memory['big_mib_s']:.0f} MiB/s): "
            f"growth {memory['growth_mib']:.1f} MiB {'PASS' if memory['growth_mib'] < 64 else 'MISS'}",
            flush=True,
        )
        result = {
            "machine": f"{platform.node()} {os.cpu_count()} CPUs",
            "count": args.count,
            "concurrency": args.concurrency,
            "size_mb": args.size_mb,
            "big_mb": args.big_mb,
            "move": move,
            "audit": audit,
            "memory": memory,
        }
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    except Exception as exc:  # noqa: BLE001 - a bench reports and exits 1
        print(f"bench/lifecycle.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
