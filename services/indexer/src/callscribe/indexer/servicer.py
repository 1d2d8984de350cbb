"""gRPC entry point of the indexer: checks requests, scopes them to the caller's tenant, calls the store.

Tenant wall: every method works in the tenant of the caller's token (`resolve_tenant`); a request
naming another tenant is refused with PERMISSION_DENIED, and the store only ever reads and writes
that tenant's indices, with a tenant filter on every query besides. The writes (IndexCall, UpdateStorage,
DeleteCall) are for the pipeline's service account only, which acts for the tenant it names in its metadata.
Who may call what beyond that is the role table's (`callscribe.kit.roles`), checked before a method runs.

Every export is recorded in the tenant's access trail (`callscribe.storage.trail`) before its first call is
sent: no trail (no INDEXER_S3_ENDPOINT), or an entry that cannot be written, and the export does not start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import grpc
from google.protobuf.json_format import MessageToDict

from callscribe.indexer import documents as docs
from callscribe.indexer import query as qb
from callscribe.indexer.enrich import Enricher
from callscribe.indexer.es.reader import MAX_FIND_IDS
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.pii import redact
from callscribe.indexer.pii.calls import UnredactedSink, redact_call
from callscribe.indexer.settings import IndexerSettings
from callscribe.indexer.store import EsStore
from callscribe.indexer.validation import check_call, check_preview, check_recording_id, check_update_storage
from callscribe.kit.errors import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable
from callscribe.kit.interceptors import caller_actor, require_service_account, resolve_tenant
from callscribe.kit.roles import ADMIN, SUPERVISOR
from callscribe.kit.tenants import Tenant
from callscribe.storage.trail import Trail
from callscribe.v1 import indexer_pb2 as pb
from callscribe.v1 import indexer_pb2_grpc

UNREDACTED_READERS = frozenset({SUPERVISOR, ADMIN})

log = logging.getLogger(__name__)


class IndexerServicer(indexer_pb2_grpc.IndexerServiceServicer):
    def __init__(
        self,
        store: EsStore,
        enricher: Enricher,
        settings: IndexerSettings,
        metrics: IndexerMetrics,
        trail: Trail | None = None,
        unredacted_sink: UnredactedSink | None = None,
    ) -> None:
        self._store = store
        self._enrich = enricher
        self._settings = settings
        self._metrics = metrics
        self._trail = trail
        # Where the unredacted call of a tenant with keep_unredacted goes (encrypted storage); none yet.
        self._unredacted_sink = unredacted_sink
        self._warned_unkept: set[str] = set()

    def IndexCall(self, request: pb.IndexCallRequest, context: grpc.ServicerContext) -> pb.IndexCallResponse:
        require_service_account("IndexCall")  # only the pipeline writes the index; see README "Access"
        if not request.HasField("call"):
            raise InvalidArgument("call is required")
        call = pb.Call()
        call.CopyFrom(request.call)
        tenant = resolve_tenant(call.tenant)
        resolve_tenant(call.metadata.tenant)  # a call may not name another tenant in its metadata either
        call.tenant = call.metadata.tenant = tenant.name
        check_call(call)
        # Computed here, never taken from the caller.
        call.ClearField("analytics")
        for utterance in call.utterances:
            utterance.normalized_text = ""
            utterance.sentiment = 0.0
        started = time.perf_counter()
        # The upload's script, else the tenant's, else the indexer's default.
        self._enrich(call, call.metadata.zh_script or tenant.zh_script or self._settings.zh_script)
        self._metrics.index_call_seconds.labels("enrich").observe(time.perf_counter() - started)
        started = time.perf_counter()
        # After the analytics, which read the unredacted text; before anything is written.
        self._redact(tenant, call, request.key_id)
        self._metrics.index_call_seconds.labels("redact").observe(time.perf_counter() - started)
        call.indexed_at.GetCurrentTime()
        call.indexed_at.nanos -= call.indexed_at.nanos % 1_000_000  # Elasticsearch dates keep milliseconds
        started = time.perf_counter()
        written = self._store.index_call(tenant, call)
        self._metrics.index_call_seconds.labels("write").observe(time.perf_counter() - started)
        return pb.IndexCallResponse(recording_id=call.recording_id, utterances_indexed=written)

    def _redact(self, tenant: Tenant, call: pb.Call, key_id: str) -> None:
        """Mask `call` under the tenant's policy; hand the unredacted call to the sink where the policy keeps it."""
        redaction = redact_call(call, tenant.redaction)
        for category, count in redaction.masked.items():
            self._metrics.pii_masked.labels(category).inc(count)
        if redaction.unredacted is None:
            return
        if self._unredacted_sink is not None:
            self._unredacted_sink.put(tenant, redaction.unredacted, key_id)
        elif tenant.name not in self._warned_unkept:
            self._warned_unkept.add(tenant.name)
            log.warning(
                "tenant %s keeps unredacted transcripts (redaction.keep_unredacted), but this indexer has no "
                "encrypted store for them yet: only the redacted transcript is indexed",
                tenant.name,
            )

    def PreviewRedaction(
        self, request: pb.PreviewRedactionRequest, context: grpc.ServicerContext
    ) -> pb.PreviewRedactionResponse:
        tenant = resolve_tenant(request.tenant)
        language = check_preview(request)
        policy = tenant.redaction
        result = redact(request.text, language, policy)
        return pb.PreviewRedactionResponse(
            text=result.text,
            masked=[pb.RedactedSpan(category=m.category, start=m.start, end=m.end, mask=m.mask) for m in result.masked],
            kept=[pb.RedactedSpan(category=k.category, start=k.start, end=k.end) for k in result.kept],
            categories=list(policy.categories),
            keep_unredacted=policy.keep_unredacted,
            keep_last=policy.keep_last,
        )

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        tenant = resolve_tenant(request.tenant)
        q = qb.parse_search(request, tenant.name)
        size = qb.page_size(
            request.page_size, self._settings.search_default_page_size, self._settings.search_max_page_size
        )
        return self._store.search(q, size, request.page_token)

    def GetCall(self, request: pb.GetCallRequest, context: grpc.ServicerContext) -> pb.Call:
        tenant = resolve_tenant(request.tenant)
        check_recording_id(request.recording_id)
        if request.unredacted:
            return self._unredacted(tenant, request.recording_id)
        return self._store.get_call(tenant.name, request.recording_id)

    def _unredacted(self, tenant: Tenant, rec_id: str) -> pb.Call:
        """The call before PII redaction: supervisors and admins, each read in the access trail first."""
        actor = caller_actor()
        if actor.role not in UNREDACTED_READERS:
            raise PermissionDenied(
                f"the unredacted transcript is for roles {', '.join(sorted(UNREDACTED_READERS))}; your token "
                f"({actor.name}) has role {actor.role!r}: read the redacted call instead"
            )
        if self._unredacted_sink is None:
            raise FailedPrecondition("this indexer keeps no unredacted transcripts (encryption at rest is off)")
        self._store.get_call(tenant.name, rec_id)  # NOT_FOUND for a call that is not indexed (or was erased)
        if self._trail is None:
            raise FailedPrecondition("reading an unredacted transcript is recorded in the access trail: none here")
        try:
            self._trail.append(tenant, actor.as_dict(), "transcript.read_unredacted", [rec_id], {})
        except DomainError as exc:
            raise Unavailable(f"not read: its access-trail entry could not be written ({exc.message})") from exc
        call = self._unredacted_sink.get(tenant.name, rec_id)
        if call is None:
            raise FailedPrecondition(
                f"no unredacted transcript was kept for {rec_id}: tenant {tenant.name}'s redaction policy did not "
                "keep one when it was indexed"
            )
        return call

    def ExportCalls(self, request: pb.ExportCallsRequest, context: grpc.ServicerContext) -> Iterator[pb.Call]:
        tenant = resolve_tenant(request.filter.tenant)
        if request.filter.page_token:
            raise InvalidArgument("ExportCalls streams every matching call: leave filter.page_token empty")
        q = qb.parse_search(request.filter, tenant.name)
        if self._trail is None:
            raise FailedPrecondition(
                "exports are recorded in the access trail, and this indexer has none configured "
                "(INDEXER_S3_ENDPOINT unset): ask the operator"
            )
        details = {"filter": MessageToDict(request.filter, preserving_proto_field_name=True)}
        try:
            self._trail.append(tenant, caller_actor().as_dict(), "export", [], details)
        except DomainError as exc:
            raise Unavailable(
                f"the export was not started: its access-trail entry could not be written ({exc.message})"
            ) from exc
        exported = 0
        for call in self._store.export(q):
            if not context.is_active():
                log.info("export for %s stopped by the client after %d call(s)", tenant.name, exported)
                return
            exported += 1
            yield call

    def FindIndexed(self, request: pb.FindIndexedRequest, context: grpc.ServicerContext) -> pb.FindIndexedResponse:
        tenant = resolve_tenant(request.tenant)
        if len(request.recording_ids) > MAX_FIND_IDS:
            raise InvalidArgument(f"{len(request.recording_ids)} recording ids; at most {MAX_FIND_IDS} per request")
        for rid in request.recording_ids:
            check_recording_id(rid, "recording_ids[]")
        return pb.FindIndexedResponse(recording_ids=self._store.find_indexed(tenant.name, list(request.recording_ids)))

    def UpdateStorage(
        self, request: pb.UpdateStorageRequest, context: grpc.ServicerContext
    ) -> pb.UpdateStorageResponse:
        require_service_account("UpdateStorage")  # only the pipeline writes the index; see README "Access"
        tenant = resolve_tenant(request.tenant)
        check_update_storage(request)
        moved = request.HasField("object")
        sha256 = request.object.sha256 if moved else None
        self._store.update_storage(tenant, request.recording_id, docs.storage_fields(request), sha256)
        if moved:
            self._metrics.storage_updates.labels("moved").inc()
        if request.integrity:
            self._metrics.storage_updates.labels("audited").inc()
        return pb.UpdateStorageResponse()

    def DeleteCall(self, request: pb.DeleteCallRequest, context: grpc.ServicerContext) -> pb.DeleteCallResponse:
        require_service_account("DeleteCall")  # retention expiry; see README "Access"
        tenant = resolve_tenant(request.tenant)
        check_recording_id(request.recording_id)
        deleted, documents = self._store.delete_call(tenant.name, request.recording_id)
        if deleted:
            self._metrics.calls_deleted.inc()
        if deleted:
            log.info("call %s of tenant %s deleted: %d document(s)", request.recording_id, tenant.name, documents)
        else:
            log.info(
                "DeleteCall %s of tenant %s: no call document (%d other document(s) of it deleted)",
                request.recording_id,
                tenant.name,
                documents,
            )
        return pb.DeleteCallResponse(deleted=deleted, documents=documents)
