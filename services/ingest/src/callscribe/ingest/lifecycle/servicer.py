"""LifecycleService: run a tiering, audit or expiry pass now and stream what it did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import grpc

from callscribe.ingest.convert import object_ref_pb, timestamp, tombstone_pb
from callscribe.ingest.lifecycle.audit import AuditEvent, Auditor
from callscribe.ingest.lifecycle.erasure import Eraser
from callscribe.ingest.lifecycle.expiry import Expirer, ExpiryEvent
from callscribe.ingest.lifecycle.mover import MoveEvent, Mover
from callscribe.kit.errors import InvalidArgument
from callscribe.kit.ids import is_recording_id, not_a_recording_id
from callscribe.kit.interceptors import caller_actor, resolve_tenant
from callscribe.kit.names import INTEGRITIES
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import lifecycle_pb2 as pb
from callscribe.v1 import lifecycle_pb2_grpc

_OUTCOMES = {
    "MOVED": pb.TieringEvent.OUTCOME_MOVED,
    "HOT_LOCK_EXTENDED": pb.TieringEvent.OUTCOME_HOT_LOCK_EXTENDED,
    "HOT_RELEASED": pb.TieringEvent.OUTCOME_HOT_RELEASED,
    "FAILED": pb.TieringEvent.OUTCOME_FAILED,
    "BUSY": pb.TieringEvent.OUTCOME_BUSY,
}
MAX_OLDER_THAN_DAYS = 100 * 365


class LifecycleServicer(lifecycle_pb2_grpc.LifecycleServiceServicer):
    def __init__(self, mover: Mover, auditor: Auditor, expirer: Expirer, eraser: Eraser) -> None:
        self._mover = mover
        self._auditor = auditor
        self._expirer = expirer
        self._eraser = eraser

    def RunTiering(self, request: pb.RunTieringRequest, context: grpc.ServicerContext) -> Iterator[pb.TieringEvent]:
        tenant = resolve_tenant(request.tenant)
        days: float | None = None
        if request.HasField("older_than_days"):
            days = request.older_than_days
            if not 0 <= days <= MAX_OLDER_THAN_DAYS:
                raise InvalidArgument(f"older_than_days must be 0 to {MAX_OLDER_THAN_DAYS}, got {days}")
        for event in self._mover.run(tenant.name, days, request.limit):
            yield tiering_event(event)

    def RunAudit(self, request: pb.RunAuditRequest, context: grpc.ServicerContext) -> Iterator[pb.AuditEvent]:
        tenant = resolve_tenant(request.tenant)
        if request.recording_id and not is_recording_id(request.recording_id):
            raise InvalidArgument(not_a_recording_id(request.recording_id))
        for event in self._auditor.run(tenant.name, request.recording_id):
            yield audit_event(event)

    def RunExpiry(self, request: pb.RunExpiryRequest, context: grpc.ServicerContext) -> Iterator[pb.ExpiryEvent]:
        tenant = resolve_tenant(request.tenant)
        for event in self._expirer.run(tenant.name):
            yield pb.ExpiryEvent(
                recording_id=event.recording_id,
                tenant=event.tenant,
                tombstone=tombstone_pb(event.tombstone) if event.tombstone else None,
                detail=event.detail,
            )


    def EraseRecording(self, request: pb.EraseRecordingRequest, context: grpc.ServicerContext) -> pb.ErasureReceipt:
        tenant = resolve_tenant(request.tenant)
        if not is_recording_id(request.recording_id):
            raise InvalidArgument(not_a_recording_id(request.recording_id))
        return receipt_pb(self._eraser.erase(tenant, request.recording_id, request.reason, caller_actor().as_dict()))

    def EraseCustomer(
        self, request: pb.EraseCustomerRequest, context: grpc.ServicerContext
    ) -> pb.EraseCustomerResponse:
        tenant = resolve_tenant(request.tenant)
        receipts = self._eraser.erase_customer(
            tenant, request.customer_id, request.reason, caller_actor().as_dict()
        )
        return pb.EraseCustomerResponse(receipts=[receipt_pb(r) for r in receipts])


def receipt_pb(receipt: dict) -> pb.ErasureReceipt:
    return pb.ErasureReceipt(
        tenant=receipt["tenant"],
        recording_id=receipt["recording_id"],
        sha256=receipt["sha256"],
        stored_sha256=receipt["stored_sha256"],
        key_ids=receipt["key_ids"],
        requested_by=receipt["requested_by"],
        erased_at=timestamp(datetime.fromisoformat(receipt["erased_at"])),
        reason=receipt["reason"],
        documents_deleted=receipt["documents_deleted"],
        receipt=receipt.get("receipt", ""),
    )


def audit_event(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        recording_id=event.recording_id,
        tenant=event.tenant,
        integrity=INTEGRITIES.get(event.integrity, c.INTEGRITY_UNSPECIFIED),
        detail=event.detail,
        bytes_hashed=event.bytes_hashed,
        verified_at=timestamp(event.verified_at),
    )


__all__ = ["ExpiryEvent", "LifecycleServicer", "audit_event", "tiering_event"]


def tiering_event(event: MoveEvent) -> pb.TieringEvent:
    return pb.TieringEvent(
        recording_id=event.recording_id,
        tenant=event.tenant,
        outcome=_OUTCOMES[event.outcome],
        detail=event.detail,
        object=object_ref_pb(event.object) if event.object is not None else None,
        size_bytes=event.size_bytes,
        retain_until=timestamp(event.retain_until),
    )
