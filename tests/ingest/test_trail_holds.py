"""A legal hold is recorded in the access trail before it changes (the ingest servicer behind the kit's real
interceptors, its archive a test double that counts the holds it was asked for): an entry that cannot be written
fails the hold with UNAVAILABLE and changes nothing; a hold that fails after its entry is followed by a
".failed" entry."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from callscribe.ingest.upload.servicer import IngestServicer, UploadMetrics
from callscribe.ingest.upload.wire import add_ingest_service
from callscribe.kit.errors import Unavailable
from callscribe.kit.server import GrpcServer, ServiceBinding
from callscribe.kit.settings import ServiceSettings
from callscribe.stack.procs import free_port
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.trail import Trail
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

TOKEN = "token-of-the-legal-team"


class CountingArchive:
    """Finds every recording; counts the holds asked for, or fails them with `fail`."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.holds: list[tuple[str, bool]] = []
        self.fail = fail

    def get(self, tenant: Any, rec_id: str) -> Any:
        obj = SimpleNamespace(
            bucket="hot", key=f"recordings/{tenant.name}/{rec_id}/audio", version_id="v1", sha256="ab" * 32
        )
        return SimpleNamespace(record=SimpleNamespace(tier="HOT", object=obj))

    def set_legal_hold(self, tenant: Any, rec_id: str, on: bool) -> Any:
        if self.fail is not None:
            raise self.fail
        self.holds.append((rec_id, on))
        return SimpleNamespace(recording_id=rec_id, lock=None)


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("holds") / "tenants.json"
    tenant = f"holds-{secrets.token_hex(4)}"  # a trail of its own
    entry = {"sha256": hashlib.sha256(TOKEN.encode()).hexdigest(), "role": "admin", "name": "legal-team"}
    path.write_text(json.dumps({"tenants": {tenant: {"tokens": [entry], "retention_days": 1}}}))
    return path


def _serve(tenants_file: Path, archive: CountingArchive, trail: Trail) -> GrpcServer:
    settings = ServiceSettings(grpc_address="127.0.0.1:0", metrics_address="127.0.0.1:0", tenants_file=tenants_file)
    servicer = IngestServicer(archive, 2, UploadMetrics(CollectorRegistry()), trail=trail)  # type: ignore[arg-type]
    binding = ServiceBinding("callscribe.v1.IngestService", add_ingest_service, servicer)
    server = GrpcServer("holdstest", settings, [binding], CollectorRegistry())
    server.start()
    return server


@pytest.fixture
def served(tenants_file: Path, s3_server) -> Iterator[tuple[CountingArchive, Trail, ingest_pb2_grpc.IngestServiceStub]]:  # type: ignore[no-untyped-def]
    """The servicer with a trail on the session's S3; the archive fails holds with UNAVAILABLE."""
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 4)
    trail = Trail(LockedBucket(client, s3_server.hot_bucket))
    archive = CountingArchive(fail=Unavailable("S3 legal hold change failed: connection reset"))
    server = _serve(tenants_file, archive, trail)
    with grpc.insecure_channel(server.address) as channel:
        yield archive, trail, ingest_pb2_grpc.IngestServiceStub(channel)
    server.stop(0)


def _hold(stub: ingest_pb2_grpc.IngestServiceStub, rec_id: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        stub.SetLegalHold(
            pb.SetLegalHoldRequest(recording_id=rec_id, legal_hold=True, reason="case 7"),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
            timeout=60,
        )
    return err.value


def test_an_entry_that_cannot_be_written_fails_the_hold_and_changes_nothing(tenants_file: Path) -> None:
    dead = make_client(f"http://127.0.0.1:{free_port()}", "k", "s", "us-east-1", 2)  # nothing listens there
    archive = CountingArchive()
    server = _serve(tenants_file, archive, Trail(LockedBucket(dead, "callscribe-hot")))
    try:
        with grpc.insecure_channel(server.address) as channel:
            error = _hold(ingest_pb2_grpc.IngestServiceStub(channel), secrets.token_hex(16))
    finally:
        server.stop(0)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "legal hold was not changed" in (error.details() or "")  # type: ignore[attr-defined]
    assert archive.holds == []


def test_a_hold_that_fails_after_its_entry_is_followed_by_a_failed_entry(served, tenants_file: Path) -> None:  # type: ignore[no-untyped-def]
    archive, trail, stub = served
    tenant = next(iter(json.loads(tenants_file.read_text())["tenants"]))
    rec_id = secrets.token_hex(16)
    error = _hold(stub, rec_id)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    intent, failed = [stored.entry for stored in trail.last_entries(tenant, 2)]
    assert (intent.action, intent.targets, intent.details["reason"]) == ("hold.set", (rec_id,), "case 7")
    assert failed.action == "hold.set.failed" and failed.details["intent_seq"] == intent.seq
    assert "connection reset" in failed.details["error"]
    assert intent.actor == {"kind": "token", "name": "legal-team", "role": "admin"}
    assert trail.verify(tenant).ok
