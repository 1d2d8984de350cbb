"""Faults: Redis down, the ingest process killed mid-upload, S3 down.

Each test runs its own ingest instance (and its own Redis or S3 where it breaks them), so the
shared instance and the session's servers are unaffected.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from minio.commonconfig import COMPLIANCE

from callscribe.stack import servers
from callscribe.stack.procs import spawn, stop
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _stored_sha(archive, ack) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(archive.read(ack.object.key, ack.object.version_id)).hexdigest()


def test_redis_down_upload_still_archived_and_state_recovers(
    start_ingest, stack_tmp, new_wav, archive, minio_client, poll
):
    private = servers.start_redis(stack_tmp / "redis-fault")
    processes = [private.process]
    try:
        inst = start_ingest("redis-fault", redis_url=private.url)
        baseline = inst.upload("acme", new_wav())
        assert baseline.enqueued is True

        stop(private.process)
        assert not _pings(private.url)
        data = new_wav()
        ack = inst.upload("acme", data)

        # Acknowledged and safe, only not queued.
        assert ack.enqueued is False
        assert ack.duplicate is False
        assert ack.sha256 == hashlib.sha256(data).hexdigest()
        assert _stored_sha(archive, ack) == ack.sha256
        retention = minio_client.get_object_retention(archive.bucket, ack.object.key, ack.object.version_id)
        assert retention.mode == COMPLIANCE
        assert retention.retain_until_date > datetime.now(UTC) + timedelta(days=1824)
        rec = inst.get("acme", ack.recording_id)
        assert rec.state == c.PIPELINE_STATE_UNSPECIFIED
        assert "pipeline state unknown" in rec.state_detail
        assert "Redis" in rec.state_detail
        assert rec.object == ack.object  # the archive itself still answers

        # Redis back on the same port, empty (it keeps nothing on disk): the recording is known as archived.
        restarted = spawn("redis", private.process.argv, dict(os.environ), stack_tmp / "redis-fault" / "redis2.log")
        processes.append(restarted)
        poll(lambda: _pings(private.url), 30, "Redis to answer again")
        rec = inst.get("acme", ack.recording_id)
        assert rec.state == c.PIPELINE_STATE_ARCHIVED
        assert "not queued" in rec.state_detail
        # Uploading it again queues it now (what reconciliation would do), still without a new version.
        again = inst.upload("acme", data)
        assert again.duplicate is True
        assert again.enqueued is True
        assert again.object == ack.object
        assert inst.get("acme", ack.recording_id).state == c.PIPELINE_STATE_QUEUED
    finally:
        for proc in processes:
            stop(proc)


def _held_at_half(first: pb.UploadRecordingRequest, data: bytes, chunk: int, release: threading.Event):  # type: ignore[no-untyped-def]
    """An upload's messages: `first`, the first half of `data` in `chunk`s, then (once `release` is set,
    at most 30 s later) the rest. The process is killed while the client waits there."""
    half = len(data) // 2
    yield first
    for at in range(0, half, chunk):
        yield pb.UploadRecordingRequest(chunk=data[at : min(at + chunk, half)])
    release.wait(30)
    for at in range(half, len(data), chunk):
        yield pb.UploadRecordingRequest(chunk=data[at : at + chunk])


def _kill_9_at_half(inst, first: pb.UploadRecordingRequest, data: bytes, poll, ready) -> None:  # type: ignore[no-untyped-def]
    """Upload `data` in 256 KiB chunks after `first`, held at half; once `ready()` returns, kill -9 the
    server. The client's call must then fail as UNAVAILABLE or CANCELLED, not be acknowledged."""
    release = threading.Event()
    future = inst.stub.UploadRecording.future(
        _held_at_half(first, data, 256 * 1024, release), metadata=inst.auth("acme"), timeout=60
    )
    try:
        ready()
        os.kill(inst.process.pid, signal.SIGKILL)
        poll(lambda: not inst.process.is_alive(), 10, "the killed ingest process to be gone")
    finally:
        release.set()
    error = future.exception(timeout=30)
    assert isinstance(error, grpc.RpcError)
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), error


