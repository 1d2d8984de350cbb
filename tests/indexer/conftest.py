"""Fixtures for the indexer tests: the real IndexerService in-process over the real noida-db
Elasticsearch API (the session's `es_server`), with a scripted enricher the tests control.

`indexer` is shared by the session (index prefix `itest`); tests that need other settings (another
prefix, another cluster, fast retries) start their own with `start_indexer`. Every test uses fresh
recording ids and its own agent id, so tests that share the cluster never see each other's calls.
`start_noida(data_dir, port)` runs a separate noida-db a test may stop and restart.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from elasticsearch import Elasticsearch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest
from support import wait_for  # noqa: F401 - re-exported to the folder's tests

from callscribe.indexer.main import build, start_connecting
from callscribe.indexer.pii.calls import UnredactedSink
from callscribe.indexer.settings import IndexerSettings
from callscribe.indexer.store import EsStore
from callscribe.kit.files import write_json_atomically
from callscribe.kit.interceptors import ACTING_TENANT_HEADER
from callscribe.kit.server import GrpcServer
from callscribe.kit.tenants import Tenant
from callscribe.stack.binaries import find_noida
from callscribe.stack.procs import ManagedProcess, spawn, stop, wait_until
from callscribe.stack.servers import http_status
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb
from callscribe.v1 import indexer_pb2_grpc

TENANTS = {
    "acme": TenantSpec("COMPLIANCE", 1825),
    "globex": TenantSpec("COMPLIANCE", 30),
    "hant": TenantSpec("COMPLIANCE", 1825, zh_script="traditional"),  # normalized text in Traditional characters
}
# The pipeline's service account: the only caller allowed to write the index (IndexCall).
PIPELINE_TOKEN = secrets.token_hex(24)
SHARED_PREFIX = "itest"
RPC_TIMEOUT_S = 60.0
AGENT, CUSTOMER, MIXED = c.SPEAKER_ROLE_AGENT, c.SPEAKER_ROLE_CUSTOMER, c.SPEAKER_ROLE_MIXED

# What the scripted enricher's "ITN" does: Chinese numerals to digits, as the real one would.
ITN = {"三百": "300", "五十": "50", "two hundred dollars": "$200"}


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def pipeline_auth(tenant: str = "acme") -> tuple[tuple[str, str], ...]:
    """The pipeline worker's credentials, acting for `tenant` (what IndexCall requires)."""
    return (("authorization", f"Bearer {PIPELINE_TOKEN}"), (ACTING_TENANT_HEADER, tenant))


def new_id() -> str:
    return secrets.token_hex(16)


def new_agent() -> str:
    """An agent id no other test uses: filtering on it isolates a test's calls."""
    return f"agent-{secrets.token_hex(5)}"


# --------------------------------------------------------------------------- calls


def make_call(
    *,
    tenant: str = "acme",
    recording_id: str | None = None,
    agent_id: str = "agent-7",
    started_at: str = "2024-05-01T10:00:00Z",
    language: int = c.LANGUAGE_ZH,
    duration_ms: int = 60_000,
    layout: int = c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
    utterances: Sequence[tuple[int, int, int, int, str]] = (),
    labels: dict[str, str] | None = None,
) -> pb.Call:
    """A call as the pipeline sends it; `utterances` are (channel, role, start_ms, end_ms, text)."""
    rid = recording_id or new_id()
    call = pb.Call(
        recording_id=rid,
        tenant=tenant,
        metadata=c.RecordingMetadata(
            tenant=tenant,
            call_id=f"call-{rid[:8]}",
            agent_id=agent_id,
            customer_id="cust-42",
            channel_layout=layout,
            language=language,
            labels=labels or {"queue": "billing"},
            filename="call.wav",
        ),
        audio=c.AudioFacts(
            container="WAV",
            codec="PCM_16",
            sample_rate_hz=8000,
            channels=1 if layout == c.CHANNEL_LAYOUT_MONO else 2,
            duration_ms=duration_ms,
            size_bytes=duration_ms * 32,
        ),
        object=c.ObjectRef(
            bucket="callscribe-hot", key=f"recordings/{tenant}/{rid}/audio", version_id="v1", sha256="ab" * 32
        ),
        tier=c.STORAGE_TIER_HOT,
    )
    if started_at:
        call.metadata.started_at.FromJsonString(started_at)
    for channel, role, start, end, text in utterances:
        call.utterances.add(
            channel=channel,
            role=role,
            start_ms=start,
            end_ms=end,
            text=text,
            confidence=0.875,
            language=language,
            engine="paraformer",
        )
    return call


