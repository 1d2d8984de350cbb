"""The archive store's conditional writes against the real S3 server, and its fallback without them;
the object writer's streamed PUT."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from support import wait_for

from callscribe.ingest.model import ArchivedRecording, LockPolicy, RecordingInfo, recording_id
from callscribe.ingest.s3store import RECORD_META, S3RecordingStore, _to_document
from callscribe.ingest.upload.audio import AudioFacts
from callscribe.kit.errors import DataLoss, InvalidArgument
from callscribe.stack import servers
from callscribe.storage.bucket import PROBE_BODY, PROBE_KEY
from callscribe.storage.client import make_client
from callscribe.storage.errors import ObjectExists
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.writer import MAX_PUT_BYTES, ObjectWriter

MIB = 1024 * 1024


def _store(s3_server, bucket: str) -> S3RecordingStore:  # type: ignore[no-untyped-def]
    s3 = s3_server.server
    client = make_client(f"http://{s3.host}", s3.access_key, s3.secret_key, "us-east-1", pool_size=4)
    return S3RecordingStore(client, bucket, part_size=5 * MIB, parallel_parts=1, max_part_uploads=1)


def test_ping_finds_conditional_writes_and_writes_its_probe_once(s3_server, minio_client) -> None:  # type: ignore[no-untyped-def]
    bucket = f"probe-{secrets.token_hex(4)}"
    servers.create_locked_buckets(s3_server.server, [bucket])
    store = _store(s3_server, bucket)
    assert store.conditional_writes is False, "until ping, every upload is looked up first"
    assert store.lookup_first(MIB) is True

    for _ in range(3):  # three starts of the service on the same bucket
        store.ping()
        assert store.conditional_writes is True

    versions = list(minio_client.list_objects(bucket, prefix=PROBE_KEY, include_version=True))
    assert len(versions) == 1
    assert store.lookup_first(MIB) is False, "one PUT: written only if absent, not looked up"
    assert store.lookup_first(10 * MIB) is True, "multipart: looked up before its parts are sent"
    assert store.lookup_first(0) is True, "size unknown: looked up"


class _IgnoresConditions:
    """An S3 client whose server does what old S3 servers do with If-None-Match: nothing. (Stands in
    for such a server: the local one, SeaweedFS, honours the header.)"""

    def __init__(self) -> None:
        self.puts: list[tuple[str, dict]] = []

    def get_object_lock_config(self, bucket: str) -> object:
        return object()

    def put_raw(self, bucket: str, key: str, data: bytes, headers: dict) -> object:
        self.puts.append((key, dict(headers)))
        return SimpleNamespace(version_id=f"v{len(self.puts)}")  # minio's ObjectWriteResult, as far as read


def test_an_s3_that_ignores_if_none_match_gets_every_upload_looked_up_first() -> None:
    client = _IgnoresConditions()
    store = S3RecordingStore(client, "hot", part_size=5 * MIB, parallel_parts=1, max_part_uploads=1)  # type: ignore[arg-type]
    store.ping()
    assert store.conditional_writes is False
    assert [key for key, _ in client.puts] == [PROBE_KEY, PROBE_KEY]
    assert all(headers["If-None-Match"] == "*" for _, headers in client.puts)
    assert store.lookup_first(MIB) is True


def test_the_probe_lives_outside_the_recordings(s3_server, minio_client, archive) -> None:  # type: ignore[no-untyped-def]
    store = _store(s3_server, s3_server.hot_bucket)
    store.ping()
    assert not PROBE_KEY.startswith("recordings/")
    version = minio_client.stat_object(s3_server.hot_bucket, PROBE_KEY).version_id
    assert archive.read(PROBE_KEY, version) == PROBE_BODY
    assert all(tenant != "callscribe" for tenant, _ in store.list_all()), "listing never sees the probe"


# --- a streamed PUT: one PUT that starts before the upload's last byte has arrived -------------------


def _writer(s3_server, key: str, pool_size: int = 4, put_tracker=contextlib.nullcontext):  # type: ignore[no-untyped-def]
    s3 = s3_server.server
    client = make_client(f"http://{s3.host}", s3.access_key, s3.secret_key, "us-east-1", pool_size=pool_size)
    headers = {"Content-Type": "application/octet-stream", "x-amz-meta-sha256": "set-by-test"}
    parts, puts = ThreadPoolExecutor(1), ThreadPoolExecutor(2)
    return ObjectWriter(client, s3_server.hot_bucket, key, headers, 5 * MIB, 1, parts, puts, put_tracker)


def _chunks(data: bytes, size: int = 256 * 1024) -> list[bytes]:
    return [data[at : at + size] for at in range(0, len(data), size)]


def test_a_streamed_put_is_written_whole_at_commit_and_only_then(s3_server, minio_client) -> None:  # type: ignore[no-untyped-def]
    key = f"objectwriter/{secrets.token_hex(4)}/audio"
    data = os.urandom(3 * MIB + 17)
    writer = _writer(s3_server, key)
    chunks = _chunks(data)
    writer.write(chunks[0])
    assert writer.can_stream(len(data)) and not writer.streaming
    writer.stream({"If-None-Match": "*"}, len(data), hashlib.sha256(data).hexdigest())
    assert writer.streaming and not writer.single_put and not writer.can_stream(len(data))
    for chunk in chunks[1:]:
        writer.write(chunk)
    wait_for(lambda: writer.stream_backlog == 0, 10, "every chunk but the last to be on its way to S3")
    assert list(minio_client.list_objects(s3_server.hot_bucket, prefix=key, include_version=True)) == []
    version = writer.commit()
    response = minio_client.get_object(s3_server.hot_bucket, key, version_id=version)
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()


def test_a_streamed_put_starts_with_its_first_bytes_and_holds_only_the_last_chunk(s3_server, minio_client) -> None:  # type: ignore[no-untyped-def]
    """S3 gets each chunk as it arrives (the PUT starts with the first, not when a second one comes);
    only the chunk that completes the declared size waits for commit."""
    key = f"objectwriter/{secrets.token_hex(4)}/audio"
    data = os.urandom(MIB + 100)
    started = threading.Event()

    @contextlib.contextmanager
    def tracker():  # type: ignore[no-untyped-def]
        started.set()
        yield

    writer = _writer(s3_server, key, put_tracker=tracker)
    writer.write(data[:MIB])
    writer.stream({"If-None-Match": "*"}, len(data), hashlib.sha256(data).hexdigest())
    assert started.wait(10), "the PUT did not start with the first chunk"
    writer.write(data[MIB:])  # completes the size: held back
    wait_for(lambda: writer.stream_backlog == 0, 10, "the first chunk to be on its way to S3")
    assert list(minio_client.list_objects(s3_server.hot_bucket, prefix=key, include_version=True)) == []
    version = writer.commit()
    assert minio_client.stat_object(s3_server.hot_bucket, key, version_id=version).size == len(data)


def test_a_streamed_put_of_a_key_already_there_is_object_exists_at_commit(s3_server) -> None:  # type: ignore[no-untyped-def]
    key = f"objectwriter/{secrets.token_hex(4)}/audio"
    data = os.urandom(MIB)
    for attempt in range(2):
        writer = _writer(s3_server, key)
        writer.write(data[:1000])
        writer.stream({"If-None-Match": "*"}, len(data), hashlib.sha256(data).hexdigest())
        for chunk in _chunks(data[1000:], 64 * 1024):
            writer.write(chunk)  # S3's early 412 (if it answers before the body) is not raised mid-upload
        if attempt == 0:
            assert writer.commit()
        else:
            with pytest.raises(ObjectExists):
                writer.commit()


def test_an_aborted_streamed_put_leaves_no_object_version(s3_server, minio_client) -> None:  # type: ignore[no-untyped-def]
    key = f"objectwriter/{secrets.token_hex(4)}/audio"
    data = os.urandom(4 * MIB)
    writer = _writer(s3_server, key)
    writer.write(data[:MIB])
    writer.stream({}, len(data), hashlib.sha256(data).hexdigest())
    writer.write(data[MIB : 3 * MIB])
    writer.abort()  # returns once the request is over
    writer.abort()
    time.sleep(0.5)  # nothing to await: the time in which SeaweedFS stored a cut PUT before the guard
    assert list(minio_client.list_objects(s3_server.hot_bucket, prefix=key, include_version=True)) == []


def test_a_streamed_put_aborted_one_byte_short_leaves_no_object_version(s3_server, minio_client) -> None:  # type: ignore[no-untyped-def]
    """An upload that ends short of its declared size has sent S3 every byte it received: the request
    is cut one byte before its Content-Length, and S3 must store nothing."""
    key = f"objectwriter/{secrets.token_hex(4)}/audio"
    data = os.urandom(2 * MIB)
    writer = _writer(s3_server, key)
    writer.write(data[:MIB])
    writer.stream({}, len(data) + 1, hashlib.sha256(data + b"!").hexdigest())
    writer.write(data[MIB:])  # everything but the declared last byte, sent at once
    wait_for(lambda: writer.stream_backlog == 0, 10, "every fed byte to be on its way to S3")
    writer.abort()  # so the cut comes one byte short, not earlier
    time.sleep(0.5)  # nothing to await: the time in which SeaweedFS stored a cut PUT before the guard
    assert list(minio_client.list_objects(s3_server.hot_bucket, prefix=key, include_version=True)) == []


def test_a_streamed_put_refuses_bytes_beyond_its_size(s3_server) -> None:  # type: ignore[no-untyped-def]
    key = f"objectwriter/{secrets.token_hex(4)}/audio"
    writer = _writer(s3_server, key)
    writer.write(b"x" * 1000)
    writer.stream({}, 1500, "0" * 64)
    writer.write(b"y" * 500)
    with pytest.raises(InvalidArgument, match="more than the declared 1500 bytes"):
        writer.write(b"z")
    writer.abort()


def test_what_can_be_streamed(s3_server) -> None:  # type: ignore[no-untyped-def]
    writer = _writer(s3_server, "objectwriter/never-written")
    writer.write(b"x" * 100)
    assert not writer.can_stream(100), "the size must exceed what arrived: the last byte is held back"
    assert writer.can_stream(101)
    assert not writer.can_stream(MAX_PUT_BYTES + 1), "over S3's largest single PUT"
    https = S3Client("s3.example.invalid", access_key="k", secret_key="s", secure=True)
    pool = ThreadPoolExecutor(1)
    over_tls = ObjectWriter(https, "hot", "k", {}, 5 * MIB, 1, pool, pool)
    assert not over_tls.can_stream(MIB), "https: its Content-MD5 would have to be known before the body"
    without_pool = ObjectWriter(https, "hot", "k", {}, 5 * MIB, 1, pool)
    assert not without_pool.can_stream(MIB)
    writer.abort()


def test_an_object_shorter_than_its_record_is_data_loss_never_a_duplicate(s3_server) -> None:  # type: ignore[no-untyped-def]
    """What a PUT cut before its first body byte leaves on SeaweedFS: the headers (record, SHA-256)
    on an empty object. `find` must not take it for the recording (a duplicate ack would lose it)."""
    store = _store(s3_server, s3_server.hot_bucket)
    data = os.urandom(4096)
    sha = hashlib.sha256(data).hexdigest()
    rec_id = recording_id("acme", sha)
    facts = AudioFacts("WAV", "PCM_16", 16000, 1, 2026, 127)
    record = ArchivedRecording(
        rec_id, "acme", RecordingInfo("acme", "call-1", "agent-1"), facts, "mono", len(data), sha,
        datetime.now(UTC).replace(microsecond=0),
    )  # fmt: skip
    policy = LockPolicy("GOVERNANCE", datetime.now(UTC) + timedelta(days=1))
    writer = store.open_audio("acme", rec_id, sha, "call-1", policy)  # its key and headers, on an empty body:
    empty = ObjectWriter(writer._client, s3_server.hot_bucket, writer._key, writer._headers, 5 * MIB, 1,
                         ThreadPoolExecutor(1))  # fmt: skip
    empty.write(b"")
    empty.commit({RECORD_META: json.dumps(_to_document(record))}, sha256=hashlib.sha256(b"").hexdigest())
    with pytest.raises(DataLoss, match="has 0 bytes, its record says 4096"):
        store.find("acme", rec_id)
