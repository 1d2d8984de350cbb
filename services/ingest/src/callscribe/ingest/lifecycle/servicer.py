"""LifecycleService: run a tiering, audit or expiry pass now and stream what it did."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from callscribe.ingest.convert import object_ref_pb, timestamp
from callscribe.ingest.lifecycle.mover import MoveEvent, Mover
from callscribe.kit.errors import InvalidArgument
from callscribe.kit.interceptors import resolve_tenant
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
    def __init__(self, mover: Mover) -> None:
        self._mover = mover

    def RunTiering(self, request: pb.RunTieringRequest, context: grpc.ServicerContext) -> Iterator[pb.TieringEvent]:
        tenant = resolve_tenant(request.tenant)
        days: float | None = None
        if request.HasField("older_than_days"):
            days = request.older_than_days
            if not 0 <= days <= MAX_OLDER_THAN_DAYS:
                raise InvalidArgument(f"older_than_days must be 0 to {MAX_OLDER_THAN_DAYS}, got {days}")
        for event in self._mover.run(tenant.name, days, request.limit):
            yield tiering_event(event)


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
