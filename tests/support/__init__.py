"""What every test folder shares: polling instead of guessed sleeps, and recordings put where ingest puts them.

Test folders import it as `support` (pytest puts `tests/` on the import path: it holds no __init__.py).
The real-server fixtures themselves (SeaweedFS, Redis, the Elasticsearch API) are in `tests/conftest.py`.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from minio import Minio

from callscribe.v1 import common_pb2 as c

T = TypeVar("T")
POLL_S = 0.05


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = POLL_S) -> T:
    """Call `predicate` until it returns something truthy and return that; fail the test after `timeout` s
    with "timed out ... waiting for `what`"."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Recordings:
    """Puts audio where ingest would: `recordings/<tenant>/<id>/audio` in the hot bucket."""

    client: Minio
    bucket: str

    def put(self, tenant: str, data: bytes) -> c.ObjectRef:
        key = f"recordings/{tenant}/{secrets.token_hex(16)}/audio"
        result = self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        return c.ObjectRef(
            bucket=self.bucket, key=key, version_id=result.version_id or "", sha256=hashlib.sha256(data).hexdigest()
        )

    def put_file(self, tenant: str, path: Path) -> c.ObjectRef:
        key = f"recordings/{tenant}/{secrets.token_hex(16)}/audio"
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        result = self.client.fput_object(self.bucket, key, str(path), part_size=16 * 1024 * 1024)
        return c.ObjectRef(bucket=self.bucket, key=key, version_id=result.version_id or "", sha256=sha.hexdigest())


__all__ = ["POLL_S", "Recordings", "wait_for"]