REFUND_ZH = [
    (0, AGENT, 0, 2_000, "您好,这里是客服中心,请问有什么可以帮您"),
    (1, CUSTOMER, 2_500, 6_000, "我上个月被多扣了三百块,我要退费"),
    (0, AGENT, 6_500, 9_000, "好的,我帮您查一下这笔退费"),
    (1, CUSTOMER, 9_500, 11_000, "谢谢"),
]
REFUND_EN = [
    (0, AGENT, 0, 2_000, "thank you for calling, how can I help you today"),
    (1, CUSTOMER, 2_500, 6_000, "I was charged twice and I want my money back, refunds take too long"),
    (0, AGENT, 6_500, 9_000, "I can refund the second charge right now"),
]
HOURS_EN = [
    (0, AGENT, 0, 2_000, "good morning, billing department"),
    (1, CUSTOMER, 2_500, 5_000, "what are your opening hours on Sunday"),
]


# --------------------------------------------------------------------------- the enricher


@dataclass
class ScriptedEnricher:
    """Normalizes with `ITN` (no script conversion; the script it was asked for is kept in `scripts`), sets
    each utterance's sentiment from its text, and the analytics a test planted for the recording
    (`plant(recording_id, CallAnalytics)`)."""

    planted: dict[str, pb.CallAnalytics] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    scripts: dict[str, str] = field(default_factory=dict)  # recording id -> the zh_script it was enriched in
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plant(self, recording_id: str, analytics: pb.CallAnalytics) -> None:
        with self.lock:
            self.planted[recording_id] = analytics

    def __call__(self, call: pb.Call, script: str = "simplified") -> None:
        for u in call.utterances:
            text = u.text
            for spoken, written in ITN.items():
                text = text.replace(spoken, written)
            u.normalized_text = text
            u.sentiment = -0.5 if ("退费" in u.text or "refund" in u.text) else 0.25
        with self.lock:
            self.seen.append(call.recording_id)
            self.scripts[call.recording_id] = script
            planted = self.planted.get(call.recording_id)
        if planted is not None:
            call.analytics.CopyFrom(planted)


def analytics(
    *,
    hits: Sequence[tuple[str, str]] = (),
    longest_silence_ms: int = 0,
    interruptions: int = 0,
    sentiment_label: str = "neutral",
    qa_score: float | None = None,
) -> pb.CallAnalytics:
    """CallAnalytics with keyword hits (list, phrase) and the figures the search filters look at."""
    result = pb.CallAnalytics(
        agent=pb.SideStats(talk_ms=4_500, speaking_rate=180.5, interruptions=interruptions, sentiment=0.25, words=40),
        customer=pb.SideStats(talk_ms=5_000, speaking_rate=150.0, sentiment=-0.5, words=35),
        agent_talk_ratio=0.47,
        silence_ms=longest_silence_ms + 500,
        longest_silence_ms=longest_silence_ms,
        dead_air_count=1 if longest_silence_ms >= 5_000 else 0,
        dead_air_threshold_ms=5_000,
        overlap_ms=300 * interruptions,
        interruption_count=interruptions,
        sentiment=-0.2,
        sentiment_label=sentiment_label,
    )
    for i in range(interruptions):
        result.interruptions.add(by=AGENT, at_ms=1_000 * (i + 1), overlap_ms=300)
    for i, (name, phrase) in enumerate(hits):
        result.keyword_hits.add(
            list=name, phrase=phrase, matched=phrase, channel=1, role=CUSTOMER, start_ms=2_500 + i, end_ms=6_000
        )
    if qa_score is not None:
        result.qa.score = qa_score
        result.qa.max_score = 100
        if qa_score < 100:
            result.qa.deductions.add(rule="closing", points=100 - qa_score, reason="未说结束语 / no closing phrase")
    return result


