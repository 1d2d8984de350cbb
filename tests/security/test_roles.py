"""Roles and the access trail on the real ingest and indexer processes: each role x each of their methods with a
real request (allowed ones are not PERMISSION_DENIED, refused ones are), tokens listed the deprecated way act as
admins, holds and exports append entries to a trail that verifies, and `callscribe trail verify` finds an entry
written over (one field edited) and exits 1 naming it."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from callscribe.cli.main import main as cli
from callscribe.kit.roles import ADMIN, ALLOWED, ANALYST, ROLES, SERVICE, SUPERVISOR, UPLOADER
from callscribe.stack.services import grpc_address
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as ipb
from callscribe.v1 import ingest_pb2 as pb

from .conftest import LEGACY_TENANT, Guarded, wav

CALLERS = [*ROLES, "legacy", SERVICE]


@pytest.fixture(scope="module")
def recordings(guarded: Guarded) -> dict[str, str]:
    """A recording of acme and one of the legacy tenant, to read and hold."""
    return {tenant: guarded.upload(tenant).recording_id for tenant in ("acme", LEGACY_TENANT)}


def _metadata(guarded: Guarded, caller: str) -> tuple[tuple[str, str], ...]:
    if caller == SERVICE:
        return guarded.pipeline_auth("acme")
    if caller == "legacy":
        return guarded.auth(LEGACY_TENANT)
    return guarded.role_auth("acme", caller)


def _index_call(tenant: str) -> ipb.Call:
    rec_id = secrets.token_hex(16)
    return ipb.Call(
        recording_id=rec_id,
        tenant=tenant,
        metadata=c.RecordingMetadata(tenant=tenant, call_id="c-1", agent_id="agent-roles"),
        utterances=[ipb.Utterance(channel=0, role=c.SPEAKER_ROLE_AGENT, start_ms=0, end_ms=1000, text="hello")],
    )


def _audited(rec_id: str) -> ipb.UpdateStorageRequest:
    request = ipb.UpdateStorageRequest(recording_id=rec_id, integrity=c.INTEGRITY_OK)
    request.verified_at.GetCurrentTime()
    return request


def _requests(guarded: Guarded, tenant: str, rec_id: str) -> dict[str, Callable[[Any], Any]]:
    """Full method name -> a call of it with a request that makes sense for the tenant (md: the metadata)."""
    ingest, indexer = guarded.ingest, guarded.indexer

    def upload(md: Any) -> Any:
        first = pb.UploadRecordingRequest(metadata=c.RecordingMetadata(call_id="c-roles", agent_id="agent-1"))
        return ingest.UploadRecording(iter([first, pb.UploadRecordingRequest(chunk=wav())]), metadata=md, timeout=30)

    return {
        "/callscribe.v1.IngestService/UploadRecording": upload,
        "/callscribe.v1.IngestService/GetRecording": lambda md: ingest.GetRecording(
            pb.GetRecordingRequest(recording_id=rec_id), metadata=md, timeout=30
        ),
        "/callscribe.v1.IngestService/ListRecordings": lambda md: ingest.ListRecordings(
            pb.ListRecordingsRequest(page_size=5), metadata=md, timeout=30
        ),
        "/callscribe.v1.IngestService/SetLegalHold": lambda md: ingest.SetLegalHold(
            pb.SetLegalHoldRequest(recording_id=rec_id, legal_hold=False, reason="role test"), metadata=md, timeout=30
        ),
        "/callscribe.v1.IngestService/ListDeadLetters": lambda md: ingest.ListDeadLetters(
            pb.ListDeadLettersRequest(), metadata=md, timeout=30
        ),
        "/callscribe.v1.IngestService/RequeueDeadLetters": lambda md: ingest.RequeueDeadLetters(
            pb.RequeueDeadLettersRequest(recording_id=secrets.token_hex(16)), metadata=md, timeout=30
        ),
        "/callscribe.v1.IngestService/VerifyTrail": lambda md: ingest.VerifyTrail(
            pb.VerifyTrailRequest(), metadata=md, timeout=60
        ),
        "/callscribe.v1.IngestService/ReadTrail": lambda md: list(
            ingest.ReadTrail(pb.ReadTrailRequest(last=3), metadata=md, timeout=60)
        ),
        "/callscribe.v1.IndexerService/IndexCall": lambda md: indexer.IndexCall(
            ipb.IndexCallRequest(call=_index_call(tenant)), metadata=md, timeout=60
        ),
        "/callscribe.v1.IndexerService/Search": lambda md: indexer.Search(
            ipb.SearchRequest(query=""), metadata=md, timeout=30
        ),
        "/callscribe.v1.IndexerService/GetCall": lambda md: indexer.GetCall(
            ipb.GetCallRequest(recording_id=rec_id), metadata=md, timeout=30
        ),
        "/callscribe.v1.IndexerService/ExportCalls": lambda md: list(
            indexer.ExportCalls(
                ipb.ExportCallsRequest(filter=ipb.SearchRequest(agent_id="nobody-exports-this")),
                metadata=md,
                timeout=60,
            )
        ),
        "/callscribe.v1.IndexerService/FindIndexed": lambda md: indexer.FindIndexed(
            ipb.FindIndexedRequest(recording_ids=[rec_id]), metadata=md, timeout=30
        ),
        "/callscribe.v1.IndexerService/PreviewRedaction": lambda md: indexer.PreviewRedaction(
            ipb.PreviewRedactionRequest(language=c.LANGUAGE_EN, text="call me on 555 0123"), metadata=md, timeout=30
        ),
        "/callscribe.v1.IndexerService/UpdateStorage": lambda md: indexer.UpdateStorage(
            _audited(secrets.token_hex(16)), metadata=md, timeout=30
        ),
        "/callscribe.v1.IndexerService/DeleteCall": lambda md: indexer.DeleteCall(
            ipb.DeleteCallRequest(recording_id=secrets.token_hex(16)), metadata=md, timeout=30
        ),
    }


SERVED = sorted(m for m in ALLOWED if m.startswith(("/callscribe.v1.IngestService/", "/callscribe.v1.IndexerService/")))


def test_every_method_the_two_services_serve_is_exercised_below(guarded: Guarded) -> None:
    assert sorted(_requests(guarded, "acme", "0" * 32)) == SERVED


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", SERVED, ids=lambda m: m.rsplit("/", 1)[-1])
def test_each_role_on_each_method_of_the_real_services(
    guarded: Guarded, recordings: dict[str, str], method: str, caller: str
) -> None:
    tenant = LEGACY_TENANT if caller == "legacy" else "acme"
    role = ADMIN if caller == "legacy" else caller
    call = _requests(guarded, tenant, recordings[tenant])[method]
    code = grpc.StatusCode.OK
    details = ""
    try:
        call(_metadata(guarded, caller))
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    if role in ALLOWED[method]:
        assert code != grpc.StatusCode.PERMISSION_DENIED, f"{caller} refused {method}: {details}"
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND), f"{caller} on {method}: {code} {details}"
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, f"{caller} allowed {method}"
        assert repr(role) in details


def test_the_table_is_what_the_issue_asks(guarded: Guarded) -> None:
    ingest = "/callscribe.v1.IngestService/"
    indexer = "/callscribe.v1.IndexerService/"
    assert ALLOWED[ingest + "UploadRecording"] == {UPLOADER, ADMIN}
    assert UPLOADER in ALLOWED[ingest + "GetRecording"] and UPLOADER in ALLOWED[ingest + "ListRecordings"]
    for name in ("Search", "GetCall", "ExportCalls"):
        assert ALLOWED[indexer + name] == {ANALYST, SUPERVISOR, ADMIN}
    for name in ("SetLegalHold", "ListDeadLetters", "RequeueDeadLetters", "VerifyTrail", "ReadTrail"):
        assert ALLOWED[ingest + name] == {ADMIN}


# --------------------------------------------------------------------------- the trail


def _verify(guarded: Guarded, tenant: str) -> pb.VerifyTrailResponse:
    return guarded.ingest.VerifyTrail(pb.VerifyTrailRequest(), metadata=guarded.role_auth(tenant, ADMIN), timeout=60)


def _last(guarded: Guarded, tenant: str, n: int = 1) -> list[pb.TrailEntry]:
    request = pb.ReadTrailRequest(last=n)
    return list(guarded.ingest.ReadTrail(request, metadata=guarded.role_auth(tenant, ADMIN), timeout=60))


def test_set_legal_hold_appends_an_entry_before_it_answers(guarded: Guarded) -> None:
    rec_id = guarded.upload("acme").recording_id
    before = _verify(guarded, "acme").entries
    admin = guarded.role_auth("acme", ADMIN)
    held = guarded.ingest.SetLegalHold(
        pb.SetLegalHoldRequest(recording_id=rec_id, legal_hold=True, reason="case 2025-17"), metadata=admin, timeout=30
    )
    assert held.lock.legal_hold
    [entry] = _last(guarded, "acme")
    assert (entry.action, list(entry.targets), entry.tenant) == ("hold.set", [rec_id], "acme")
    assert (entry.actor.kind, entry.actor.name, entry.actor.role) == ("token", "local-admin", ADMIN)
    details = json.loads(entry.details_json)
    assert details["reason"] == "case 2025-17" and details["legal_hold"] is True
    assert details["object"]["key"] == f"recordings/acme/{rec_id}/audio"
    # Stored locked under the trail's prefix, where the entry says.
    key = f"trail/acme/{entry.seq:012d}.json"
    stat = guarded.minio.stat_object(guarded.bucket, key)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    guarded.ingest.SetLegalHold(pb.SetLegalHoldRequest(recording_id=rec_id, legal_hold=False), metadata=admin)
    [released] = _last(guarded, "acme")
    assert released.action == "hold.release" and released.prev_sha256 == entry.sha256
    result = _verify(guarded, "acme")
    assert not result.HasField("first_break"), result.first_break
    assert result.entries == result.verified == before + 2 and result.head_sha256 == released.sha256


def test_refused_and_failed_holds_leave_no_entry(guarded: Guarded, recordings: dict[str, str]) -> None:
    before = _verify(guarded, "acme").entries
    request = pb.SetLegalHoldRequest(recording_id=recordings["acme"], legal_hold=True)
    for role in (UPLOADER, ANALYST, SUPERVISOR):
        with pytest.raises(grpc.RpcError) as err:
            guarded.ingest.SetLegalHold(request, metadata=guarded.role_auth("acme", role), timeout=30)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "needs role 'admin'" in (err.value.details() or "") and repr(role) in (err.value.details() or "")
    unknown = pb.SetLegalHoldRequest(recording_id=secrets.token_hex(16), legal_hold=True)
    with pytest.raises(grpc.RpcError) as err:
        guarded.ingest.SetLegalHold(unknown, metadata=guarded.role_auth("acme", ADMIN), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert _verify(guarded, "acme").entries == before


def test_export_calls_appends_an_entry_with_the_analyst_and_the_filter(guarded: Guarded) -> None:
    request = ipb.ExportCallsRequest(filter=ipb.SearchRequest(query="refund", agent_id="agent-export"))
    list(guarded.indexer.ExportCalls(request, metadata=guarded.role_auth("acme", ANALYST), timeout=60))
    [entry] = _last(guarded, "acme")
    assert entry.action == "export" and (entry.actor.name, entry.actor.role) == ("local-analyst", ANALYST)
    assert json.loads(entry.details_json) == {"filter": {"query": "refund", "agent_id": "agent-export"}}
    assert not _verify(guarded, "acme").HasField("first_break")


def test_a_token_sha256_token_acts_as_an_admin(guarded: Guarded, recordings: dict[str, str]) -> None:
    request = pb.SetLegalHoldRequest(recording_id=recordings[LEGACY_TENANT], legal_hold=True, reason="legacy")
    assert guarded.ingest.SetLegalHold(request, metadata=guarded.auth(LEGACY_TENANT), timeout=30).lock.legal_hold
    read = guarded.ingest.ReadTrail(pb.ReadTrailRequest(last=1), metadata=guarded.auth(LEGACY_TENANT), timeout=30)
    [entry] = list(read)
    assert entry.actor.role == ADMIN and entry.actor.name.startswith("token_sha256:")
    guarded.ingest.SetLegalHold(
        pb.SetLegalHoldRequest(recording_id=recordings[LEGACY_TENANT], legal_hold=False),
        metadata=guarded.auth(LEGACY_TENANT),
    )
    log = (guarded.logs / "ingest.log").read_text()
    assert "deprecated" in log and LEGACY_TENANT in log


def _cli(guarded: Guarded, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    address = grpc_address("ingest", guarded.envs["ingest"])
    assert address is not None
    code = cli(["trail", *argv, "--address", address, "--token", guarded.role_tokens["globex"][ADMIN]])
    out, err = capsys.readouterr()
    return code, out, err


def test_trail_verify_passes_then_finds_an_entry_written_over(
    guarded: Guarded, capsys: pytest.CaptureFixture[str]
) -> None:
    # globex's trail is tampered with here: no other test verifies it.
    admin = guarded.role_auth("globex", ADMIN)
    rec_id = guarded.upload("globex").recording_id
    for on in (True, False):
        guarded.ingest.SetLegalHold(pb.SetLegalHoldRequest(recording_id=rec_id, legal_hold=on), metadata=admin)
    code, out, _ = _cli(guarded, capsys, "verify")
    assert code == 0 and "intact" in out
    entries = _verify(guarded, "globex").entries
    code, out, _ = _cli(guarded, capsys, "show", "--last", "2")
    assert code == 0 and "hold.set" in out and "hold.release" in out and rec_id in out

    key = f"trail/globex/{entries - 1:012d}.json"  # the hold.set entry
    response = guarded.minio.get_object(guarded.bucket, key)
    try:
        doc = json.loads(response.read())
    finally:
        response.close()
        response.release_conn()
    doc["details"]["legal_hold"] = False  # one field
    edited = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    guarded.minio.put_object(guarded.bucket, key, io.BytesIO(edited), len(edited), content_type="application/json")

    code, _, err = _cli(guarded, capsys, "verify")
    assert code == 1
    assert f"BROKEN at entry {entries - 1}" in err and "written over" in err
    result = _verify(guarded, "globex")
    assert result.first_break.seq == entries - 1 and result.verified == entries - 2
    code, out, _ = _cli(guarded, capsys, "verify", "--json")
    assert code == 1 and json.loads(out)["first_break"]["seq"] == str(entries - 1)
