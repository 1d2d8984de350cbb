"""ExportCalls: every call matching a search, newest first, each with all its utterances."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from elasticsearch import Elasticsearch

from callscribe.indexer import documents as docs
from callscribe.indexer import query as qb
from callscribe.indexer.es.client import translate_errors
from callscribe.indexer.es.reader import Reader
from callscribe.indexer.es.schema import Schema
from callscribe.indexer.mappings import CALLS, TRANSCRIPT_FIELDS
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.v1 import indexer_pb2 as pb


class Exporter:
    def __init__(
        self,
        client: Elasticsearch,
        settings: IndexerSettings,
        metrics: IndexerMetrics,
        schema: Schema,
        reader: Reader,
    ) -> None:
        self._es = client
        self._settings = settings
        self._metrics = metrics
        self._schema = schema
        self._reader = reader

    def export(self, q: qb.SearchQuery) -> Iterator[pb.Call]:
        """Every call matching `q`, newest first, with all its utterances: pages of `export_page_size` calls
        (search_after, so no result window limit)."""
        self._schema.require_ready()
        sort = qb.call_sort(q, by_score=False)
        after: list[Any] | None = None
        page_size = self._settings.export_page_size
        while True:
            started = time.perf_counter()
            with translate_errors("exporting calls"):
                found = self._es.search(
                    index=self._schema.alias(CALLS, q.tenant),
                    query=qb.call_query(q),
                    sort=sort,
                    size=page_size,
                    search_after=after,
                    source_excludes=list(TRANSCRIPT_FIELDS),
                    track_total_hits=False,
                    ignore_unavailable=True,
                )
                hits = found["hits"]["hits"]
                utterances = self._reader.utterance_docs(q.tenant, [str(h["_id"]) for h in hits])
            self._metrics.search_seconds.labels("export").observe(time.perf_counter() - started)
            for hit in hits:
                yield docs.call_from_docs(hit["_source"], utterances.get(str(hit["_id"]), []))
            if len(hits) < page_size:
                return
            after = hits[-1]["sort"]