# --------------------------------------------------------------------------- the service


@pytest.fixture(scope="session")
def indexer_tenants(stack_tmp: Path) -> TenantsFile:
    path = stack_tmp / "indexer-tenants.json"
    return TenantsFile.write(path, TENANTS, {"pipeline": PIPELINE_TOKEN})


@dataclass
class Indexer:
    """A running IndexerService (in this process) and a client for it."""

    settings: IndexerSettings
    server: GrpcServer
    store: EsStore
    registry: CollectorRegistry
    enricher: ScriptedEnricher  # not used by an indexer started with real_enricher=True
    tokens: dict[str, str]
    channel: grpc.Channel
    stub: indexer_pb2_grpc.IndexerServiceStub
    health: health_pb2_grpc.HealthStub
    stop_connecting: threading.Event

    def auth(self, tenant: str = "acme") -> tuple[tuple[str, str], ...]:
        return auth(self.tokens[tenant])

    def index(self, call: pb.Call, tenant: str | None = None) -> pb.IndexCallResponse:
        request = pb.IndexCallRequest(call=call)
        return self.stub.IndexCall(request, metadata=pipeline_auth(tenant or call.tenant), timeout=RPC_TIMEOUT_S)

    def search(self, tenant: str = "acme", **fields: Any) -> pb.SearchResponse:
        return self.stub.Search(pb.SearchRequest(**fields), metadata=self.auth(tenant), timeout=RPC_TIMEOUT_S)

    def get(self, recording_id: str, tenant: str = "acme") -> pb.Call:
        request = pb.GetCallRequest(recording_id=recording_id)
        return self.stub.GetCall(request, metadata=self.auth(tenant), timeout=RPC_TIMEOUT_S)

    def export(self, tenant: str = "acme", **fields: Any) -> list[pb.Call]:
        request = pb.ExportCallsRequest(filter=pb.SearchRequest(**fields))
        return list(self.stub.ExportCalls(request, metadata=self.auth(tenant), timeout=RPC_TIMEOUT_S))

    def find(self, ids: Sequence[str], tenant: str = "acme") -> list[str]:
        request = pb.FindIndexedRequest(recording_ids=list(ids))
        return list(self.stub.FindIndexed(request, metadata=self.auth(tenant), timeout=RPC_TIMEOUT_S).recording_ids)

    def serving(self) -> bool:
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def wait_serving(self, timeout: float = 30.0) -> None:
        wait_until(self.serving, timeout, f"indexer at {self.server.address} SERVING")

    def metrics(self) -> str:
        return generate_latest(self.registry).decode()

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else float(value)

    @property
    def es(self) -> Elasticsearch:
        return self.store.client

    def close(self) -> None:
        self.stop_connecting.set()
        self.channel.close()
        self.server.stop(0)
        self.store.client.close()


StartIndexer = Callable[..., Indexer]


def indexer_settings(es_url: str, tenants: TenantsFile, s3: Any = None, **overrides: Any) -> IndexerSettings:
    """Settings of a test indexer; with `s3` (the session's SeaweedFS) its exports are recorded in the access
    trail of the hot bucket (without, ExportCalls is refused)."""
    trail: dict[str, Any] = {}
    if s3 is not None:
        trail = {
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "hot_bucket": s3.hot_bucket,
        }
    values: dict[str, Any] = {
        **trail,
        "elasticsearch_url": es_url,
        "tenants_file": tenants.path,
        "grpc_address": "127.0.0.1:0",
        "metrics_address": "127.0.0.1:0",
        "index_prefix": SHARED_PREFIX,
        "number_of_replicas": 0,
        "max_workers": 8,
    }
    values.update(overrides)
    return IndexerSettings(**values)


