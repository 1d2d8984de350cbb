"""The archive store's conditional writes against the real S3 server, and its fallback without them."""

from __future__ import annotations

import secrets

from callscribe.ingest.s3store import PROBE_BODY, PROBE_KEY, S3RecordingStore
from callscribe.kit.s3 import make_client
from callscribe.stack import servers

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

    def _put_object(self, bucket: str, key: str, data: bytes, headers: dict) -> None:
        self.puts.append((key, dict(headers)))


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
