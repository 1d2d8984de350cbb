"""Elasticsearch: templates, per-tenant indices and lifecycle policies, bulk writes, search, reads.

Every failure to reach the cluster (refused connection, timeout, 429/5xx after retries, refused
credentials) becomes the kit's `Unavailable`, so the pipeline worker retries the call later. A document
that the index refuses (mapping) becomes `FailedPrecondition`: retrying cannot help.

Layout per tenant and kind (calls, utterances): the write alias `<prefix>-<kind>-<tenant>` over backing
indices `<alias>-000001`, ... (see `mappings.py`). Writes of new documents go through the alias; a
document that already exists is overwritten where it lives, so a re-index after a rollover never
leaves a second copy in the new write index.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from elastic_transport import HttpHeaders
from elasticsearch import ApiError, Elasticsearch, TransportError, UnsupportedProductError
from elasticsearch import __versionstr__ as client_version

from callscribe.indexer import documents as docs
from callscribe.indexer import query as qb
from callscribe.indexer.mappings import CALLS, KINDS, TRANSCRIPT_FIELDS, UTTERANCES, index_template, lifecycle_policy
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from callscribe.kit.tenants import Tenant
from callscribe.v1 import indexer_pb2 as pb

log = logging.getLogger(__name__)

CLIENT_MAJOR = int(client_version.split(".")[0])
# Bulk item statuses worth sending again: overloaded (429), and a node or shard not there right now.
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Tenant names become part of index names: lowercase, and never ending like a rollover suffix.
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_ROLLOVER_SUFFIX_RE = re.compile(r"-\d+$")
_SCROLL_PAGE = 5000  # documents per page when every match is read (utterances of calls, existing ids)
MAX_FIND_IDS = 1000


def make_client(settings: IndexerSettings) -> Elasticsearch:
    """The Elasticsearch client of the settings (auth, TLS, timeouts, one connection per handler thread)."""
    options: dict[str, Any] = {
        "request_timeout": settings.request_timeout_seconds,
        "max_retries": 2,
        "retry_on_timeout": False,  # a bulk may have been applied; our own loop decides
        "connections_per_node": settings.max_workers + 4,
        "verify_certs": settings.elasticsearch_verify_certs,
    }
    if settings.elasticsearch_username is not None and settings.elasticsearch_password is not None:
        options["basic_auth"] = (settings.elasticsearch_username, settings.elasticsearch_password.get_secret_value())
    if settings.elasticsearch_api_key is not None:
        options["api_key"] = settings.elasticsearch_api_key.get_secret_value()
    if settings.elasticsearch_ca_cert is not None:
        options["ca_certs"] = str(settings.elasticsearch_ca_cert)
    return Elasticsearch(settings.elasticsearch_urls, **options)


class _CompatPin:
    """Makes the client ask for the REST API of another major version (`compatible-with=N`).

    The 9.x client always asks for `compatible-with=9`, which an Elasticsearch 8 cluster refuses; both
    8 and 9 clusters accept `compatible-with=8`. Installed on the client's transport, so every request
    of every API (and of `helpers.bulk`) goes through it.
    """

    def __init__(self, client: Elasticsearch, major: int) -> None:
        self.major = major
        transport = client.transport
        self._original = transport.perform_request
        transport.perform_request = self  # type: ignore[method-assign]

    def __call__(self, method: str, target: str, *, headers: Any = None, **kwargs: Any) -> Any:
        if headers is not None and self.major != CLIENT_MAJOR:
            pinned = HttpHeaders(headers)
            for name in ("accept", "content-type"):
                value = pinned.get(name)
                if value and f"compatible-with={CLIENT_MAJOR}" in value:
                    pinned[name] = value.replace(f"compatible-with={CLIENT_MAJOR}", f"compatible-with={self.major}")
            headers = pinned
        return self._original(method, target, headers=headers, **kwargs)


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Cluster trouble -> Unavailable (the caller retries); anything else propagates."""
    try:
        yield
    except UnsupportedProductError as exc:
        raise Unavailable(f"the server at the Elasticsearch URL is not Elasticsearch ({exc}) while {what}") from exc
    except ApiError as exc:
        status = exc.meta.status
        if status in (401, 403):
            raise Unavailable(
                f"Elasticsearch refused the indexer's credentials ({status}) while {what}: {exc}; "
                "check INDEXER_ELASTICSEARCH_USERNAME/PASSWORD or API_KEY and the user's privileges"
            ) from exc
        if status in RETRIABLE_STATUSES:
            raise Unavailable(f"Elasticsearch is overloaded or unavailable ({status}) while {what}: {exc}") from exc
        raise
    except TransportError as exc:  # connection refused, timeout, TLS: the cluster cannot be reached
        raise Unavailable(f"Elasticsearch cannot be reached while {what}: {exc}; retry later") from exc


