"""Unredacted transcripts kept sealed with the recording's data key (issue 19) through the real indexer on
noida-db and SeaweedFS: a tenant that keeps them has the call before masking stored encrypted beside the
recording; supervisors and admins read it (each read in the access trail first), analysts cannot; once the data
key is destroyed (erasure) it is noise."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from callscribe.indexer.unredacted import SealedTranscripts, object_key
from callscribe.kit.files import write_json_atomically
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.client import make_client
from callscribe.storage.keys import FileKek
from callscribe.storage.recordkeys import KeyDestroyed, RecordingKeys
from callscribe.storage.trail import Trail
from callscribe.v1 import indexer_pb2 as pb

from .conftest import AGENT, CUSTOMER, PIPELINE_TOKEN, RPC_TIMEOUT_S, Indexer, StartIndexer, auth, make_call, new_agent

KEYS_BUCKET = "callscribe-keys-indexer-test"
CARD = "6222 0212 3456 7894"
CALL = [
    (0, AGENT, 0, 2_000, "请报一下卡号"),
    (1, CUSTOMER, 2_500, 6_000, f"我的卡号是{CARD}"),
]


@pytest.fixture(scope="module")
def keeper(start_indexer: StartIndexer, s3_server, stack_tmp: Path) -> tuple[Indexer, TenantsFile, RecordingKeys]:  # type: ignore[no-untyped-def]
    path = stack_tmp / "unredacted-tenants.json"
    tenants = TenantsFile.write(path, {"keeper": TenantSpec("COMPLIANCE", 1825)}, {"pipeline": PIPELINE_TOKEN},
                                roles=("analyst", "supervisor"))  # fmt: skip
    document = json.loads(path.read_text(encoding="utf-8"))
    document["tenants"]["keeper"]["redaction"] = {"keep_unredacted": True}
    write_json_atomically(path, document)
    kek = FileKek.create(stack_tmp / "indexer-kek.json")
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 4)
    if not client.bucket_exists(KEYS_BUCKET):
        client.make_bucket(KEYS_BUCKET)
    indexer = start_indexer(real_enricher=True, tenants=tenants, kek_file=kek.path, keys_bucket=KEYS_BUCKET)
    return indexer, tenants, RecordingKeys(client, KEYS_BUCKET, kek)


def _read(indexer: Indexer, token: str, rec_id: str) -> pb.Call:
    request = pb.GetCallRequest(recording_id=rec_id, unredacted=True)
    return indexer.stub.GetCall(request, metadata=auth(token), timeout=RPC_TIMEOUT_S)


def test_supervisors_read_the_sealed_unredacted_call_and_erasure_shreds_it(keeper, s3_server) -> None:  # type: ignore[no-untyped-def]
    indexer, tenants, keys = keeper
    call = make_call(tenant="keeper", agent_id=new_agent(), utterances=CALL)
    key = keys.create("keeper", call.recording_id)
    request = pb.IndexCallRequest(call=call, key_id=key.key_id)
    indexer.stub.IndexCall(request, metadata=auth(PIPELINE_TOKEN) + (("x-callscribe-tenant", "keeper"),),
                           timeout=RPC_TIMEOUT_S)  # fmt: skip
    assert indexer.get(call.recording_id, tenant="keeper").utterances[1].text == "我的卡号是[CARD]"
    # Stored sealed: the card number is not in the object.
    s3 = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1", 4)
    stored = s3.get_object(s3_server.hot_bucket, object_key("keeper", call.recording_id)).read()
    assert b"6222" not in stored and CARD.encode() not in stored and "我的卡号".encode() not in stored
    roles = tenants.role_tokens["keeper"]
    assert _read(indexer, roles["supervisor"], call.recording_id).utterances[1].text == CALL[1][4]
    assert _read(indexer, roles["admin"], call.recording_id).utterances[1].text == CALL[1][4]
    with pytest.raises(grpc.RpcError) as refused:
        _read(indexer, roles["analyst"], call.recording_id)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED and "supervisor" in (refused.value.details() or "")
    trail = Trail(LockedBucket(s3, s3_server.hot_bucket))  # type: ignore[arg-type]
    reads = [e for e in trail.last_entries("keeper", 20) if e.entry.action == "transcript.read_unredacted"]
    assert [e.entry.actor["role"] for e in reads][-2:] == ["supervisor", "admin"]  # the analyst's is not a read
    # Erasure destroys the data key: the sealed transcript cannot be opened by anyone any more.
    keys.destroy("keeper", call.recording_id)
    with pytest.raises(KeyDestroyed):
        SealedTranscripts(s3, s3_server.hot_bucket, keys).get("keeper", call.recording_id)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as gone:
        _read(indexer, roles["supervisor"], call.recording_id)
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "erased" in (gone.value.details() or "")
