"""The minio extension against the real S3 server: a body signed with the digest its caller computed;
and the private minio API it relies on, checked so that an upgrade fails here first."""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from minio import Minio
from minio.error import S3Error
from support import wait_for

from callscribe.storage.body import Body, BodyAborted, FedBody
from callscribe.storage.client import make_client
from callscribe.storage.minio_ext import MINIO_VERSION, PAYLOAD_SHA256_HEADER, RELIED_ON, S3Client


@pytest.fixture(scope="module")
def client(s3_server) -> S3Client:  # type: ignore[no-untyped-def]
    s3 = s3_server.server
    made = make_client(f"http://{s3.host}", s3.access_key, s3.secret_key, "us-east-1", pool_size=4)
    assert isinstance(made, S3Client)
    return made


def _read(client: S3Client, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_a_known_digest_signs_the_put_and_the_header_is_not_sent(client: S3Client, s3_server) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(256 * 1024)
    key = "minio-ext/known-digest"
    headers = {PAYLOAD_SHA256_HEADER: hashlib.sha256(data).hexdigest()}
    client.put_raw(s3_server.hot_bucket, key, data, headers)
    stat = client.stat_object(s3_server.hot_bucket, key)
    assert stat.size == len(data)
    assert not any("callscribe" in name.lower() for name in stat.metadata), stat.metadata
    assert _read(client, s3_server.hot_bucket, key) == data


def test_the_request_carries_the_callers_digest_not_the_marker(client: S3Client, s3_server) -> None:  # type: ignore[no-untyped-def]
    """What is signed is the caller's digest; MinIO and AWS check it against the bytes they receive
    (SeaweedFS, the local server, checks no payload digest at all, so this looks at the request)."""
    data = os.urandom(64 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    trace = io.StringIO()
    client.trace_on(trace)
    try:
        client.put_raw(s3_server.hot_bucket, "minio-ext/traced", data, {PAYLOAD_SHA256_HEADER: digest})
        client.put_raw(s3_server.hot_bucket, "minio-ext/traced-plain", data, {})
    finally:
        client.trace_off()
    sent = [line.split(":", 1)[1].strip() for line in trace.getvalue().splitlines()
            if line.lower().startswith("x-amz-content-sha256:")]  # fmt: skip
    assert sent == [digest, digest], "with the marker and without: the same digest, hashed once or twice"
    assert PAYLOAD_SHA256_HEADER.lower() not in trace.getvalue().lower()


def test_a_body_of_buffers_is_stored_as_their_concatenation(client: S3Client, s3_server) -> None:  # type: ignore[no-untyped-def]
    parts = [os.urandom(n) for n in (1, 100_000, 0, 65_537)]
    data = b"".join(parts)
    body = Body([parts[0], memoryview(parts[1]), parts[2], memoryview(parts[3])[:]])
    assert len(body) == len(data)
    assert body.sha256() == hashlib.sha256(data).hexdigest()
    assert b"".join(body) == data == b"".join(body), "iterable again for every attempt"
    client.put_raw(s3_server.hot_bucket, "minio-ext/body", body, {PAYLOAD_SHA256_HEADER: body.sha256()})
    assert _read(client, s3_server.hot_bucket, "minio-ext/body") == data


def test_a_body_without_its_digest_is_refused_before_anything_is_sent(client: S3Client, s3_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="needs its SHA-256"):
        client.put_raw(s3_server.hot_bucket, "minio-ext/no-digest", Body([b"abc"]), {})
    with pytest.raises(S3Error) as missing:
        client.stat_object(s3_server.hot_bucket, "minio-ext/no-digest")
    assert missing.value.code == "NoSuchKey"


def test_over_https_a_body_gets_the_content_md5_minio_would_send() -> None:
    https = S3Client("s3.example.invalid", access_key="k", secret_key="s", secure=True)
    body = Body([b"abc", memoryview(b"def")])
    headers, _ = https._build_headers("s3.example.invalid", {PAYLOAD_SHA256_HEADER: body.sha256()}, body, None)
    assert headers["Content-Length"] == "6"
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(b"abcdef").digest()).decode()
    assert PAYLOAD_SHA256_HEADER not in headers


# --- FedBody: a PUT that starts before all its bytes have arrived --------------------------------


def _put_fed(client: S3Client, bucket: str, key: str, body: FedBody, digest: str):  # type: ignore[no-untyped-def]
    """Start the PUT in a thread (the way ingest does); the caller feeds the body."""
    pool = ThreadPoolExecutor(1)

    def put():  # type: ignore[no-untyped-def]
        try:
            return client.put_raw(bucket, key, body, {PAYLOAD_SHA256_HEADER: digest})
        finally:
            body.release()

    future = pool.submit(put)
    pool.shutdown(wait=False)
    return future


def test_a_fed_body_is_stored_once_it_ends(client: S3Client, s3_server) -> None:  # type: ignore[no-untyped-def]
    pieces = [os.urandom(n) for n in (70_000, 1, 300_000, 5)]
    data = b"".join(pieces)
    body = FedBody(len(data), max_buffered=100_000)
    future = _put_fed(client, s3_server.hot_bucket, "minio-ext/fed", body, hashlib.sha256(data).hexdigest())
    for piece in pieces:
        body.feed(memoryview(piece))
    assert not future.done(), "S3 cannot complete a PUT short of its Content-Length"
    body.end()
    assert future.result(timeout=30).version_id
    assert _read(client, s3_server.hot_bucket, "minio-ext/fed") == data


@pytest.mark.parametrize("fed_mib", [0, 2], ids=["before-any-byte", "mid-body"])
def test_an_aborted_fed_body_leaves_no_object(client: S3Client, s3_server, fed_mib: int) -> None:  # type: ignore[no-untyped-def]
    """Before any byte: SeaweedFS would store an empty object for a PUT cut there; FILLER goes first."""
    data = os.urandom(3 * 1024 * 1024)
    key = f"minio-ext/fed-aborted-{fed_mib}"
    body = FedBody(len(data), max_buffered=1024 * 1024)
    future = _put_fed(client, s3_server.hot_bucket, key, body, hashlib.sha256(data).hexdigest())
    if fed_mib:
        body.feed(data[: fed_mib * 1024 * 1024])
    wait_for(lambda: body.sending and body.buffered == 0, 10, "the request to be sent and wait for more body")
    body.abort()
    with pytest.raises(BodyAborted):
        future.result(timeout=30)
    with pytest.raises(S3Error) as missing:
        client.stat_object(s3_server.hot_bucket, key)
    assert missing.value.code == "NoSuchKey"


def test_a_retried_fed_body_leaves_no_object(s3_server) -> None:  # type: ignore[no-untyped-def]
    """urllib3 sends a request again after a broken connection or a 5xx; a fed body cannot be replayed,
    and the second attempt must not leave the empty object SeaweedFS makes of a body-less PUT."""
    s3 = s3_server.server
    client = make_client(f"http://{s3.host}", s3.access_key, s3.secret_key, "us-east-1", pool_size=2)
    data = os.urandom(1024 * 1024)
    body = FedBody(len(data), max_buffered=len(data))
    body.feed(data)
    body.end()
    assert b"".join(body) == data  # the first attempt's iteration (its bytes went nowhere)
    with pytest.raises(BodyAborted, match="twice"):
        client.put_raw(s3_server.hot_bucket, "minio-ext/fed-retried", body,
                           {PAYLOAD_SHA256_HEADER: hashlib.sha256(data).hexdigest()})  # fmt: skip
    time.sleep(0.5)  # nothing to await: the time in which SeaweedFS stored a body-less PUT before the guard
    with pytest.raises(S3Error) as missing:
        client.stat_object(s3_server.hot_bucket, "minio-ext/fed-retried")
    assert missing.value.code == "NoSuchKey"


def test_a_fed_body_bounds_what_waits_and_never_blocks_after_release() -> None:
    body = FedBody(10, max_buffered=4)
    body.feed(b"abcd")
    fed = threading.Event()

    def feed_more() -> None:
        body.feed(b"ef")  # blocks: 4 bytes already wait
        fed.set()

    thread = threading.Thread(target=feed_more)
    thread.start()
    assert not fed.wait(0.2), "feed must wait while max_buffered bytes are queued"
    chunks = iter(body)
    assert bytes(next(chunks)) == b"abcd"
    assert fed.wait(5), "taking a buffer makes room"
    thread.join()
    body.release()  # the request is over (say S3 answered early): feeding drops, never blocks
    body.feed(b"ghij")
    with pytest.raises(ValueError, match="exceed"):
        body.feed(b"k")
    replay = iter(body)  # what a urllib3 retry would send: one byte, then the request fails short
    assert next(replay) == FedBody.FILLER
    with pytest.raises(BodyAborted, match="twice"):
        next(replay)


def test_a_fed_body_must_end_at_its_size_and_needs_http_and_a_digest() -> None:
    with pytest.raises(ValueError, match="at least 2 bytes"):
        FedBody(1, max_buffered=10)
    body = FedBody(3, max_buffered=10)
    body.feed(b"ab")
    with pytest.raises(ValueError, match="ended after 2"):
        body.end()
    https = S3Client("s3.example.invalid", access_key="k", secret_key="s", secure=True)
    with pytest.raises(ValueError, match="needs http"):
        https._build_headers("s3.example.invalid", {PAYLOAD_SHA256_HEADER: "0" * 64}, FedBody(2, 2), None)
    http = S3Client("s3.example.invalid", access_key="k", secret_key="s", secure=False)
    with pytest.raises(ValueError, match="needs http and its SHA-256"):
        http._build_headers("s3.example.invalid", {}, FedBody(2, 2), None)


# --- what the extension relies on in minio: checked, so that an upgrade fails here and not in the archive ---


def test_the_installed_minio_is_the_pinned_version() -> None:
    import minio

    assert minio.__version__ == MINIO_VERSION, (
        f"minio {minio.__version__} is installed, minio_ext was written against {MINIO_VERSION}: check every "
        "private method in RELIED_ON against the new version, then move the pin (libs/storage/pyproject.toml)"
    )


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_every_private_minio_method_relied_on_has_the_parameters_it_had(name: str) -> None:
    method = getattr(Minio, name, None)
    assert method is not None, f"minio.Minio.{name} is gone: minio_ext cannot work with this minio"
    assert tuple(inspect.signature(method).parameters) == RELIED_ON[name]


def test_a_known_digest_replaces_the_hash_minio_would_compute_and_the_marker_is_not_sent() -> None:
    """Offline: the headers minio would sign over http, with and without the caller's digest."""
    plain = S3Client("s3.example.invalid:9000", access_key="a", secret_key="b", secure=False)
    creds = plain._provider.retrieve() if plain._provider is not None else None
    body = b"x" * 1000
    known = "ab" * 32
    headers, _ = plain._build_headers("s3.example.invalid", {PAYLOAD_SHA256_HEADER: known}, body, creds)
    assert headers["x-amz-content-sha256"] == known
    assert headers["Content-Length"] == "1000"
    assert PAYLOAD_SHA256_HEADER not in headers
    headers, _ = plain._build_headers("s3.example.invalid", {}, body, creds)
    assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest(), "no digest given: minio hashes"