@pytest.fixture(scope="session")
def start_indexer(es_server, s3_server, indexer_tenants: TenantsFile) -> Iterator[StartIndexer]:  # type: ignore[no-untyped-def]
    """`start_indexer(wait=True, es_url=None, real_enricher=False, tenants=None, unredacted_sink=None, **settings)`:
    an in-process indexer, with the scripted enricher or (real_enricher) the service's own (script, ITN, analytics),
    the session's tenants or `tenants`; all stopped at the end."""
    started: list[Indexer] = []

    def start(
        *,
        wait: bool = True,
        es_url: str | None = None,
        real_enricher: bool = False,
        tenants: TenantsFile | None = None,
        unredacted_sink: UnredactedSink | None = None,
        **overrides: Any,
    ) -> Indexer:
        tenants = tenants or indexer_tenants
        settings = indexer_settings(es_url or es_server.url, tenants, s3_server, **overrides)
        registry = CollectorRegistry()
        enricher = ScriptedEnricher()
        server, store = build(settings, registry, None if real_enricher else enricher, unredacted_sink)
        server.start()
        _, stop_event = start_connecting(server, store, settings.startup_retry_seconds)
        channel = grpc.insecure_channel(server.address)
        instance = Indexer(
            settings,
            server,
            store,
            registry,
            enricher,
            dict(tenants.tokens),
            channel,
            indexer_pb2_grpc.IndexerServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            stop_event,
        )
        started.append(instance)
        if wait:
            instance.wait_serving()
        return instance

    yield start
    for instance in reversed(started):
        instance.close()


@pytest.fixture(scope="session")
def indexer(start_indexer: StartIndexer) -> Indexer:
    """The indexer shared by the tests that need no other settings (exports in pages of 40 calls)."""
    return start_indexer(export_page_size=40)


# --------------------------------------------------------------------------- a noida-db of one's own


@dataclass
class Noida:
    """A noida-db (Elasticsearch API) a test may stop and start again on the same port and data."""

    data_dir: Path
    port: int
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [find_noida(), "start", "--data-dir", str(self.data_dir), "--only", "elasticsearch"]
        argv += ["--host", "127.0.0.1", "--elasticsearch-port", str(self.port)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = spawn("elasticsearch", argv, {}, self.data_dir / "noida.log")
        wait_until(lambda: http_status(f"{self.url}/") == 200, 30, f"noida-db at {self.url}", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@pytest.fixture
def own_noida(tmp_path: Path) -> Iterator[Noida]:
    """A noida-db on a free port, not started: the test starts (and stops) it."""
    from callscribe.stack.procs import free_port

    noida = Noida(tmp_path / "noida", free_port())
    yield noida
    noida.stop()


# --------------------------------------------------------------------------- an indexer with redaction policies

# acme: the default policy (everything masked); cards: only cards, their last four shown; keeper: everything masked,
# the unredacted call handed to the indexer's unredacted_sink.
PII_POLICIES = {"cards": {"categories": ["card"], "keep_last": 4}, "keeper": {"keep_unredacted": True}}


@dataclass
class KeptCalls:
    """An unredacted_sink that keeps what it is given: (tenant name, unredacted call)."""

    calls: list[tuple[str, pb.Call]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, tenant: Tenant, unredacted: pb.Call, key_id: str) -> None:
        with self.lock:
            self.calls.append((tenant.name, unredacted))

    def get(self, tenant: str, rec_id: str) -> pb.Call | None:
        found = [call for name, call in self.of(rec_id) if name == tenant]
        return found[-1] if found else None

    def of(self, recording_id: str) -> list[tuple[str, pb.Call]]:
        with self.lock:
            return [(name, call) for name, call in self.calls if call.recording_id == recording_id]


@dataclass
class PiiIndexer:
    indexer: Indexer
    kept: KeptCalls


@pytest.fixture(scope="session")
def pii_indexer(start_indexer: StartIndexer, stack_tmp: Path) -> PiiIndexer:
    """The service's own enricher (ITN, analytics) and tenants with redaction policies (`PII_POLICIES`)."""
    path = stack_tmp / "pii-tenants.json"
    specs = {name: TenantSpec("COMPLIANCE", 1825) for name in ("acme", *PII_POLICIES)}
    tenants = TenantsFile.write(path, specs, {"pipeline": PIPELINE_TOKEN})
    document = json.loads(path.read_text(encoding="utf-8"))
    for name, policy in PII_POLICIES.items():
        document["tenants"][name]["redaction"] = policy
    write_json_atomically(path, document)
    kept = KeptCalls()
    return PiiIndexer(start_indexer(real_enricher=True, tenants=tenants, unredacted_sink=kept), kept)
