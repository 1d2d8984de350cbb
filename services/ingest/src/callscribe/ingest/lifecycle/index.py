"""The lifecycle's calls to the indexer: a moved call's new location, an audit finding, an expired call's
deletion. The pipeline's service account, acting for the recording's tenant."""

from __future__ import annotations

import time
from datetime import datetime

import grpc

from callscribe.ingest.convert import timestamp
from callscribe.kit.errors import Unavailable
from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.kit.names import INTEGRITIES
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2, indexer_pb2_grpc


class IndexClient:
    def __init__(
        self, stub: indexer_pb2_grpc.IndexerServiceStub, token: str, timeout_s: float = 30.0, cooldown_s: float = 10.0
    ) -> None:
        self._stub = stub
        self._token = token
        self._timeout = timeout_s
        # After the indexer was found away, calls fail at once for a while (a pass over thousands of recordings
        # must not wait on each); what they carried is kept pending and sent later.
        self._cooldown = cooldown_s
        self._down_until = 0.0
        self._down_reason = ""

    def _auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"), (ACTING_TENANT_HEADER, tenant))

    def moved(self, tenant: str, rec_id: str, ref: c.ObjectRef, moved_at: datetime) -> bool:
        """Tell the index where the call's audio is now; False when the call is not indexed (yet): the
        pipeline indexes it from the record, which already says COLD. Unavailable when the indexer is not
        there (the lifecycle tries again next pass)."""
        request = indexer_pb2.UpdateStorageRequest(
            tenant=tenant, recording_id=rec_id, object=ref, tier=c.STORAGE_TIER_COLD, moved_at=timestamp(moved_at)
        )
        return self._update(tenant, request)

    def audited(self, tenant: str, rec_id: str, integrity: str, verified_at: datetime) -> bool:
        request = indexer_pb2.UpdateStorageRequest(
            tenant=tenant, recording_id=rec_id, integrity=INTEGRITIES[integrity], verified_at=timestamp(verified_at)
        )
        return self._update(tenant, request)

    def delete(self, tenant: str, rec_id: str) -> int:
        """Delete the call's documents; how many there were."""
        self._check_up()
        try:
            reply = self._stub.DeleteCall(
                indexer_pb2.DeleteCallRequest(tenant=tenant, recording_id=rec_id),
                metadata=self._auth(tenant),
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            raise self._away(exc) from exc
        return int(reply.documents)

    def _update(self, tenant: str, request: indexer_pb2.UpdateStorageRequest) -> bool:
        self._check_up()
        try:
            self._stub.UpdateStorage(request, metadata=self._auth(tenant), timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise self._away(exc) from exc
        return True

    def _check_up(self) -> None:
        if time.monotonic() < self._down_until:
            raise Unavailable(f"indexer away ({self._down_reason}); tried again shortly")

    def _away(self, exc: grpc.RpcError) -> Unavailable:
        self._down_reason = f"{exc.code().name}: {exc.details()}"
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            self._down_until = time.monotonic() + self._cooldown
        return Unavailable(f"indexer: {self._down_reason}")
