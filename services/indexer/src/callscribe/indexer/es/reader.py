"""Reads: GetCall, FindIndexed, Search (with each call's best matching utterances), where a call's documents
are and which version of its call document is stored (for the writer), and `every`, the search_after pager that
reads all matches of a query.

Every query goes to the tenant's alias and also filters on `tenant`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from callscribe.indexer import documents as docs
from callscribe.indexer import query as qb
from callscribe.indexer.es.client import translate_errors
from callscribe.indexer.es.schema import Schema
from callscribe.indexer.mappings import CALLS, TRANSCRIPT_FIELDS, UTTERANCE_FOLDED_FIELDS, UTTERANCES
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.errors import InvalidArgument, NotFound
from callscribe.v1 import indexer_pb2 as pb

SCROLL_PAGE = 5000  # documents per page when every match is read (utterances of calls, existing ids)
MAX_FIND_IDS = 1000


def every(
    client: Elasticsearch,
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
        page = client.search(
            index=index,
            query=query,
            sort=sort,
            size=SCROLL_PAGE,
            source=source,
            search_after=after,
            ignore_unavailable=True,
            track_total_hits=False,
        )
        hits = page["hits"]["hits"]
        yield from hits
        if len(hits) < SCROLL_PAGE:
            return
        after = hits[-1]["sort"]


@dataclass(frozen=True)
class StoredCall:
    """A call document as stored: the backing index that holds it, its version (for a conditional update), and
    the SHA-256 of its audio."""

    index: str
    seq_no: int
    primary_term: int
    sha256: str


class Reader:
    def __init__(
        self, client: Elasticsearch, settings: IndexerSettings, metrics: IndexerMetrics, schema: Schema
    ) -> None:
        self._es = client
        self._settings = settings
        self._metrics = metrics
        self._schema = schema

    def locate(self, tenant: str, recording_id: str) -> tuple[str | None, dict[str, str]]:
        """Where the call's documents are now: (backing index of the call, {utterance id: backing index}).

        A call that has no call document has no utterance documents either (a partly written call is
        withdrawn with its utterances, see `Writer.withdraw_call`), so a first indexing costs one cheap ids
        lookup; only a re-index reads the utterances it may have to overwrite in place or delete.
        """
        calls_alias, utterances_alias = self._schema.index_names(tenant)
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
            hits = every(self._es, utterances_alias, utterance_query, ["start_ms", "channel"], False)
            existing = {str(hit["_id"]): str(hit["_index"]) for hit in hits}
        return call_index, existing

    def stored_call(self, tenant: str, recording_id: str) -> StoredCall | None:
        """The tenant's call document of `recording_id` (found through the read alias, whichever backing index holds
        it), or None when the call is not indexed."""
        with translate_errors(f"looking up call {recording_id}"):
            found = self._es.search(
                index=self._schema.alias(CALLS, tenant),
                query={"bool": {"filter": [{"ids": {"values": [recording_id]}}, {"term": {"tenant": tenant}}]}},
                source_includes=["sha256"],
                seq_no_primary_term=True,
                size=1,
                ignore_unavailable=True,
            )
        hits = found["hits"]["hits"]
        if not hits:
            return None
        hit = hits[0]
        return StoredCall(
            index=str(hit["_index"]),
            seq_no=int(hit["_seq_no"]),
            primary_term=int(hit["_primary_term"]),
            sha256=str((hit.get("_source") or {}).get("sha256", "")),
        )

    def utterance_docs(self, tenant: str, recording_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The utterance documents of each call, in time order (every one: search_after)."""
        out: dict[str, list[dict[str, Any]]] = {rid: [] for rid in recording_ids}
        if not recording_ids:
            return out
        flt = [{"term": {"tenant": tenant}}, {"terms": {"recording_id": list(recording_ids)}}]
        sort = ["recording_id", "start_ms", "channel"]
        index = self._schema.alias(UTTERANCES, tenant)
        wanted = {"excludes": list(UTTERANCE_FOLDED_FIELDS)}  # the Simplified forms are for search only
        for hit in every(self._es, index, {"bool": {"filter": flt}}, sort, wanted):
            source = hit["_source"]
            out.setdefault(str(source.get("recording_id")), []).append(source)
        return out

    def get_call(self, tenant: str, recording_id: str) -> pb.Call:
        self._schema.require_ready()
        started = time.perf_counter()
        with translate_errors(f"reading call {recording_id}"):
            found = self._es.search(
                index=self._schema.alias(CALLS, tenant),
                query={"bool": {"filter": [{"ids": {"values": [recording_id]}}, {"term": {"tenant": tenant}}]}},
                source_excludes=list(TRANSCRIPT_FIELDS),
                size=1,
                ignore_unavailable=True,
            )
            hits = found["hits"]["hits"]
            if not hits:
                raise NotFound(f"no indexed call {recording_id} for tenant {tenant}")
            utterances = self.utterance_docs(tenant, [recording_id])[recording_id]
        self._metrics.search_seconds.labels("get").observe(time.perf_counter() - started)
        return docs.call_from_docs(hits[0]["_source"], utterances)

    def find_indexed(self, tenant: str, recording_ids: Sequence[str]) -> list[str]:
        """The ids (of `recording_ids`, in their order) that have an indexed call."""
        self._schema.require_ready()
        wanted = list(dict.fromkeys(recording_ids))
        if not wanted:
            return []
        if len(wanted) > MAX_FIND_IDS:
            raise InvalidArgument(f"{len(wanted)} recording ids asked; at most {MAX_FIND_IDS} per request")
        started = time.perf_counter()
        with translate_errors("looking up indexed calls"):
            found = self._es.search(
                index=self._schema.alias(CALLS, tenant),
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
        self._schema.require_ready()
        sort = qb.call_sort(q, by_score=True)
        at = qb.decode_token(q, page_token, len(sort))
        if q.text:  # ranked: pages by offset, as deep as Elasticsearch's result window
            size = min(size, qb.MAX_RANKED_RESULTS - at.offset)
            window: dict[str, Any] = {"from_": at.offset, "size": min(size + 1, qb.MAX_RANKED_RESULTS - at.offset)}
        else:
            window = {"search_after": at.after, "size": size + 1}
        started = time.perf_counter()
        with translate_errors("searching"):
            found = self._es.search(
                index=self._schema.alias(CALLS, q.tenant),
                query=qb.call_query(q),
                sort=sort,
                source_excludes=list(TRANSCRIPT_FIELDS),
                track_total_hits=True,
                ignore_unavailable=True,
                **window,
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
            if q.text:
                response.next_page_token = qb.encode_token(q, offset=at.offset + len(hits))
            else:
                response.next_page_token = qb.encode_token(q, after=hits[-1]["sort"])
        return response

    def _matching_utterances(self, q: qb.SearchQuery, recording_ids: list[str]) -> dict[str, list[pb.UtteranceHit]]:
        """The best `search_utterances_per_call` matching utterances of each call, in call order, highlighted.

        Two requests whatever the page size: the matching utterances of all the page's calls by score (ids only,
        at most `SCROLL_PAGE`), of which each call's best are kept; then those, with their highlights.
        """
        if not recording_ids:
            return {}
        index = self._schema.alias(UTTERANCES, q.tenant)
        per_call = self._settings.search_utterances_per_call
        query = qb.utterance_query(q, recording_ids)
        ranked = self._es.search(
            index=index, query=query, source=False, size=SCROLL_PAGE, track_total_hits=False, ignore_unavailable=True
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
