"""A second S3 server for the storage layer's copies between endpoints (hot and cold may be two clusters)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callscribe.stack import servers
from callscribe.stack.procs import stop
from callscribe.storage.client import make_client
from callscribe.storage.minio_ext import S3Client

COLD_ONLY_BUCKET = "callscribe-cold-b"


@pytest.fixture(scope="session")
def second_s3(stack_tmp: Path) -> Iterator[S3Client]:
    """Another SeaweedFS, with one Object Lock bucket (COLD_ONLY_BUCKET); a client to it."""
    server = servers.start_seaweedfs(stack_tmp / "s3-second")
    try:
        servers.create_locked_buckets(server, (COLD_ONLY_BUCKET,))
        yield make_client(server.endpoint, server.access_key, server.secret_key, "us-east-1", pool_size=4)
    finally:
        stop(server.process)


@pytest.fixture(scope="session")
def first_s3(s3_server) -> S3Client:  # type: ignore[no-untyped-def]
    return make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", pool_size=8)
