"""Writes: a call and its utterances in one bulk request, bulk requests with retries and backoff, the storage
lifecycle's changes to a call document (UpdateStorage), and the deletion of a call's documents (DeleteCall).

Writes of new documents go through the tenant's write alias; a document that already exists is overwritten
(or partly updated) where it lives, so a re-index after a rollover never leaves a second copy in the new write
index. A document that the index refuses (mapping) becomes `FailedPrecondition`: retrying cannot help.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from callscribe.indexer import documents as docs
from callscribe.indexer.es.client import RETRIABLE_STATUSES, describe_error, error_reason, translate_errors
from callscribe.indexer.es.reader import Reader, every
from callscribe.indexer.es.schema import Schema
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.errors import FailedPrecondition, NotFound, Unavailable
from callscribe.kit.tenants import Tenant
from callscribe.v1 import indexer_pb2 as pb

log = logging.getLogger(__name__)

# A partial update conditional on the version read is tried this often when the document changes in between.
UPDATE_ATTEMPTS = 3


@dataclass(frozen=True)
class BulkOp:
    """One bulk action: index (with its source) or delete, by id."""

    op: str
    index: str
    id: str
    source: dict[str, Any] | None = None
    require_alias: bool = False


@dataclass(frozen=True)
class BulkResult:
    written: int  # index actions applied
    deleted: int  # delete actions that removed a document
    attempts: int


def ops_from_actions(actions: Iterable[dict[str, Any]]) -> list[BulkOp]:
    """`elasticsearch.helpers.bulk` actions (`_op_type`, `_index`, `_id`, `_source`) as BulkOps."""
    ops = []
    for action in actions:
        op = action.get("_op_type", "index")
        if op not in ("index", "delete"):
            raise ValueError(f"bulk action {op!r}: only index and delete are used")
        source = action.get("_source")
        if op == "index" and source is None:
            source = {k: v for k, v in action.items() if not k.startswith("_")}
        ops.append(BulkOp(op, str(action["_index"]), str(action["_id"]), source if op == "index" else None))
    return ops


def _bulk_lines(ops: Sequence[BulkOp]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for op in ops:
        meta: dict[str, Any] = {"_index": op.index, "_id": op.id}
        if op.require_alias:
            meta["require_alias"] = True
        lines.append({op.op: meta})
        if op.op == "index":
            lines.append(op.source or {})
    return lines


class Writer:
    def __init__(
        self,
        client: Elasticsearch,
        settings: IndexerSettings,
        metrics: IndexerMetrics,
        schema: Schema,
        reader: Reader,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._es = client
        self._settings = settings
        self._metrics = metrics
        self._schema = schema
        self._reader = reader
        self._sleep = sleep

    def index_call(self, tenant: Tenant, call: pb.Call) -> int:
        """Write the call and its utterances in one bulk request; returns the utterances written.

        Utterances that a re-indexed call no longer has are deleted in the same request; documents that
        exist are overwritten where they live. With refresh=wait_for everything is searchable when this
        returns. If some document cannot be written, the call document is removed again (best effort),
        so FindIndexed never reports a call whose utterances are incomplete, and Unavailable or
        FailedPrecondition is raised.
        """
        self._schema.ensure_tenant(tenant)
        calls_alias, utterances_alias = self._schema.index_names(tenant.name)
        call_index, existing = self._reader.locate(tenant.name, call.recording_id)
        ops: list[BulkOp] = []
        fresh: set[str] = set()
        for doc in docs.utterance_documents(call):
            doc_id, body = docs.split_id(doc)
            fresh.add(doc_id)
            where = existing.get(doc_id)
            ops.append(BulkOp("index", where or utterances_alias, doc_id, body, require_alias=where is None))
        stale = [BulkOp("delete", index, doc_id) for doc_id, index in sorted(existing.items()) if doc_id not in fresh]
        ops.extend(stale)
        call_target = call_index or calls_alias
        ops.append(
            BulkOp("index", call_target, call.recording_id, docs.call_document(call), require_alias=call_index is None)
        )
        try:
            self._bulk(ops, self._settings.refresh, f"indexing call {call.recording_id}")
        except Exception:
            self.withdraw_call(call_target, call.recording_id, utterances_alias, tenant.name)
            raise
        self._metrics.documents_indexed.labels("utterance").inc(len(fresh))
        self._metrics.documents_indexed.labels("call").inc()
        if stale:
            self._metrics.documents_deleted.inc(len(stale))
            log.info("call %s re-indexed: %d stale utterance(s) deleted", call.recording_id, len(stale))
        return len(fresh)

    def update_storage(self, tenant: Tenant, recording_id: str, fields: dict[str, Any], sha256: str | None) -> None:
        """Set `fields` (`documents.storage_fields`) on the tenant's call document, in the backing index that holds
        it (a read alias over several indices takes no write by id), if the document is still the version read.

        `sha256` (a move): the stored SHA-256 must be this one, else FailedPrecondition. NotFound when the call is
        not indexed; Unavailable when it kept changing while it was updated (a re-index at that moment).
        """
        self._schema.ensure_tenant(tenant)  # the tenant's indices get this version's fields before they are written
        what = f"updating the storage fields of call {recording_id}"
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            stored = self._reader.stored_call(tenant.name, recording_id)
            if stored is None:
                raise NotFound(f"no indexed call {recording_id} for tenant {tenant.name}")
            if sha256 is not None and stored.sha256 != sha256:
                raise FailedPrecondition(
                    f"call {recording_id} was indexed with SHA-256 {stored.sha256 or '(none)'}, the move says "
                    f"{sha256}: a move never changes the fingerprint of the audio; nothing was updated"
                )
            try:
                with translate_errors(what):
                    self._es.update(
                        index=stored.index,
                        id=recording_id,
                        doc=fields,
                        if_seq_no=stored.seq_no,
                        if_primary_term=stored.primary_term,
                        refresh=self._settings.refresh,
                    )
            except ApiError as exc:
                status = exc.meta.status
                if status == 409:  # written in between (a re-index): read it again
                    log.info("%s: the document changed meanwhile (attempt %d): %s", what, attempt, error_reason(exc))
                    continue
                if status == 404:
                    raise NotFound(
                        f"no indexed call {recording_id} for tenant {tenant.name} (deleted while it was updated)"
                    ) from exc
                if status == 400:
                    raise FailedPrecondition(
                        f"{what}: {stored.index} refused the fields ({error_reason(exc)}); the index mapping may "
                        'differ from this indexer\'s (see services/indexer/README.md, "Mapping changes")'
                    ) from exc
                raise
            return
        raise Unavailable(
            f"{what}: the call document changed {UPDATE_ATTEMPTS} times while it was being updated (re-indexed at "
            "that moment?); retry"
        )

    def delete_call(self, tenant: str, recording_id: str) -> tuple[bool, int]:
        """Delete the tenant's call document of `recording_id` and all its utterance documents, in every backing
        index; returns (whether the call document was there, documents deleted). With refresh=wait_for (the
        default) they are gone from search when this returns.

        The documents are found through the read aliases (a search reaches every backing index) and deleted by
        (backing index, id) in bulk requests, with the bulk retries. Not `_delete_by_query` on the alias: noida-db
        (the local stack's Elasticsearch API) deletes in one backing index of an alias only.

        The utterances go first, then the call document: a failure in between leaves a call document without
        utterances, which a retry deletes, never utterances without a call document (which `Reader.locate` would
        not find when the call is indexed again)."""
        self._schema.require_ready()
        calls_alias, utterances_alias = self._schema.index_names(tenant)
        what = f"deleting call {recording_id}"
        utterance_filter = [{"term": {"tenant": tenant}}, {"term": {"recording_id": recording_id}}]
        call_filter = [{"ids": {"values": [recording_id]}}, {"term": {"tenant": tenant}}]
        utterances = self._delete_matching(
            utterances_alias, {"bool": {"filter": utterance_filter}}, ["start_ms", "channel"], what
        )
        calls = self._delete_matching(calls_alias, {"bool": {"filter": call_filter}}, ["recording_id"], what)
        return calls > 0, utterances + calls

    def _delete_matching(self, alias: str, query: dict[str, Any], sort_fields: list[str], what: str) -> int:
        """Delete every document of `alias` (all its backing indices) matching `query`; how many were deleted."""
        with translate_errors(what):
            ops = [
                BulkOp("delete", str(hit["_index"]), str(hit["_id"]))
                for hit in every(self._es, alias, query, sort_fields, False)
            ]
        deleted = 0
        step = self._settings.bulk_max_actions
        for start in range(0, len(ops), step):
            deleted += self._bulk(ops[start : start + step], self._settings.refresh, what).deleted
        return deleted

    def withdraw_call(self, index: str, recording_id: str, utterances_alias: str, tenant: str) -> None:
        """Remove a partly written call: its call document, then its utterances (so that a call without a call
        document has no utterance documents, which `Reader.locate` relies on)."""
        try:
            self._es.delete(index=index, id=recording_id, refresh=self._settings.refresh)
        except ApiError as exc:
            if exc.meta.status != 404:
                log.error(
                    "call %s was only partly written and its call document could not be removed: %s", recording_id, exc
                )
        except TransportError as exc:
            log.error(
                "call %s was only partly written and its call document could not be removed (Elasticsearch "
                "unreachable: %s); FindIndexed may count it until it is indexed again",
                recording_id,
                exc,
            )
        flt = [{"term": {"tenant": tenant}}, {"term": {"recording_id": recording_id}}]
        try:
            self._es.delete_by_query(
                index=utterances_alias,
                query={"bool": {"filter": flt}},
                refresh=True,
                conflicts="proceed",
                ignore_unavailable=True,
            )
        except (ApiError, TransportError) as exc:
            log.error(
                "call %s was only partly written and its utterance documents could not be removed (%s); indexing it "
                "again overwrites them by id",
                recording_id,
                exc,
            )

    def bulk_documents(self, actions: Iterable[dict[str, Any]], refresh: str = "false") -> BulkResult:
        """Write `elasticsearch.helpers.bulk`-style actions with the indexer's retries and backoff, in requests of
        at most `bulk_max_actions` (what the pipeline benchmark times against `helpers.bulk`)."""
        self._schema.require_ready()
        ops = ops_from_actions(actions)
        written = deleted = attempts = 0
        step = self._settings.bulk_max_actions
        for start in range(0, len(ops), step):
            result = self._bulk(ops[start : start + step], refresh, "writing documents")
            written += result.written
            deleted += result.deleted
            attempts += result.attempts
        return BulkResult(written, deleted, attempts)

    def _bulk(self, ops: Sequence[BulkOp], refresh: str, what: str) -> BulkResult:
        """One bulk request, retried with exponential backoff (jittered) for the whole request when the cluster
        cannot be reached, and for the refused items when it is overloaded."""
        s = self._settings
        pending = list(ops)
        written = deleted = 0
        delay = s.bulk_backoff_seconds
        attempt = 0
        while True:
            attempt += 1
            failure, reason = "", ""
            started = time.perf_counter()
            try:
                response = self._es.bulk(operations=_bulk_lines(pending), refresh=refresh)
            except ApiError as exc:
                if exc.meta.status not in RETRIABLE_STATUSES:
                    self._metrics.bulk_failures.labels("refused").inc()
                    with translate_errors(what):
                        raise
                failure, reason = f"bulk request answered {exc.meta.status}: {error_reason(exc)}", "rejected"
            except TransportError as exc:
                failure, reason = f"Elasticsearch cannot be reached: {exc}", "unreachable"
            else:
                self._metrics.bulk_seconds.observe(time.perf_counter() - started)
                retry: list[BulkOp] = []
                statuses: set[str] = set()
                for op, item in zip(pending, response["items"], strict=True):
                    result = next(iter(item.values()))
                    error = result.get("error")
                    if error is None:
                        if op.op == "index":
                            written += 1
                        elif result.get("result") == "deleted":
                            deleted += 1
                        continue
                    status = int(result.get("status", 0))
                    if status in RETRIABLE_STATUSES:
                        retry.append(op)
                        statuses.add(f"{status} {describe_error(error)}")
                        continue
                    self._metrics.bulk_failures.labels("refused").inc()
                    if status == 404 and op.require_alias:
                        self._schema.forget_tenants()  # the alias is gone: set the tenant up again on the next call
                        raise Unavailable(
                            f"{what}: the write alias {op.index} does not exist (deleted while the indexer ran?); "
                            "it is created again on retry"
                        )
                    raise FailedPrecondition(
                        f"{what}: Elasticsearch refused document {op.id} in {op.index} ({status} "
                        f"{describe_error(error)}); the index mapping may differ from this indexer's (see README)"
                    )
                if not retry:
                    return BulkResult(written, deleted, attempt)
                pending = retry
                failure, reason = f"{len(retry)} document(s) refused: {', '.join(sorted(statuses))}", "rejected"
            if attempt > s.bulk_retries:
                self._metrics.bulk_failures.labels(reason).inc()
                raise Unavailable(f"{what}: {failure}; gave up after {attempt} attempt(s), retry later")
            self._metrics.bulk_retries.inc()
            pause = min(delay, s.bulk_backoff_max_seconds) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter)
            log.warning("%s: %s; attempt %d, retrying in %.2f s", what, failure, attempt, pause)
            self._sleep(pause)
            delay *= 2