def test_kill_9_mid_upload_loses_no_acknowledged_recording(start_ingest, new_wav, archive, poll, make_metadata):
    # Always spooled to disk (memory_upload_mb=0): the crash must leave a spool file for the restart to clear.
    inst = start_ingest("crash", max_upload_mb="64", memory_upload_mb="0")
    acked = []
    for _ in range(3):
        data = new_wav()
        acked.append((data, inst.upload("acme", data)))
    big = new_wav(seconds_of_noise=600)  # ~19 MiB
    before = archive.versions()
    half = len(big) // 2

    def most_of_the_first_half_spooled() -> None:
        poll(
            lambda: any(p.stat().st_size >= half * 3 // 4 for p in inst.spool_dir.glob("*.upload")),
            30,
            "the server to spool most of the first half",
        )

    first = pb.UploadRecordingRequest(metadata=make_metadata(call_id="big-call"))
    _kill_9_at_half(inst, first, big, poll, most_of_the_first_half_spooled)

    # Killed mid-upload: its spool file is still there, and nothing of it reached S3.
    assert list(inst.spool_dir.glob("*.upload"))
    assert archive.versions() == before
    # Every acknowledged recording is in S3 with the bytes it was acknowledged for.
    for data, ack in acked:
        assert _stored_sha(archive, ack) == ack.sha256 == hashlib.sha256(data).hexdigest()

    restarted = start_ingest("crash", env=inst.env)
    assert restarted.process.pid != inst.process.pid
    assert list(restarted.spool_dir.glob("*.upload")) == [], "the restart left an unacknowledged spool file"
    retry = restarted.upload("acme", big, chunk=1024 * 1024, call_id="big-call")
    assert retry.duplicate is False
    assert retry.sha256 == hashlib.sha256(big).hexdigest()
    assert retry.audio.size_bytes == len(big)
    assert _stored_sha(archive, retry) == retry.sha256
    # The acknowledged ones are still known after the restart.
    for data, ack in acked:
        again = restarted.upload("acme", data)
        assert again.duplicate is True
        assert again.object == ack.object


def test_kill_9_during_a_streamed_put_leaves_no_object_and_the_retry_archives(
    start_ingest, new_wav, archive, poll, make_metadata
):
    """Size and SHA-256 declared: the PUT to S3 is under way when the process dies. S3 must store
    nothing of the cut request (no version, not even an empty one), so the retry is not a duplicate."""
    inst = start_ingest("crash-streamed", max_upload_mb="64")
    big = new_wav(seconds_of_noise=600)  # ~19 MiB
    digest = hashlib.sha256(big).hexdigest()
    before = archive.versions()
    half = len(big) // 2

    def put_under_way_with_the_first_half() -> None:
        poll(lambda: inst.metric("callscribe_ingest_s3_streamed_puts_in_flight") == 1, 10, "the PUT to start")
        poll(lambda: inst.metric("callscribe_ingest_received_bytes_total") >= half, 30, "the first half to arrive")

    first = pb.UploadRecordingRequest(
        metadata=make_metadata(call_id="streamed-call"), sha256=digest, size_bytes=len(big)
    )
    _kill_9_at_half(inst, first, big, poll, put_under_way_with_the_first_half)
    time.sleep(1)  # S3 has seen the connection drop
    assert archive.versions() == before, "a PUT cut by the crash left an object version"

    restarted = start_ingest("crash-streamed", env=inst.env)
    retry = restarted.upload("acme", big, chunk=1024 * 1024, call_id="streamed-call")
    assert retry.duplicate is False
    assert _stored_sha(archive, retry) == retry.sha256 == digest


@pytest.fixture
def private_s3(stack_tmp, request):  # type: ignore[no-untyped-def]
    try:
        s3 = servers.start_seaweedfs(stack_tmp / f"s3-fault-{request.node.name}")
    except servers.StackError as exc:  # BinaryMissing included
        pytest.skip(str(exc))
    try:
        servers.create_locked_buckets(s3, (HOT_BUCKET, COLD_BUCKET))
        yield s3
    finally:
        stop(s3.process)


def test_s3_down_upload_is_unavailable_and_not_acknowledged(
    start_ingest, private_s3, new_wav, make_requests, make_metadata, poll
):
    inst = start_ingest(
        "s3-fault",
        s3_endpoint=private_s3.endpoint,
        s3_access_key=private_s3.access_key,
        s3_secret_key=private_s3.secret_key,
    )
    ok = inst.upload("acme", new_wav())
    assert ok.duplicate is False

    stop(private_s3.process)
    with pytest.raises(grpc.RpcError) as err:
        inst.stub.UploadRecording(make_requests(make_metadata(), new_wav()), metadata=inst.auth("acme"), timeout=60)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "S3" in err.value.details()
    assert "unreachable" in err.value.details() or "retry" in err.value.details()
    poll(lambda: inst.metric("callscribe_ingest_uploads_in_flight") == 0, 10, "the upload to finish")
    poll(lambda: not list(inst.spool_dir.glob("*.upload")), 10, "the spool file to be removed")
    with pytest.raises(grpc.RpcError) as err:
        inst.get("acme", ok.recording_id)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # The service itself stays up and answers.
    assert inst.process.is_alive()
    with pytest.raises(grpc.RpcError) as err:
        inst.get("acme", "bad")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_s3_dying_under_a_streamed_put_is_unavailable_and_not_acknowledged(
    start_ingest, private_s3, new_wav, make_metadata, poll
):
    """The PUT started with the first bytes (size and SHA-256 declared); S3 goes away before the rest."""
    inst = start_ingest(
        "s3-fault-streamed",
        s3_endpoint=private_s3.endpoint,
        s3_access_key=private_s3.access_key,
        s3_secret_key=private_s3.secret_key,
    )
    data = new_wav(seconds_of_noise=20)
    release = threading.Event()

    def gen():  # type: ignore[no-untyped-def]
        yield pb.UploadRecordingRequest(
            metadata=make_metadata(), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)
        )
        for at in range(0, len(data) // 2, 128 * 1024):  # several chunks: all but the last go to S3
            yield pb.UploadRecordingRequest(chunk=data[at : min(at + 128 * 1024, len(data) // 2)])
        release.wait(60)
        yield pb.UploadRecordingRequest(chunk=data[len(data) // 2 :])

    future = inst.stub.UploadRecording.future(gen(), metadata=inst.auth("acme"), timeout=90)
    try:
        poll(lambda: inst.metric("callscribe_ingest_s3_streamed_puts_in_flight") == 1, 10, "the PUT to start")
        stop(private_s3.process)
    finally:
        release.set()
    with pytest.raises(grpc.RpcError) as err:
        future.result()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    assert "S3" in err.value.details() and "retry" in err.value.details()
    poll(lambda: inst.metric("callscribe_ingest_uploads_in_flight") == 0, 10, "the upload to finish")
    assert inst.metric("callscribe_ingest_s3_streamed_puts_in_flight") == 0
    assert inst.process.is_alive()


def _hold_uploads(inst, n: int, new_wav, make_metadata, poll):  # type: ignore[no-untyped-def]
    """Start `n` uploads that stay in flight until the returned event is set; also returns their futures."""
    release = threading.Event()

    def gen(data: bytes):  # type: ignore[no-untyped-def]
        yield pb.UploadRecordingRequest(metadata=make_metadata())
        yield pb.UploadRecordingRequest(chunk=data[:1000])
        release.wait(60)
        yield pb.UploadRecordingRequest(chunk=data[1000:])

    futures = [
        inst.stub.UploadRecording.future(gen(new_wav()), metadata=inst.auth("acme"), timeout=90) for _ in range(n)
    ]
    poll(lambda: inst.metric("callscribe_ingest_uploads_in_flight") >= n, 10, f"{n} uploads in flight")
    return release, futures


def _health(inst) -> int:  # type: ignore[no-untyped-def]
    stub = health_pb2_grpc.HealthStub(inst.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_upload_limit_refuses_only_uploads_not_health_or_reads(start_ingest, new_wav, make_metadata, poll):
    inst = start_ingest("busy", max_concurrent_uploads="2")
    release, futures = _hold_uploads(inst, 2, new_wav, make_metadata, poll)
    try:
        # One more upload is refused with a message a client can act on...
        with pytest.raises(grpc.RpcError) as err:
            inst.upload("acme", new_wav())
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # ...but the probes and the reads still answer.
        assert _health(inst) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            inst.get("acme", "0" * 32)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        release.set()
        for future in futures:
            assert future.result(timeout=60).sha256


def test_uploads_under_the_limit_do_not_starve_health_checks(start_ingest, new_wav, make_metadata, poll):
    # The defaults' ratio (64 uploads, 32 threads) scaled down: 4 uploads allowed, 2 threads.
    inst = start_ingest("starved", max_concurrent_uploads="4", max_workers="2")
    release, futures = _hold_uploads(inst, 2, new_wav, make_metadata, poll)
    try:
        assert _health(inst) == health_pb2.HealthCheckResponse.SERVING
    finally:
        release.set()
        for future in futures:
            assert future.result(timeout=60).sha256
