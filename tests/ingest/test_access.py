"""Who may call what: bearer tokens, tenant isolation, public health/reflection, metrics."""

from __future__ import annotations

import re
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from callscribe.v1 import ingest_pb2 as pb

SERVICE = "callscribe.v1.IngestService"
UNARY = ["GetRecording", "ListRecordings", "SetLegalHold"]


@pytest.fixture(scope="module")
def acme_recording(ingest, new_wav):  # type: ignore[no-untyped-def]
    return ingest.upload("acme", new_wav(), call_id="secret-call-acme", agent_id="agent-acme", customer_id="cust-acme")


def _call(ingest, method: str, rec_id: str, metadata, tenant: str = ""):  # type: ignore[no-untyped-def]
    request = {
        "GetRecording": pb.GetRecordingRequest(tenant=tenant, recording_id=rec_id),
        "ListRecordings": pb.ListRecordingsRequest(tenant=tenant),
        "SetLegalHold": pb.SetLegalHoldRequest(tenant=tenant, recording_id=rec_id, legal_hold=False),
    }[method]
    return getattr(ingest.stub, method)(request, metadata=metadata, timeout=30)


BAD_CREDENTIALS = {
    "none": (),
    "wrong-token": (("authorization", "Bearer not-a-token"),),
    "empty-token": (("authorization", "Bearer "),),
    "no-bearer-prefix": None,  # the right token without "Bearer "
    "basic-scheme": None,
}


def _bad_metadata(kind: str, token: str) -> tuple[tuple[str, str], ...]:
    if kind == "no-bearer-prefix":
        return (("authorization", token),)
    if kind == "basic-scheme":
        return (("authorization", f"Basic {token}"),)
    return BAD_CREDENTIALS[kind]  # type: ignore[return-value]


@pytest.mark.parametrize("kind", list(BAD_CREDENTIALS))
@pytest.mark.parametrize("method", UNARY)
def test_unary_calls_without_a_valid_token_are_unauthenticated(ingest, acme_recording, method, kind):
    with pytest.raises(grpc.RpcError) as err:
        _call(ingest, method, acme_recording.recording_id, _bad_metadata(kind, ingest.tokens["acme"]))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in err.value.details()
    assert "secret-call-acme" not in err.value.details()


@pytest.mark.parametrize("kind", ["none", "wrong-token"])
def test_upload_without_a_valid_token_is_unauthenticated_and_stores_nothing(
    ingest, new_wav, make_requests, make_metadata, archive, kind
):
    before = archive.versions()
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.UploadRecording(
            make_requests(make_metadata(), new_wav()), metadata=BAD_CREDENTIALS[kind], timeout=30
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in err.value.details()
    assert archive.versions() == before


def test_another_tenants_recording_is_not_found_and_nothing_leaks(ingest, acme_recording):
    rec_id = acme_recording.recording_id
    with pytest.raises(grpc.RpcError) as err:
        ingest.get("globex", rec_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    details = err.value.details()
    for secret in ("secret-call-acme", "agent-acme", "cust-acme", "acme", acme_recording.sha256):
        assert secret not in details
    assert not err.value.trailing_metadata()
    # Legal hold on it is refused the same way, and the real owner still sees it unheld.
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.SetLegalHold(
            pb.SetLegalHoldRequest(recording_id=rec_id, legal_hold=True), metadata=ingest.auth("globex"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "acme" not in err.value.details()
    assert ingest.get("acme", rec_id).lock.legal_hold is False


def test_another_tenants_recordings_are_not_listed(ingest, acme_recording):
    page = ingest.stub.ListRecordings(
        pb.ListRecordingsRequest(page_size=1000), metadata=ingest.auth("globex"), timeout=30
    )
    assert all(r.tenant == "globex" for r in page.recordings)
    assert acme_recording.recording_id not in {r.recording_id for r in page.recordings}


@pytest.mark.parametrize("method", UNARY)
def test_naming_another_tenant_is_permission_denied(ingest, acme_recording, method):
    with pytest.raises(grpc.RpcError) as err:
        _call(ingest, method, acme_recording.recording_id, ingest.auth("acme"), tenant="globex")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'acme'" in err.value.details() and "'globex'" in err.value.details()


def test_naming_ones_own_tenant_is_allowed(ingest, acme_recording):
    request = pb.GetRecordingRequest(tenant="acme", recording_id=acme_recording.recording_id)
    rec = ingest.stub.GetRecording(request, metadata=ingest.auth("acme"), timeout=30)
    assert rec.recording_id == acme_recording.recording_id
    assert rec.metadata.call_id == "secret-call-acme"


@pytest.mark.parametrize("bad_id", ["", "xyz", "A" * 32, "0" * 31, "../" + "0" * 29])
def test_malformed_recording_id_is_invalid(ingest, bad_id):
    with pytest.raises(grpc.RpcError) as err:
        ingest.get("acme", bad_id)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "32 lowercase hex" in err.value.details()


def test_unknown_recording_is_not_found(ingest):
    with pytest.raises(grpc.RpcError) as err:
        ingest.get("acme", "f" * 32)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "not found" in err.value.details()


@pytest.mark.parametrize("service", ["", SERVICE])
def test_health_is_serving_without_a_token(ingest, service):
    stub = health_pb2_grpc.HealthStub(ingest.channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_an_unknown_service_is_not_found(ingest):
    stub = health_pb2_grpc.HealthStub(ingest.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service_without_a_token(ingest):
    stub = reflection_pb2_grpc.ServerReflectionStub(ingest.channel)
    replies = list(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names
    # And it can describe the service's methods.
    replies = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)]), timeout=10
        )
    )
    assert replies[0].file_descriptor_response.file_descriptor_proto
    assert b"UploadRecording" in b"".join(replies[0].file_descriptor_response.file_descriptor_proto)


def _requests_total(url: str) -> dict[tuple[str, str], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    counts = {}
    for line in text.splitlines():
        m = re.match(r"callscribe_ingest_grpc_requests_total\{(.*)\} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            counts[(labels["method"], labels["code"])] = float(m.group(2))
    return counts


def test_metrics_count_requests_by_method_and_code(ingest, new_wav):
    get = f"/{SERVICE}/GetRecording"
    up = f"/{SERVICE}/UploadRecording"
    before = _requests_total(ingest.metrics_url)

    ack = ingest.upload("acme", new_wav())
    ingest.get("acme", ack.recording_id)
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            ingest.get("acme", "e" * 32)
    with pytest.raises(grpc.RpcError):
        ingest.stub.GetRecording(pb.GetRecordingRequest(recording_id=ack.recording_id), timeout=10)

    after = _requests_total(ingest.metrics_url)
    assert after, "no callscribe_ingest_grpc_requests_total samples"

    def delta(method: str, code: str) -> float:
        return after.get((method, code), 0) - before.get((method, code), 0)

    assert delta(up, "OK") == 1
    assert delta(get, "OK") == 1
    assert delta(get, "NOT_FOUND") == 2
    assert delta(get, "UNAUTHENTICATED") == 1
