"""Unredacted transcripts, kept encrypted with the recording's data key (issue 19).

A tenant whose redaction policy says `keep_unredacted` has the call as transcribed (before PII masking) kept for
supervisors: encrypted with the recording's own data key (`StreamingAeadCodec.seal`, bound to the recording and to
what it is) and stored beside the recording in the hot bucket as `recordings/<tenant>/<id>/unredacted.sealed`,
without a lock. Erasure destroys the data key (so any copy of it, a backup included, is noise) and deletes it;
retention expiry deletes it with the rest of the recording. Only the index holds the redacted text.
"""

from __future__ import annotations

import io

from minio.error import S3Error

from callscribe.kit.errors import FailedPrecondition
from callscribe.kit.tenants import Tenant
from callscribe.storage.errors import is_missing, s3_errors
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.protection import KEY_ID_META
from callscribe.storage.recordkeys import RecordingKeys
from callscribe.v1 import indexer_pb2 as pb

NAME = "unredacted.sealed"
LABEL = b"unredacted-transcript"


def object_key(tenant: str, rec_id: str) -> str:
    return f"recordings/{tenant}/{rec_id}/{NAME}"


class SealedTranscripts:
    def __init__(self, client: S3Client, bucket: str, keys: RecordingKeys) -> None:
        self._client = client
        self._bucket = bucket
        self._keys = keys

    def put(self, tenant: Tenant, call: pb.Call, key_id: str) -> None:
        """Keep `call` (unredacted) encrypted with the recording's data key `key_id`."""
        if not key_id:
            raise FailedPrecondition(
                f"tenant {tenant.name} keeps unredacted transcripts, but recording {call.recording_id} is not "
                "encrypted at rest (no data key): it is indexed redacted only. Turn encryption at rest on"
            )
        codec = self._keys.open(tenant.name, call.recording_id, key_id).codec
        sealed = codec.seal(call.SerializeToString(), LABEL)
        with s3_errors("S3 write of the sealed unredacted transcript failed"):
            self._client.put_object(
                self._bucket, object_key(tenant.name, call.recording_id), io.BytesIO(sealed), len(sealed),
                content_type="application/octet-stream", metadata={KEY_ID_META: key_id},
            )  # fmt: skip

    def get(self, tenant: str, rec_id: str) -> pb.Call | None:
        """The unredacted call; None when none was kept. KeyDestroyed once the recording was erased."""
        with s3_errors("S3 read of the sealed unredacted transcript failed"):
            try:
                response = self._client.get_object(self._bucket, object_key(tenant, rec_id))
            except S3Error as exc:
                if is_missing(exc):
                    return None
                raise
            try:
                sealed = bytes(response.read())
                key_id = {k.lower(): v for k, v in response.headers.items()}.get(KEY_ID_META, "")
            finally:
                response.close()
                response.release_conn()
        codec = self._keys.open(tenant, rec_id, key_id).codec
        call = pb.Call()
        call.ParseFromString(codec.unseal(sealed, LABEL))
        return call
