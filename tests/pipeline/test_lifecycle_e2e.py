"""The storage lifecycle through the whole stack, with the cold tier on a SECOND S3 server (issue 18):
recordings are indexed, moved by `callscribe tier run`, found by `search --tier cold`, read back by the VAD
from the other S3 (`callscribe segments`), audited (`callscribe audit`, the index learns `integrity`), and
their hot copies released once the hot lock ended, every reader still served from the cold tier.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callscribe.cli.main import main as cli
from callscribe.stack import servers
from callscribe.stack.procs import stop
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET
from callscribe.stack.tenants import TenantSpec, new_token, write_tenants_file
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2

from .conftest import PipelineStack

HOT_DAYS = 1 / 86400
GRACE_DAYS = 25 / 86400  # hot copies are locked ~26 s
COLD_ONLY = "callscribe-cold-archive"


@pytest.fixture(scope="module")
def tiered_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineStack]:
    home = tmp_path_factory.mktemp("lifecycle-e2e")
    s3 = servers.start_seaweedfs(home / "s3", home / "logs" / "s3.log")
    servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET))
    cold_s3 = servers.start_seaweedfs(home / "s3-cold", home / "logs" / "s3-cold.log")
    servers.create_locked_buckets(cold_s3, (COLD_ONLY,))
    redis_server = servers.start_redis(home / "redis", home / "logs" / "redis.log")
    es = servers.start_elasticsearch(home / "es", home / "logs" / "es.log")
    service_token = new_token()
    tenants_file = home / "tenants.json"
    tokens = write_tenants_file(
        tenants_file, {"acme": TenantSpec("COMPLIANCE", 1, hot_days=HOT_DAYS)}, {"pipeline": service_token}
    )
    state: dict[str, Any] = {
        "home": str(home),
        "tenants_file": str(tenants_file),
        "tenants": tokens,
        "service_token": service_token,
        "hot_lock_grace_days": str(GRACE_DAYS),
        "s3": {
            "endpoint": s3.endpoint,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "hot_bucket": HOT_BUCKET,
            "cold_bucket": COLD_ONLY,
            "cold": {"endpoint": cold_s3.endpoint, "access_key": cold_s3.access_key, "secret_key": cold_s3.secret_key},
        },
        "redis": {"url": redis_server.url},
        "elasticsearch": {"url": es.url},
        "grpc": {},
    }
    stack = PipelineStack(home, state, es=es, redis=redis_server, s3=s3)
    try:
        for name in ("vad", "asr", "indexer", "ingest", "worker", "lifecycle"):
            stack.start(name, **({"INGEST_LIFECYCLE_INTERVAL_SECONDS": "0"} if name == "lifecycle" else {}))
        yield stack
    finally:
        lifecycle = stack.procs.pop("lifecycle", None)
        if lifecycle is not None:
            stop(lifecycle)
        stack.close()
        stop(cold_s3.process)


def _cli(capsys: pytest.CaptureFixture[str], stack: PipelineStack, service: str, *argv: str) -> tuple[int, str, str]:
    code = cli([*argv, "--address", stack.state["grpc"][service], "--token", stack.state["tenants"]["acme"]])
    out, err = capsys.readouterr()
    return code, out, err


def test_moved_recordings_are_found_read_audited_and_released_across_two_s3_servers(
    tiered_stack: PipelineStack, make_calls: Callable[[str, int], list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tiered_stack
    ids = [stack.upload(path, "acme", f"tiered-{i}") for i, path in enumerate(make_calls("tiered", 2))]
    stack.wait_indexed("acme", ids)

    code, out, err = _cli(capsys, stack, "lifecycle", "tier", "run", "--older-than", "0", "--json")
    assert code == 0, err
    moved = {e["recording_id"]: e for e in map(json.loads, out.splitlines()) if e["outcome"] == "OUTCOME_MOVED"}
    assert set(moved) == set(ids), out
    assert all(e["object"]["bucket"] == COLD_ONLY for e in moved.values())

    # Every reader follows: the record, the index (search by tier), the VAD on the other S3.
    for rec_id in ids:
        rec = stack.state_of("acme", rec_id)
        assert rec.tier == c.STORAGE_TIER_COLD and rec.object.bucket == COLD_ONLY
        call = stack.indexer().GetCall(indexer_pb2.GetCallRequest(recording_id=rec_id), metadata=stack.auth("acme"))
        assert call.tier == c.STORAGE_TIER_COLD and call.object.bucket == COLD_ONLY and call.moved_at.seconds > 0
    found = stack.indexer().Search(indexer_pb2.SearchRequest(tier=c.STORAGE_TIER_COLD), metadata=stack.auth("acme"))
    assert {h.recording_id for h in found.hits} == set(ids)
    code, out, err = _cli(capsys, stack, "ingest", "status", ids[0])
    assert code == 0 and "cold (moved " in out and COLD_ONLY in out, out + err
    code, out, err = cli_segments(capsys, stack, ids[0])
    assert code == 0 and "agent" in out, out + err

    # The audit re-hashes every copy (hot and cold, on both servers) and the index learns it.
    code, out, err = _cli(capsys, stack, "lifecycle", "audit", "--recording", ids[0])
    assert code == 0 and out.startswith(f"ok        {ids[0]}"), out + err
    call = stack.indexer().GetCall(indexer_pb2.GetCallRequest(recording_id=ids[0]), metadata=stack.auth("acme"))
    assert call.integrity == c.INTEGRITY_OK and call.verified_at.seconds > 0
    audited = stack.indexer().Search(indexer_pb2.SearchRequest(integrity=c.INTEGRITY_OK), metadata=stack.auth("acme"))
    assert [h.recording_id for h in audited.hits] == [ids[0]]

    # Once the hot lock ended, the hot copies go; everything is still read from the cold tier.
    hot_until = max(stack.state_of("acme", r).archived_at.ToDatetime(UTC) for r in ids) + timedelta(
        days=HOT_DAYS + GRACE_DAYS, seconds=2
    )
    stack.wait_until("the hot locks to end", lambda: datetime.now(UTC) > hot_until, timeout=60)
    code, out, err = _cli(capsys, stack, "lifecycle", "tier", "run", "--json")
    assert code == 0, err
    released = {e["recording_id"] for e in map(json.loads, out.splitlines()) if e["outcome"] == "OUTCOME_HOT_RELEASED"}
    assert released == set(ids), out
    code, out, err = cli_segments(capsys, stack, ids[1])
    assert code == 0 and "agent" in out, out + err
    code, out, err = _cli(capsys, stack, "lifecycle", "audit")
    assert code == 0 and out.count("ok ") == 2, out + err


def cli_segments(capsys: pytest.CaptureFixture[str], stack: PipelineStack, rec_id: str) -> tuple[int, str, str]:
    code = cli(
        [
            "segments", rec_id, "--address", stack.state["grpc"]["ingest"], "--vad-address",
            stack.state["grpc"]["vad"], "--token", stack.state["tenants"]["acme"],
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err
