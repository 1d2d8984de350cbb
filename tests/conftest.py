"""Session-wide real servers for the tests, started by the same code as ``callscribe stack up``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio
from support import Recordings

from callscribe.stack import servers
from callscribe.stack.procs import BinaryMissingError, stop
from callscribe.stack.stack import COLD_BUCKET, HOT_BUCKET


@dataclass(frozen=True)
class LockedS3:
    """SeaweedFS with the two Object Lock buckets of the stack."""

    server: servers.S3Server
    hot_bucket: str
    cold_bucket: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key


@pytest.fixture(scope="session", autouse=True)
def _own_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`stack up` records the stack it started in $XDG_STATE_HOME/callscribe/last-stack: the tests' stacks go to a
    directory of their own, never to the user's ~/.local/state."""
    state_home = tmp_path_factory.mktemp("xdg-state")
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state_home)
    yield state_home
    if before is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture(scope="session")
def stack_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def s3_server(stack_tmp: Path) -> Iterator[LockedS3]:
    try:
        server = servers.start_seaweedfs(stack_tmp / "s3")
    except BinaryMissingError as exc:
        pytest.skip(str(exc))
    try:
        servers.create_locked_buckets(server, (HOT_BUCKET, COLD_BUCKET))
        yield LockedS3(server, HOT_BUCKET, COLD_BUCKET)
    finally:
        stop(server.process)


@pytest.fixture(scope="session")
def minio_client(s3_server: LockedS3) -> Minio:
    return servers.minio_client(s3_server.server)


@pytest.fixture(scope="session")
def recordings(minio_client: Minio, s3_server: LockedS3) -> Recordings:
    """Puts audio in the hot bucket where ingest would (for the services that read recordings)."""
    return Recordings(minio_client, s3_server.hot_bucket)


@pytest.fixture(scope="session")
def redis_server(stack_tmp: Path) -> Iterator[servers.RedisServer]:
    try:
        server = servers.start_redis(stack_tmp / "redis")
    except BinaryMissingError as exc:
        pytest.skip(str(exc))
    yield server
    stop(server.process)


@pytest.fixture(scope="session")
def es_server(stack_tmp: Path) -> Iterator[servers.EsServer]:
    try:
        server = servers.start_elasticsearch(stack_tmp / "elasticsearch")
    except BinaryMissingError as exc:
        pytest.skip(str(exc))
    yield server
    stop(server.process)
