"""kit.s3's client against the real S3 server: a body signed with the digest its caller computed."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest
from minio.error import S3Error

from callscribe.kit.s3 import PAYLOAD_SHA256_HEADER, Body, S3Client, make_client


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
    key = "kit-s3/known-digest"
    headers = {PAYLOAD_SHA256_HEADER: hashlib.sha256(data).hexdigest()}
    client._put_object(s3_server.hot_bucket, key, data, headers)
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
        client._put_object(s3_server.hot_bucket, "kit-s3/traced", data, {PAYLOAD_SHA256_HEADER: digest})
        client._put_object(s3_server.hot_bucket, "kit-s3/traced-plain", data, {})
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
    client._put_object(s3_server.hot_bucket, "kit-s3/body", body, {PAYLOAD_SHA256_HEADER: body.sha256()})
    assert _read(client, s3_server.hot_bucket, "kit-s3/body") == data


def test_a_body_without_its_digest_is_refused_before_anything_is_sent(client: S3Client, s3_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="needs its SHA-256"):
        client._put_object(s3_server.hot_bucket, "kit-s3/no-digest", Body([b"abc"]), {})
    with pytest.raises(S3Error) as missing:
        client.stat_object(s3_server.hot_bucket, "kit-s3/no-digest")
    assert missing.value.code == "NoSuchKey"


def test_over_https_a_body_gets_the_content_md5_minio_would_send() -> None:
    https = S3Client("s3.example.invalid", access_key="k", secret_key="s", secure=True)
    body = Body([b"abc", memoryview(b"def")])
    headers, _ = https._build_headers("s3.example.invalid", {PAYLOAD_SHA256_HEADER: body.sha256()}, body, None)
    assert headers["Content-Length"] == "6"
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(b"abcdef").digest()).decode()
    assert PAYLOAD_SHA256_HEADER not in headers
