"""The indexer's Elasticsearch as one object for the servicer and `main`: the parts in `callscribe.indexer.es`
(schema, writer, reader, export) over one client, and what callers ask of them.

Every failure to reach the cluster becomes the kit's `Unavailable` (the pipeline worker retries the call
later); a document that the index refuses (mapping) becomes `FailedPrecondition`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from elasticsearch import Elasticsearch

from callscribe.indexer import query as qb
from callscribe.indexer.es.client import compat_major
from callscribe.indexer.es.export import Exporter
from callscribe.indexer.es.reader import Reader
from callscribe.indexer.es.schema import Schema
from callscribe.indexer.es.writer import BulkResult, Writer
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.tenants import Tenant
from callscribe.v1 import indexer_pb2 as pb


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
        self.schema = Schema(client, settings, metrics)
        self.reader = Reader(client, settings, metrics, self.schema)
        self.writer = Writer(client, settings, metrics, self.schema, self.reader, sleep)
        self.exporter = Exporter(client, settings, metrics, self.schema, self.reader)

    @property
    def client(self) -> Elasticsearch:
        return self._es

    # ------------------------------------------------------------------ start and tenants (schema)

    @property
    def ready(self) -> bool:
        return self.schema.ready

    @property
    def ilm_supported(self) -> bool:
        return self.schema.ilm_supported

    @property
    def server_version(self) -> str:
        return self.schema.server_version

    @property
    def compat_major(self) -> int:
        """The REST API major version every request asks for (`compatible-with`)."""
        return compat_major(self._es)

    def connect(self) -> None:
        self.schema.connect()

    def ensure_tenant(self, tenant: Tenant) -> None:
        self.schema.ensure_tenant(tenant)

    # ------------------------------------------------------------------ writes

    def index_call(self, tenant: Tenant, call: pb.Call) -> int:
        return self.writer.index_call(tenant, call)

    def update_storage(self, tenant: Tenant, recording_id: str, fields: dict[str, Any], sha256: str | None) -> None:
        self.writer.update_storage(tenant, recording_id, fields, sha256)

    def delete_call(self, tenant: str, recording_id: str) -> tuple[bool, int]:
        return self.writer.delete_call(tenant, recording_id)

    def bulk_documents(self, actions: Iterable[dict[str, Any]], refresh: str = "false") -> BulkResult:
        return self.writer.bulk_documents(actions, refresh)

    # ------------------------------------------------------------------ reads

    def get_call(self, tenant: str, recording_id: str) -> pb.Call:
        return self.reader.get_call(tenant, recording_id)

    def find_indexed(self, tenant: str, recording_ids: Sequence[str]) -> list[str]:
        return self.reader.find_indexed(tenant, recording_ids)

    def search(self, q: qb.SearchQuery, size: int, page_token: str) -> pb.SearchResponse:
        return self.reader.search(q, size, page_token)

    def export(self, q: qb.SearchQuery) -> Iterator[pb.Call]:
        return self.exporter.export(q)
