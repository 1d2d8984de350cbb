"""The shared server kit over a real gRPC channel: auth, error mapping, metrics, health, reflection, stop."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest

from callscribe.kit.errors import NotFound
from callscribe.kit.interceptors import caller_tenant, resolve_tenant
from callscribe.kit.server import GrpcServer, ServiceBinding
from callscribe.kit.settings import ServiceSettings
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

TOKENS = {"acme": "token-of-acme", "globex": "token-of-globex"}
SERVICE_TOKEN = "token-of-the-pipeline"


class EchoTenantServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Answers GetRecording with the caller's tenant; 'missing' raises a domain error, 'boom' a bug."""

    def GetRecording(self, request, context):  # noqa: N802
        resolve_tenant(request.tenant)
        if request.recording_id == "missing":
            raise NotFound("recording missing not found")
        if request.recording_id == "boom":
            raise RuntimeError("a bug with a secret path /srv/x")
        return pb.Recording(recording_id=request.recording_id, tenant=caller_tenant().name)


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kit") / "tenants.json"
    doc = {name: {"token_sha256": [hashlib.sha256(tok.encode()).hexdigest()]} for name, tok in TOKENS.items()}
    services = {"pipeline": {"token_sha256": [hashlib.sha256(SERVICE_TOKEN.encode()).hexdigest()]}}
    path.write_text(json.dumps({"tenants": doc, "service_accounts": services}))
    return path


@pytest.fixture(scope="module")
def served(tenants_file: Path) -> Iterator[tuple[GrpcServer, CollectorRegistry]]:
    settings = ServiceSettings(grpc_address="127.0.0.1:0", metrics_address="127.0.0.1:0", tenants_file=tenants_file)
    registry = CollectorRegistry()
    binding = ServiceBinding(
        "callscribe.v1.IngestService", ingest_pb2_grpc.add_IngestServiceServicer_to_server, EchoTenantServicer()
    )
    server = GrpcServer("kittest", settings, [binding], registry)
    server.start()
    yield server, registry
    server.stop(0)


def _call(
    server: GrpcServer, rec_id: str, token: str | None, tenant: str = "", acting_for: str | None = None
) -> pb.Recording:
    stub = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(server.address))
    metadata = [("authorization", f"Bearer {token}")] if token else None
    if metadata is not None and acting_for is not None:
        metadata.append(("x-callscribe-tenant", acting_for))
    return stub.GetRecording(pb.GetRecordingRequest(recording_id=rec_id, tenant=tenant), metadata=metadata, timeout=5)


def test_port_zero_binds_a_real_port(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    server, _ = served
    assert server.port > 0 and server.address.endswith(f":{server.port}")


def test_token_decides_the_tenant(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    server, _ = served
    assert _call(server, "r1", TOKENS["acme"]).tenant == "acme"
    assert _call(server, "r1", TOKENS["globex"]).tenant == "globex"


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_missing_or_wrong_token_is_unauthenticated(served: tuple[GrpcServer, CollectorRegistry], token) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(served[0], "r1", token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in err.value.details()


def test_other_tenant_in_request_is_permission_denied(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(served[0], "r1", TOKENS["acme"], tenant="globex")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "acme" in err.value.details()


def test_service_account_acts_for_the_tenant_it_names(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    server, _ = served
    assert _call(server, "r1", SERVICE_TOKEN, acting_for="acme").tenant == "acme"
    assert _call(server, "r1", SERVICE_TOKEN, acting_for="globex").tenant == "globex"
    # Acting for acme, it is held to acme like acme's own token.
    with pytest.raises(grpc.RpcError) as err:
        _call(server, "r1", SERVICE_TOKEN, tenant="globex", acting_for="acme")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("acting_for", [None, "", "initech"])
def test_service_account_without_a_known_tenant_is_refused(served, acting_for) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(served[0], "r1", SERVICE_TOKEN, acting_for=acting_for)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "x-callscribe-tenant" in err.value.details()


def test_a_tenant_token_cannot_act_for_another_tenant(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    # The header only means something for service accounts: acme's token stays acme.
    assert _call(served[0], "r1", TOKENS["acme"], acting_for="globex").tenant == "acme"


def test_domain_error_maps_to_its_status(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(served[0], "missing", TOKENS["acme"])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "recording missing not found"


def test_unexpected_error_is_internal_with_reference_and_no_detail_leak(served) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(served[0], "boom", TOKENS["acme"])
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "ref " in err.value.details() and "/srv/x" not in err.value.details()


def test_metrics_count_calls_by_method_and_code(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    server, registry = served
    _call(server, "r2", TOKENS["acme"])
    text = generate_latest(registry).decode()
    assert (
        'callscribe_kittest_grpc_requests_total{code="OK",method="/callscribe.v1.IngestService/GetRecording"}' in text
    )
    assert 'code="NOT_FOUND"' in text and 'code="UNAUTHENTICATED"' in text
    assert "callscribe_kittest_grpc_request_seconds_bucket" in text


def test_health_follows_mark_serving_without_a_token(tenants_file: Path) -> None:
    settings = ServiceSettings(grpc_address="127.0.0.1:0", tenants_file=tenants_file)
    binding = ServiceBinding(
        "callscribe.v1.IngestService", ingest_pb2_grpc.add_IngestServiceServicer_to_server, EchoTenantServicer()
    )
    server = GrpcServer("kithealth", settings, [binding], CollectorRegistry())
    server.start()
    try:
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(server.address))
        check = health_pb2.HealthCheckRequest(service="callscribe.v1.IngestService")
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
        server.mark_serving()
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)
    server.wait()  # returns once stopped


def test_reflection_lists_the_services(served: tuple[GrpcServer, CollectorRegistry]) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc.insecure_channel(served[0].address))
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"callscribe.v1.IngestService", "grpc.health.v1.Health"} <= names


def test_settings_are_validated_at_start(tenants_file: Path) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        ServiceSettings(grpc_address="nonsense", tenants_file=tenants_file)
    with pytest.raises(ValueError, match="does not exist"):
        ServiceSettings(tenants_file=tenants_file.parent / "absent.json")
    with pytest.raises(ValueError, match="tls_cert_file and tls_key_file"):
        ServiceSettings(tenants_file=tenants_file, tls_cert_file=tenants_file)


def test_tls_from_configuration(tenants_file: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    settings = ServiceSettings(
        grpc_address="127.0.0.1:0", tenants_file=tenants_file, tls_cert_file=cert, tls_key_file=key
    )
    binding = ServiceBinding(
        "callscribe.v1.IngestService", ingest_pb2_grpc.add_IngestServiceServicer_to_server, EchoTenantServicer()
    )
    server = GrpcServer("kittls", settings, [binding], CollectorRegistry())
    server.start()
    try:
        secure = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(cert.read_bytes()))
        stub = ingest_pb2_grpc.IngestServiceStub(secure)
        reply = stub.GetRecording(
            pb.GetRecordingRequest(recording_id="t"),
            timeout=5,
            metadata=[("authorization", f"Bearer {TOKENS['acme']}")],
        )
        assert reply.tenant == "acme"
        plain = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(server.address))
        with pytest.raises(grpc.RpcError) as err:
            plain.GetRecording(pb.GetRecordingRequest(recording_id="t"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
