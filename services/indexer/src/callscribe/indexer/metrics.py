"""callscribe_indexer_* figures: what operators watch (the gRPC ones come from the kit's interceptor)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class IndexerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.documents_indexed = Counter(
            "callscribe_indexer_documents_indexed",
            "documents written to Elasticsearch (kind: call or utterance)",
            ["kind"],
            registry=registry,
        )
        self.documents_deleted = Counter(
            "callscribe_indexer_documents_deleted",
            "utterance documents deleted because a re-indexed call no longer has them",
            registry=registry,
        )
        self.storage_updates = Counter(
            "callscribe_indexer_storage_updates",
            "UpdateStorage changes applied to call documents (change: moved = new location and tier, audited = "
            "integrity and verified_at)",
            ["change"],
            registry=registry,
        )
        self.calls_deleted = Counter(
            "callscribe_indexer_calls_deleted",
            "calls whose documents DeleteCall removed (retention expiry); a call that was not there is not counted",
            registry=registry,
        )
        self.bulk_seconds = Histogram(
            "callscribe_indexer_bulk_seconds",
            "one bulk request to Elasticsearch (refresh wait included)",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.bulk_retries = Counter(
            "callscribe_indexer_bulk_retries", "bulk requests (or their refused items) sent again", registry=registry
        )
        self.bulk_failures = Counter(
            "callscribe_indexer_bulk_failures",
            "bulk writes given up (reason: unreachable, rejected = overloaded after retries, refused = a document "
            "the index does not accept)",
            ["reason"],
            registry=registry,
        )
        self.index_call_seconds = Histogram(
            "callscribe_indexer_index_call_seconds",
            "IndexCall: enrichment (stage=enrich), PII redaction (stage=redact) and Elasticsearch writes (stage=write)",
            ["stage"],
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.pii_masked = Counter(
            "callscribe_indexer_pii_masked",
            "PII spans masked in indexed calls, utterance text and normalized text counted apart (category: card, "
            "cn_id, bank_account, phone, email, verification_code)",
            ["category"],
            registry=registry,
        )
        self.search_seconds = Histogram(
            "callscribe_indexer_search_seconds",
            "Elasticsearch reads per request (op: search, get, export, find_indexed)",
            ["op"],
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.elasticsearch_ready = Gauge(
            "callscribe_indexer_elasticsearch_ready",
            "1 once Elasticsearch answered and the index templates are in place",
            registry=registry,
        )
        self.ilm_supported = Gauge(
            "callscribe_indexer_ilm_supported",
            "1 when tenant lifecycle policies (hot/warm/delete) are managed; 0 when the cluster has no ILM",
            registry=registry,
        )
