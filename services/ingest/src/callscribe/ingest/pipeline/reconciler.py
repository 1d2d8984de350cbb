"""Reconciliation: queue archived recordings that have no indexed call and no live job.

The one reconciler of the ingest service (it runs in the pipeline worker): it covers an upload whose
enqueue never reached Redis, Redis losing its data, and a job lost between the two.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

from callscribe.ingest.jobs import RedisJobs
from callscribe.ingest.model import Job
from callscribe.ingest.pipeline.worker import WorkerMetrics
from callscribe.ingest.s3store import S3RecordingStore
from callscribe.kit.errors import Unavailable
from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.v1 import indexer_pb2, indexer_pb2_grpc

log = logging.getLogger("callscribe.ingest.worker")

IN_PROGRESS = ("queued", "vad", "asr", "indexing")


class TenantRefused(Exception):
    """The services refuse to act for this tenant (not in their tenants file)."""


class Reconciler:
    """Queues archived recordings that have no indexed call and no live job."""

    def __init__(
        self,
        store: S3RecordingStore,
        queue: RedisJobs,
        indexer: indexer_pb2_grpc.IndexerServiceStub,
        token: str,
        stale_after_s: float,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._indexer = indexer
        self._token = token
        self._stale_after_s = stale_after_s
        self._metrics = metrics

    def run_once(self, batch: int = 500) -> int:
        """One pass over the archive; a tenant the services refuse (e.g. removed from the tenants file) is
        logged and skipped, and never holds up the others."""
        by_tenant: dict[str, list[str]] = {}
        refused: dict[str, str] = {}
        queued = 0
        for tenant, rec_id in self._store.list_all():
            if tenant in refused:
                continue
            ids = by_tenant.setdefault(tenant, [])
            ids.append(rec_id)
            if len(ids) == batch:
                queued += self._check_or_skip(tenant, ids, refused)
                by_tenant[tenant] = []
        for tenant, ids in by_tenant.items():
            if ids and tenant not in refused:
                queued += self._check_or_skip(tenant, ids, refused)
        for tenant, why in refused.items():
            log.warning("reconciliation skipped tenant %s: %s", tenant, why)
        return queued

    def _check_or_skip(self, tenant: str, ids: list[str], refused: dict[str, str]) -> int:
        try:
            return self._check(tenant, ids)
        except TenantRefused as exc:
            refused[tenant] = str(exc)
            return 0

    def _check(self, tenant: str, ids: list[str]) -> int:
        metadata = (("authorization", f"Bearer {self._token}"), (ACTING_TENANT_HEADER, tenant))
        try:
            reply = self._indexer.FindIndexed(
                indexer_pb2.FindIndexedRequest(tenant=tenant, recording_ids=ids), metadata=metadata, timeout=30
            )
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                raise TenantRefused(f"{exc.code().name}: {exc.details()}") from exc
            raise Unavailable(f"indexer unreachable: {exc.code().name}: {exc.details()}") from exc
        indexed = set(reply.recording_ids)
        states = self._queue.states(ids)
        for rec_id in indexed:
            if rec_id not in states:  # Redis lost its data: the index says the work is done
                self._queue.set_state(rec_id, "done", "indexed (state restored by reconciliation)")
        missing = [rec_id for rec_id in ids if rec_id not in indexed]
        if not missing:
            return 0
        now = time.time()
        queued = 0
        for rec_id in missing:
            fields = states.get(rec_id)
            if fields:
                state = fields.get("state", "")
                if state in ("failed", "unanalysable"):
                    continue  # a dead letter (requeued by a person) or audio no service can analyse: final
                if state in IN_PROGRESS and now - float(fields.get("updated_at") or 0) < self._stale_after_s:
                    continue  # a live job
            record = self._store.find(tenant, rec_id)
            if record is None or record.object is None or record.erased:
                continue  # an erased recording is never processed again
            obj = record.object
            self._queue.requeue(Job(rec_id, tenant, obj.bucket, obj.key, obj.version_id, obj.sha256))
            queued += 1
            log.info("reconciliation queued %s/%s (state %s)", tenant, rec_id, (fields or {}).get("state", "none"))
        if self._metrics is not None:
            self._metrics.reconciled.inc(queued)
        return queued


def run_reconciler(reconciler: Reconciler, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            queued = reconciler.run_once()
        except Unavailable as exc:
            log.warning("reconciliation postponed: %s", exc.message)
            continue
        if queued:
            log.info("reconciliation queued %d recording(s)", queued)