def check_tenant_name(name: str) -> None:
    if not _TENANT_RE.match(name) or _ROLLOVER_SUFFIX_RE.search(name):
        raise FailedPrecondition(
            f"tenant name {name!r} cannot be part of an Elasticsearch index name: use lowercase letters, digits, "
            "'_' and '-', not ending in '-<digits>' (index names of tenants are <prefix>-calls-<tenant>)"
        )


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


class EsStore:
    """The indexer's Elasticsearch: thread-safe, shared by every handler thread."""

    def __init__(
        self,
        client: Elasticsearch,
        settings: IndexerSettings,
        metrics: IndexerMetrics,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._es = client
        self._settings = settings
        self._prefix = settings.index_prefix
        self._metrics = metrics
        self._sleep = sleep
        self._lock = threading.Lock()
        self._ready = False
        self._pin: _CompatPin | None = None
        self.ilm_supported = False
        self.server_version = ""
        self._tenants: dict[str, int] = {}  # tenant -> retention_days its policy and indices were set up with
        self._tenant_lock = threading.Lock()

    # ------------------------------------------------------------------ names

    def alias(self, kind: str, tenant: str) -> str:
        check_tenant_name(tenant)
        return f"{self._prefix}-{kind}-{tenant}"

    def policy_name(self, tenant: str) -> str:
        return f"{self._prefix}-retention-{tenant}"

    def index_names(self, tenant: str) -> tuple[str, str]:
        """(calls alias, utterances alias) of a tenant."""
        return self.alias(CALLS, tenant), self.alias(UTTERANCES, tenant)

    @property
    def client(self) -> Elasticsearch:
        return self._es

    # ------------------------------------------------------------------ start

    @property
    def ready(self) -> bool:
        return self._ready

    def connect(self) -> None:
        """Reach the cluster, agree on the API version, detect ILM, put the index templates.

        Raises Unavailable while the cluster cannot be reached; safe to call again (and from several threads).
        """
        with self._lock:
            if self._ready:
                return
            with translate_errors("connecting"):
                self._agree_version()
                self.ilm_supported = self._detect_ilm()
                self._put_templates()
            self._ready = True
            self._metrics.elasticsearch_ready.set(1)
            self._metrics.ilm_supported.set(1 if self.ilm_supported else 0)
            log.info(
                "Elasticsearch %s ready at %s (API compatible-with=%d, ILM %s, templates %s-{calls,utterances})",
                self.server_version,
                self._settings.elasticsearch_url,
                self._pin.major if self._pin else CLIENT_MAJOR,
                "managed" if self.ilm_supported else "not managed",
                self._prefix,
            )

    def _require_ready(self) -> None:
        if not self._ready:
            self.connect()

    def _agree_version(self) -> None:
        if self._pin is None:
            # Both 8 and 9 clusters answer a client that asks for the 8 API; ask the version that way.
            self._pin = _CompatPin(self._es, 8 if CLIENT_MAJOR > 8 else CLIENT_MAJOR)
        info = self._es.info()
        self.server_version = str(info["version"]["number"])
        major = int(self.server_version.split(".")[0])
        wanted = self._settings.elasticsearch_api_compat or major
        if major < 8:
            raise Unavailable(f"Elasticsearch {self.server_version} is too old: callscribe needs Elasticsearch 8 or 9")
        self._pin.major = min(wanted, CLIENT_MAJOR)

    def _detect_ilm(self) -> bool:
        url = self._settings.elasticsearch_url
        if not self._settings.ilm_enabled:
            log.warning(
                "ILM management is off (INDEXER_ILM_ENABLED=false): tenant indices get no lifecycle policy from "
                "callscribe; warm and delete (retention) must be managed outside it"
            )
            return False
        try:
            self._es.ilm.get_status()
        except ApiError as exc:
            status = exc.meta.status
            if status in (400, 404, 405, 410, 501):
                log.warning(
                    "Elasticsearch at %s does not support ILM (GET _ilm/status answered %d: %s): tenant indices "
                    "get NO lifecycle policy, so nothing moves to warm after %d days and nothing is deleted after "
                    "a tenant's retention_days; manage retention outside callscribe or use a cluster with ILM",
                    url,
                    status,
                    _reason(exc),
                    self._settings.ilm_warm_after_days,
                )
                return False
            if status in (401, 403):
                log.warning(
                    "the indexer's Elasticsearch user may not manage ILM (%d: %s): tenant indices get NO lifecycle "
                    "policy and retention is not enforced; grant the manage_ilm cluster privilege",
                    status,
                    _reason(exc),
                )
                return False
            raise
        return True

    def _put_templates(self) -> None:
        s = self._settings
        for kind in KINDS:
            body = index_template(
                self._prefix,
                kind,
                shards=s.number_of_shards,
                replicas=s.number_of_replicas,
                refresh_interval=s.refresh_interval,
            )
            self._es.indices.put_index_template(name=f"{self._prefix}-{kind}", body=body)

    # ------------------------------------------------------------------ tenants

    def ensure_tenant(self, tenant: Tenant) -> None:
        """The tenant's lifecycle policy and write aliases, created on first use (idempotent, race-safe)."""
        if self._tenants.get(tenant.name) == tenant.retention_days:
            return
        check_tenant_name(tenant.name)
        self._require_ready()
        with self._tenant_lock, translate_errors(f"preparing the indices of tenant {tenant.name}"):
            if self._tenants.get(tenant.name) == tenant.retention_days:
                return
            s = self._settings
            index_settings: dict[str, Any] = {}
            if self.ilm_supported:
                policy = self.policy_name(tenant.name)
                self._es.ilm.put_lifecycle(
                    name=policy,
                    policy=lifecycle_policy(
                        retention_days=tenant.retention_days,
                        warm_after_days=s.ilm_warm_after_days,
                        rollover_max_age_days=s.ilm_rollover_max_age_days,
                        rollover_max_primary_shard_gb=s.ilm_rollover_max_primary_shard_gb,
                    ),
                )
                index_settings["index.lifecycle.name"] = policy
            for kind in KINDS:
                self._ensure_alias(self.alias(kind, tenant.name), index_settings)
            self._tenants[tenant.name] = tenant.retention_days

    def _ensure_alias(self, alias: str, index_settings: dict[str, Any]) -> None:
        if self._es.indices.exists_alias(name=alias):
            return
        if self._es.indices.exists(index=alias):
            raise FailedPrecondition(
                f"{alias} is a plain index, not the write alias the indexer expects; reindex it into {alias}-000001 "
                f"with the write alias {alias} (see services/indexer/README.md)"
            )
        settings = dict(index_settings)
        if self.ilm_supported:
            settings["index.lifecycle.rollover_alias"] = alias
        create: dict[str, Any] = {"index": f"{alias}-000001", "aliases": {alias: {"is_write_index": True}}}
        if settings:
            create["settings"] = settings
        try:
            self._es.indices.create(**create)
            log.info("created index %s-000001 behind write alias %s", alias, alias)
        except ApiError as exc:
            if _error_type(exc) != "resource_already_exists_exception":
                raise
            # Another indexer created it first: the alias must be there now.

    # ------------------------------------------------------------------ writes

    def index_call(self, tenant: Tenant, call: pb.Call) -> int:
        """Write the call and its utterances in one bulk request; returns the utterances written.

        Utterances that a re-indexed call no longer has are deleted in the same request; documents that
        exist are overwritten where they live. With refresh=wait_for everything is searchable when this
        returns. If some document cannot be written, the call document is removed again (best effort),
        so FindIndexed never reports a call whose utterances are incomplete, and Unavailable or
        FailedPrecondition is raised.
        """
        self.ensure_tenant(tenant)
        calls_alias, utterances_alias = self.index_names(tenant.name)
        call_index, existing = self._locate(tenant.name, call.recording_id)
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
            self._withdraw_call(call_target, call.recording_id, utterances_alias, tenant.name)
            raise
        self._metrics.documents_indexed.labels("utterance").inc(len(fresh))
        self._metrics.documents_indexed.labels("call").inc()
        if stale:
            self._metrics.documents_deleted.inc(len(stale))
            log.info("call %s re-indexed: %d stale utterance(s) deleted", call.recording_id, len(stale))
        return len(fresh)

    def _withdraw_call(self, index: str, recording_id: str, utterances_alias: str, tenant: str) -> None:
        """Remove a partly written call: its call document, then its utterances (so that a call without a call
        document has no utterance documents, which `_locate` relies on)."""
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

    def _locate(self, tenant: str, recording_id: str) -> tuple[str | None, dict[str, str]]:
        """Where the call's documents are now: (backing index of the call, {utterance id: backing index}).

        A call that has no call document has no utterance documents either (a partly written call is
        withdrawn with its utterances, see `_withdraw_call`), so a first indexing costs one cheap ids
        lookup; only a re-index reads the utterances it may have to overwrite in place or delete.
        """
        calls_alias, utterances_alias = self.index_names(tenant)
        flt = [{"term": {"tenant": tenant}}, {"term": {"recording_id": recording_id}}]
        utterance_query = {"bool": {"filter": flt}}
        with translate_errors(f"looking up call {recording_id}"):
            found = self._es.search(
                index=calls_alias,
                query={"ids": {"values": [recording_id]}},
                source=False,
                size=1,
                ignore_unavailable=True,
            )
            hits = found["hits"]["hits"]
            call_index = str(hits[0]["_index"]) if hits else None
            if call_index is None:
                return None, {}
            hits = self._every(utterances_alias, utterance_query, ["start_ms", "channel"], False)
            existing = {str(hit["_id"]): str(hit["_index"]) for hit in hits}
        return call_index, existing

    def bulk_documents(self, actions: Iterable[dict[str, Any]], refresh: str = "false") -> BulkResult:
        """Write `elasticsearch.helpers.bulk`-style actions with the indexer's retries and backoff, in requests of
        at most `bulk_max_actions` (what the pipeline benchmark times against `helpers.bulk`)."""
        self._require_ready()
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
                failure, reason = f"bulk request answered {exc.meta.status}: {_reason(exc)}", "rejected"
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
                        statuses.add(f"{status} {_item_reason(error)}")
                        continue
                    self._metrics.bulk_failures.labels("refused").inc()
                    if status == 404 and op.require_alias:
                        self._tenants.clear()  # the alias is gone: set the tenant up again on the next call
                        raise Unavailable(
                            f"{what}: the write alias {op.index} does not exist (deleted while the indexer ran?); "
                            "it is created again on retry"
                        )
                    raise FailedPrecondition(
                        f"{what}: Elasticsearch refused document {op.id} in {op.index} ({status} "
                        f"{_item_reason(error)}); the index mapping may differ from this indexer's (see README)"
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

    # ------------------------------------------------------------------ reads

    def _every(
        self,
        index: str,
        query: dict[str, Any],
        sort_fields: list[str],
        source: bool | dict[str, Any],
        after: list[Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every hit of `query` (after `after`), page by page: search_after on `sort_fields`, which must identify
        a document."""
        sort = [{name: "asc"} for name in sort_fields]
        while True:
            page = self._es.search(
                index=index,
                query=query,
                sort=sort,
                size=_SCROLL_PAGE,
                source=source,
                search_after=after,
                ignore_unavailable=True,
                track_total_hits=False,
            )
            hits = page["hits"]["hits"]
            yield from hits
            if len(hits) < _SCROLL_PAGE:
                return
            after = hits[-1]["sort"]

    def _utterance_docs(self, tenant: str, recording_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {rid: [] for rid in recording_ids}
        if not recording_ids:
            return out
        flt = [{"term": {"tenant": tenant}}, {"terms": {"recording_id": list(recording_ids)}}]
        sort = ["recording_id", "start_ms", "channel"]
        for hit in self._every(self.alias(UTTERANCES, tenant), {"bool": {"filter": flt}}, sort, True):
            source = hit["_source"]
            out.setdefault(str(source.get("recording_id")), []).append(source)
        return out

    def get_call(self, tenant: str, recording_id: str) -> pb.Call:
        self._require_ready()
        started = time.perf_counter()
        with translate_errors(f"reading call {recording_id}"):
            found = self._es.search(
                index=self.alias(CALLS, tenant),
                query={"bool": {"filter": [{"ids": {"values": [recording_id]}}, {"term": {"tenant": tenant}}]}},
                source_excludes=list(TRANSCRIPT_FIELDS),
                size=1,
                ignore_unavailable=True,
            )
            hits = found["hits"]["hits"]
            if not hits:
                raise NotFound(f"no indexed call {recording_id} for tenant {tenant}")
            utterances = self._utterance_docs(tenant, [recording_id])[recording_id]
        self._metrics.search_seconds.labels("get").observe(time.perf_counter() - started)
        return docs.call_from_docs(hits[0]["_source"], utterances)

    def find_indexed(self, tenant: str, recording_ids: Sequence[str]) -> list[str]:
        """The ids (of `recording_ids`, in their order) that have an indexed call."""
        self._require_ready()
        wanted = list(dict.fromkeys(recording_ids))
        if not wanted:
            return []
        if len(wanted) > MAX_FIND_IDS:
            raise InvalidArgument(f"{len(wanted)} recording ids asked; at most {MAX_FIND_IDS} per request")
        started = time.perf_counter()
        with translate_errors("looking up indexed calls"):
            found = self._es.search(
                index=self.alias(CALLS, tenant),
                query={"bool": {"filter": [{"ids": {"values": wanted}}, {"term": {"tenant": tenant}}]}},
                source=False,
                size=len(wanted),
                ignore_unavailable=True,
            )
        self._metrics.search_seconds.labels("find_indexed").observe(time.perf_counter() - started)
        present = {str(hit["_id"]) for hit in found["hits"]["hits"]}
        return [rid for rid in wanted if rid in present]

    def search(self, q: qb.SearchQuery, size: int, page_token: str) -> pb.SearchResponse:
        """One page of calls matching `q`, best first (free text) or newest first, with matching utterances."""
        self._require_ready()
        sort = qb.call_sort(q, by_score=True)
        after = qb.decode_token(q, page_token, len(sort))
        started = time.perf_counter()
        with translate_errors("searching"):
            found = self._es.search(
                index=self.alias(CALLS, q.tenant),
                query=qb.call_query(q),
                sort=sort,
                size=size + 1,
                search_after=after,
                source_excludes=list(TRANSCRIPT_FIELDS),
                track_total_hits=True,
                ignore_unavailable=True,
            )
            hits = found["hits"]["hits"]
            more = len(hits) > size
            hits = hits[:size]
            matches = self._matching_utterances(q, [str(h["_id"]) for h in hits]) if q.text else {}
        self._metrics.search_seconds.labels("search").observe(time.perf_counter() - started)
        response = pb.SearchResponse(total=int(found["hits"]["total"]["value"]))
        for hit in hits:
            call_hit = response.hits.add(**docs.call_hit_fields(hit["_source"]))
            call_hit.score = float(hit.get("_score") or 0.0)
            call_hit.utterances.extend(matches.get(str(hit["_id"]), []))
        if more:
            response.next_page_token = qb.encode_token(q, hits[-1]["sort"])
        return response

    def _matching_utterances(self, q: qb.SearchQuery, recording_ids: list[str]) -> dict[str, list[pb.UtteranceHit]]:
        """The best `search_utterances_per_call` matching utterances of each call, in call order, highlighted.

        Two requests whatever the page size: the matching utterances of all the page's calls by score (ids only,
        at most `_SCROLL_PAGE`), of which each call's best are kept; then those, with their highlights.
        """
        if not recording_ids:
            return {}
        index = self.alias(UTTERANCES, q.tenant)
        per_call = self._settings.search_utterances_per_call
        query = qb.utterance_query(q, recording_ids)
        ranked = self._es.search(
            index=index, query=query, source=False, size=_SCROLL_PAGE, track_total_hits=False, ignore_unavailable=True
        )["hits"]["hits"]
        chosen: dict[str, list[str]] = {}
        for hit in ranked:  # best first; an utterance id starts with its recording id and ':'
            best = chosen.setdefault(str(hit["_id"]).split(":", 1)[0], [])
            if len(best) < per_call:
                best.append(str(hit["_id"]))
        ids = [doc_id for best in chosen.values() for doc_id in best]
        if not ids:
            return {}
        shown = self._es.search(
            index=index,
            query={"bool": {"filter": [{"ids": {"values": ids}}], "must": [query]}},
            size=len(ids),
            highlight=qb.utterance_highlight(),
            track_total_hits=False,
            ignore_unavailable=True,
        )["hits"]["hits"]
        out: dict[str, list[pb.UtteranceHit]] = {}
        for hit in shown:
            source = hit["_source"]
            text, highlight = qb.pick_highlight(source, hit.get("highlight") or {}, q.cjk)
            utterance = docs.utterance_from_doc(source)
            out.setdefault(str(source.get("recording_id")), []).append(
                pb.UtteranceHit(
                    channel=utterance.channel,
                    role=utterance.role,
                    start_ms=utterance.start_ms,
                    end_ms=utterance.end_ms,
                    text=text,
                    highlight=highlight,
                )
            )
        for found in out.values():
            found.sort(key=lambda u: (u.start_ms, u.channel))
        return out

    def export(self, q: qb.SearchQuery) -> Iterator[pb.Call]:
        """Every call matching `q`, newest first, with all its utterances: pages of `export_page_size` calls
        (search_after, so no result window limit)."""
        self._require_ready()
        sort = qb.call_sort(q, by_score=False)
        after: list[Any] | None = None
        page_size = self._settings.export_page_size
        while True:
            started = time.perf_counter()
            with translate_errors("exporting calls"):
                found = self._es.search(
                    index=self.alias(CALLS, q.tenant),
                    query=qb.call_query(q),
                    sort=sort,
                    size=page_size,
                    search_after=after,
                    source_excludes=list(TRANSCRIPT_FIELDS),
                    track_total_hits=False,
                    ignore_unavailable=True,
                )
                hits = found["hits"]["hits"]
                utterances = self._utterance_docs(q.tenant, [str(h["_id"]) for h in hits])
            self._metrics.search_seconds.labels("export").observe(time.perf_counter() - started)
            for hit in hits:
                yield docs.call_from_docs(hit["_source"], utterances.get(str(hit["_id"]), []))
            if len(hits) < page_size:
                return
            after = hits[-1]["sort"]


def _error_type(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type", ""))
    return str(exc.message)


def _reason(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', '')}: {error.get('reason', '')}"
        if error:
            return str(error)
    return str(exc.message)


def _item_reason(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error)
