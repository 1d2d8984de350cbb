"""The Elasticsearch layer on the real noida-db: templates and mappings, ILM detection, bulk writes; and the pure
parts it rests on (documents, queries, page tokens, settings, the enricher)."""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch, helpers
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from callscribe.indexer import documents, enrich, mappings
from callscribe.indexer import query as qb
from callscribe.indexer.es.client import make_client
from callscribe.indexer.es.schema import check_tenant_name
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.indexer.store import EsStore
from callscribe.kit.errors import FailedPrecondition, InvalidArgument
from callscribe.kit.tenants import Tenant
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

from .conftest import HOURS_EN, REFUND_ZH, ScriptedEnricher, TenantsFile, analytics, indexer_settings, make_call

STORE_LOGGER = "callscribe.indexer.es"


def new_store(es_url: str, tenants: TenantsFile, **overrides: Any) -> EsStore:
    settings = indexer_settings(es_url, tenants, **overrides)
    return EsStore(make_client(settings), settings, IndexerMetrics(CollectorRegistry()))


@pytest.fixture
def es(es_server) -> Elasticsearch:  # type: ignore[no-untyped-def]
    client = Elasticsearch(es_server.url)
    yield client
    client.close()


def indexed(call: pb.Call) -> pb.Call:
    call.indexed_at.FromJsonString("2024-05-02T00:00:00.123Z")
    ScriptedEnricher()(call)
    return call


# --------------------------------------------------------------------------- templates, mappings, ILM


def test_templates_and_tenant_indices_carry_the_agreed_mappings(es_server, indexer_tenants, es) -> None:  # type: ignore[no-untyped-def]
    store = new_store(es_server.url, indexer_tenants, index_prefix="mapt", refresh_interval="2s")
    store.connect()
    for kind, properties in (("calls", mappings.CALL_MAPPINGS), ("utterances", mappings.UTTERANCE_MAPPINGS)):
        template = es.indices.get_index_template(name=f"mapt-{kind}")["index_templates"][0]["index_template"]
        assert template["index_patterns"] == [f"mapt-{kind}-*"]
        assert template["template"]["mappings"]["dynamic"] == "strict"
        assert template["template"]["mappings"]["properties"] == properties
    assert not es.indices.exists_alias(name="mapt-calls-acme")  # indices come with a tenant's first call

    store.ensure_tenant(Tenant("acme", retention_days=30))
    for kind, properties in (("calls", mappings.CALL_MAPPINGS), ("utterances", mappings.UTTERANCE_MAPPINGS)):
        alias = f"mapt-{kind}-acme"
        assert es.indices.get_alias(name=alias).body == {
            f"{alias}-000001": {"aliases": {alias: {"is_write_index": True}}}
        }
        index = es.indices.get(index=f"{alias}-000001")[f"{alias}-000001"]
        assert index["mappings"]["properties"] == properties
        assert index["mappings"]["dynamic"] == "strict"
        assert index["settings"]["index"]["number_of_replicas"] == "0"
        assert index["settings"]["index"]["refresh_interval"] == "2s"
        assert "lifecycle" not in index["settings"]["index"]  # no ILM on this cluster
    # Text fields: cjk analysis with english and keyword sub-fields.
    transcript = mappings.CALL_MAPPINGS["transcript"]
    assert transcript["analyzer"] == "cjk" and set(transcript["fields"]) == {"english", "keyword"}
    # Strict: a field nobody declared is refused, never guessed.
    with pytest.raises(BadRequestError) as err:
        es.index(index="mapt-calls-acme", id="x", document={"recording_id": "x", "surprise": 1})
    assert "strict_dynamic_mapping_exception" in str(err.value)
    # Setting a tenant up again (a second indexer, a restart) changes nothing.
    new_store(es_server.url, indexer_tenants, index_prefix="mapt").ensure_tenant(Tenant("acme", retention_days=30))
    assert list(es.indices.get_alias(name="mapt-calls-acme").body) == ["mapt-calls-acme-000001"]


def test_cluster_without_ilm_is_reported_once(es_server, indexer_tenants, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    store = new_store(es_server.url, indexer_tenants, index_prefix="ilmt", ilm_warm_after_days=14)
    store.connect()
    store.connect()
    for tenant in ("acme", "globex"):
        store.index_call(Tenant(tenant, retention_days=30), indexed(make_call(tenant=tenant, utterances=HOURS_EN)))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "ILM" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "does not support ILM" in message and "400" in message
    assert "warm after 14 days" in message and "retention_days" in message
    assert store.ilm_supported is False


def test_ilm_switched_off_is_reported(es_server, indexer_tenants, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    store = new_store(es_server.url, indexer_tenants, index_prefix="ilmoff", ilm_enabled=False)
    store.connect()
    assert any("ILM management is off" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_lifecycle_policy_shape() -> None:
    policy = mappings.lifecycle_policy(
        retention_days=365, warm_after_days=30, rollover_max_age_days=7, rollover_max_primary_shard_gb=50
    )
    phases = policy["phases"]
    assert list(phases) == ["hot", "warm", "delete"]
    assert phases["hot"]["actions"]["rollover"] == {"max_age": "7d", "max_primary_shard_size": "50gb"}
    assert phases["warm"]["min_age"] == "30d" and "readonly" not in phases["warm"]["actions"]
    assert phases["delete"] == {"min_age": "365d", "actions": {"delete": {}}}
    short = mappings.lifecycle_policy(
        retention_days=7, warm_after_days=30, rollover_max_age_days=7, rollover_max_primary_shard_gb=50
    )
    assert list(short["phases"]) == ["hot", "delete"]  # retention shorter than the warm age: no warm phase


@contextlib.contextmanager
def sent_media_types() -> Iterator[list[dict[str, str]]]:
    """The accept and content-type headers of each request this thread sends meanwhile, as the transport logs
    them (`elastic_transport.node` at DEBUG)."""
    sent: list[dict[str, str]] = []
    thread = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                lines = record.getMessage().splitlines()
                sent.append(
                    {
                        name.lower(): line.split(": ", 1)[1]
                        for line in lines
                        for name in ("Accept", "Content-Type")
                        if line.startswith(f"> {name}: ")
                    }
                )

    logger = logging.getLogger("elastic_transport.node")
    handler, level = Collect(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield sent
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_api_compatibility_is_agreed_with_the_cluster(es_server, indexer_tenants) -> None:  # type: ignore[no-untyped-def]
    store = new_store(es_server.url, indexer_tenants, index_prefix="compat")
    with sent_media_types() as sent:
        store.connect()
        store.index_call(Tenant("acme"), indexed(make_call(utterances=HOURS_EN)))
    assert store.server_version.startswith("8.")
    assert store.compat_major == 8  # the 9.x client asks an 8 cluster for its own API
    # ... on every request it sent: version, ILM, templates, the tenant's aliases, the call lookup, the bulk.
    assert len(sent) >= 8 and all("accept" in headers for headers in sent), sent
    assert all(value.endswith("; compatible-with=8") for headers in sent for value in headers.values()), sent
    assert "application/vnd.elasticsearch+x-ndjson; compatible-with=8" in {h.get("content-type") for h in sent}


def test_tenant_names_that_cannot_name_an_index() -> None:
    for good in ("acme", "acme-eu", "acme_2", "a1"):
        check_tenant_name(good)
    for bad in ("Acme", "acme-000001", "a b", "-acme", "ac*me", ""):
        with pytest.raises(FailedPrecondition):
            check_tenant_name(bad)


# --------------------------------------------------------------------------- bulk


def test_bulk_documents_writes_what_helpers_bulk_writes(es_server, indexer_tenants, es) -> None:  # type: ignore[no-untyped-def]
    store = new_store(es_server.url, indexer_tenants, index_prefix="bulkt", bulk_max_actions=7)
    store.connect()
    calls = [indexed(make_call(utterances=REFUND_ZH if i % 2 else HOURS_EN)) for i in range(6)]
    for prefix in ("bulkt-a", "bulkt-b"):
        for kind in mappings.KINDS:
            es.indices.create(index=f"{prefix}-{kind}", mappings=mappings.mappings(kind))
    ours = [a for call in calls for a in documents.bulk_actions(call, "bulkt-a-calls", "bulkt-a-utterances")]
    raw = [a for call in calls for a in documents.bulk_actions(call, "bulkt-b-calls", "bulkt-b-utterances")]
    result = store.bulk_documents(ours, refresh="wait_for")
    assert result.written == len(ours) == 6 + 3 * 4 + 3 * 2 and result.attempts == 4  # 24 actions, 7 a request
    ok, errors = helpers.bulk(es, raw, refresh="wait_for")
    assert ok == len(raw) and not errors

    def everything(index: str) -> dict[str, Any]:
        hits = es.search(index=index, size=1000)["hits"]["hits"]
        return {h["_id"]: h["_source"] for h in hits}

    for kind in mappings.KINDS:
        assert everything(f"bulkt-a-{kind}") == everything(f"bulkt-b-{kind}")
        assert len(everything(f"bulkt-a-{kind}")) == (6 if kind == "calls" else 18)
    deleted = store.bulk_documents(
        [{"_op_type": "delete", "_index": "bulkt-a-calls", "_id": calls[0].recording_id}], refresh="wait_for"
    )
    assert deleted.deleted == 1 and calls[0].recording_id not in everything("bulkt-a-calls")


def test_refused_document_is_a_failed_precondition(es_server, indexer_tenants, es) -> None:  # type: ignore[no-untyped-def]
    store = new_store(es_server.url, indexer_tenants, index_prefix="refuse")
    store.connect()
    es.indices.create(index="refuse-strict", mappings=mappings.mappings("calls"))
    with pytest.raises(FailedPrecondition) as err:
        store.bulk_documents([{"_index": "refuse-strict", "_id": "1", "_source": {"nope": 1}}])
    assert "strict_dynamic_mapping_exception" in err.value.message


def test_plain_index_in_place_of_the_alias_is_reported(es_server, indexer_tenants, es) -> None:  # type: ignore[no-untyped-def]
    es.indices.create(index="plain-calls-acme")
    store = new_store(es_server.url, indexer_tenants, index_prefix="plain")
    with pytest.raises(FailedPrecondition) as err:
        store.index_call(Tenant("acme"), indexed(make_call(utterances=HOURS_EN)))
    assert "plain index" in err.value.message and "plain-calls-acme-000001" in err.value.message


# --------------------------------------------------------------------------- documents


def _mapped_fields(descriptor: Descriptor, properties: dict[str, Any], where: str) -> None:
    """Every field of the proto message is mapped, with a type that fits it."""
    numeric = {
        FieldDescriptor.TYPE_FLOAT: {"float"},
        FieldDescriptor.TYPE_UINT32: {"long", "integer"},
        FieldDescriptor.TYPE_UINT64: {"long"},
    }
    assert set(properties) == {f.name for f in descriptor.fields}, where
    for f in descriptor.fields:
        mapping = properties[f.name]
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            _mapped_fields(f.message_type, mapping["properties"], f"{where}.{f.name}")
        elif f.type in (FieldDescriptor.TYPE_ENUM,):
            assert mapping["type"] == "keyword", f"{where}.{f.name}"
        elif f.type == FieldDescriptor.TYPE_STRING:
            assert mapping["type"] in ("keyword", "text"), f"{where}.{f.name}"
        else:
            assert mapping["type"] in numeric[f.type], f"{where}.{f.name}"


def test_analytics_mapping_follows_the_proto() -> None:
    _mapped_fields(pb.CallAnalytics.DESCRIPTOR, mappings.ANALYTICS_MAPPINGS, "analytics")


def _fits(doc: dict[str, Any], properties: dict[str, Any], where: str) -> None:
    for key, value in doc.items():
        assert key in properties, f"{where}.{key} is not mapped"
        mapping = properties[key]
        if "properties" in mapping:
            for item in value if isinstance(value, list) else [value]:
                _fits(item, mapping["properties"], f"{where}.{key}")


def test_documents_fit_the_strict_mappings() -> None:
    call = indexed(make_call(utterances=REFUND_ZH))
    call.analytics.CopyFrom(analytics(hits=[("refund", "退费")], interruptions=2, qa_score=75))
    _fits(documents.call_document(call), mappings.CALL_MAPPINGS, "call")
    for doc in documents.utterance_documents(call):
        _, body = documents.split_id(doc)
        _fits(body, mappings.UTTERANCE_MAPPINGS, "utterance")
    back = documents.call_from_docs(
        documents.call_document(call), [documents.split_id(d)[1] for d in documents.utterance_documents(call)]
    )
    assert back == call


def test_document_values() -> None:
    for value in (0.1, 0.47, 1 / 3, -0.5, 180.5, 3.4e38):
        f32 = struct.unpack("<f", struct.pack("<f", value))[0]
        short = documents.float32(f32)
        assert struct.pack("<f", short) == struct.pack("<f", f32) and len(repr(short)) <= len(repr(f32))
    assert documents.float32(struct.unpack("<f", struct.pack("<f", 0.1))[0]) == 0.1
    call = make_call(recording_id="rec-1", language=c.LANGUAGE_AUTO, utterances=HOURS_EN)
    for u in call.utterances:
        u.language = c.LANGUAGE_EN
    doc = documents.call_document(call)
    assert doc["language"] == "LANGUAGE_EN"  # declared auto: the detected language
    assert "analytics" not in doc and "keywords" not in doc and "indexed_at" not in doc
    assert [d["_id"] for d in documents.utterance_documents(call)] == ["rec-1:0:0", "rec-1:1:2500"]
    assert documents.iso(documents.timestamp("2024-01-01T00:00:00.5Z")) == "2024-01-01T00:00:00.500Z"
    assert documents.timestamp(1704067200500).ToJsonString() == "2024-01-01T00:00:00.500Z"


# --------------------------------------------------------------------------- queries and page tokens


def test_page_tokens() -> None:
    ranked = qb.parse_search(pb.SearchRequest(query="退费", agent_id="a"), "acme")
    dated = qb.parse_search(pb.SearchRequest(agent_id="a"), "acme")
    assert qb.decode_token(ranked, "", 3) == qb.PagePosition() == qb.decode_token(dated, "", 2)
    # A ranked search continues at an offset, a date-sorted one after a sort key.
    token = qb.encode_token(ranked, offset=20)
    assert qb.decode_token(ranked, token, 3) == qb.PagePosition(offset=20)
    keyed = qb.encode_token(dated, after=[1704067200000, "rec"])
    assert qb.decode_token(dated, keyed, 2) == qb.PagePosition(after=[1704067200000, "rec"])
    other_tenant = qb.parse_search(pb.SearchRequest(query="退费", agent_id="a"), "globex")
    other_filter = qb.parse_search(pb.SearchRequest(query="退费", agent_id="b"), "acme")
    for other in (other_tenant, other_filter):
        with pytest.raises(InvalidArgument):
            qb.decode_token(other, token, 3)
    with pytest.raises(InvalidArgument):
        qb.decode_token(dated, keyed, 3)  # wrong number of sort values
    for offset in (0, -1, qb.MAX_RANKED_RESULTS):  # not a next page of a ranked search
        with pytest.raises(InvalidArgument):
            qb.decode_token(ranked, qb.encode_token(ranked, offset=offset), 3)
    assert qb.page_size(0, 20, 100) == 20 and qb.page_size(500, 20, 100) == 100 and qb.page_size(7, 20, 100) == 7


def test_queries() -> None:
    zh = qb.parse_search(pb.SearchRequest(query=" 退费 "), "acme")
    en = qb.parse_search(pb.SearchRequest(query="refund", role=c.SPEAKER_ROLE_AGENT), "acme")
    assert zh.text == "退费" and zh.cjk and not en.cjk
    zh_fields = str(qb.call_query(zh))
    assert "transcript_normalized" in zh_fields and ".english" not in zh_fields  # CJK: no English stemming
    en_fields = str(qb.call_query(en))
    assert "transcript_agent.english" in en_fields and "transcript_customer" not in en_fields
    assert qb.call_query(en)["bool"]["filter"][0] == {"term": {"tenant": "acme"}}  # every query names the tenant
    listing = qb.parse_search(pb.SearchRequest(), "acme")
    assert qb.call_sort(listing, by_score=True)[0] == {"started_at": {"order": "desc", "missing": "_last"}}
    assert qb.call_sort(zh, by_score=True)[0] == {"_score": "desc"}


# --------------------------------------------------------------------------- settings


BASE_ENV = {"INDEXER_ELASTICSEARCH_URL": "http://es:9200"}


def settings_from_env(monkeypatch, tenants: TenantsFile, **env: str) -> IndexerSettings:  # type: ignore[no-untyped-def]
    for key in list(__import__("os").environ):
        if key.startswith("INDEXER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INDEXER_TENANTS_FILE", str(tenants.path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return IndexerSettings()  # type: ignore[call-arg]


def test_settings_from_environment(monkeypatch, indexer_tenants, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    analytics_file = tmp_path / "analytics.json"
    analytics_file.write_text("{}")
    s = settings_from_env(
        monkeypatch,
        indexer_tenants,
        INDEXER_ELASTICSEARCH_URL="https://es-0:9200/, https://es-1:9200",
        INDEXER_ELASTICSEARCH_USERNAME="callscribe",
        INDEXER_ELASTICSEARCH_PASSWORD="s3cret",
        INDEXER_ELASTICSEARCH_API_COMPAT="8",
        INDEXER_INDEX_PREFIX="cs_prod",
        INDEXER_NUMBER_OF_REPLICAS="2",
        INDEXER_ILM_WARM_AFTER_DAYS="7",
        INDEXER_REFRESH="false",
        INDEXER_ANALYTICS_FILE=str(analytics_file),
    )
    assert s.elasticsearch_urls == ["https://es-0:9200", "https://es-1:9200"]
    assert s.elasticsearch_password is not None and "s3cret" not in repr(s)
    assert s.elasticsearch_api_compat == 8 and s.index_prefix == "cs_prod" and s.number_of_replicas == 2
    assert s.ilm_warm_after_days == 7 and s.refresh == "false" and s.analytics_file == analytics_file
    defaults = settings_from_env(monkeypatch, indexer_tenants, **BASE_ENV)
    assert defaults.index_prefix == "callscribe" and defaults.refresh == "wait_for" and defaults.analytics_file is None
    assert defaults.grpc_address.endswith(":50054")


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "elasticsearch_url"),
        ({"INDEXER_ELASTICSEARCH_URL": "es:9200"}, "http:// or https://"),
        ({**BASE_ENV, "INDEXER_INDEX_PREFIX": "CallScribe"}, "index_prefix"),
        ({**BASE_ENV, "INDEXER_INDEX_PREFIX": "cs-"}, "index_prefix"),
        ({**BASE_ENV, "INDEXER_ELASTICSEARCH_USERNAME": "u"}, "username and elasticsearch_password"),
        (
            {
                **BASE_ENV,
                "INDEXER_ELASTICSEARCH_USERNAME": "u",
                "INDEXER_ELASTICSEARCH_PASSWORD": "p",
                "INDEXER_ELASTICSEARCH_API_KEY": "k",
            },
            "not both",
        ),  # fmt: skip
        ({**BASE_ENV, "INDEXER_ELASTICSEARCH_CA_CERT": "/nonexistent/ca.pem"}, "does not exist"),
        ({**BASE_ENV, "INDEXER_ANALYTICS_FILE": "/nonexistent/a.json"}, "does not exist"),
        ({**BASE_ENV, "INDEXER_REFRESH": "sometimes"}, "refresh"),
        ({**BASE_ENV, "INDEXER_ELASTICSEARCH_API_COMPAT": "7"}, "elasticsearch_api_compat"),
        ({**BASE_ENV, "INDEXER_REFRESH_INTERVAL": "soon"}, "refresh_interval"),
    ],
)
def test_bad_settings_are_refused(monkeypatch, indexer_tenants, env: dict[str, str], complaint: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as err:
        settings_from_env(monkeypatch, indexer_tenants, **env)
    assert complaint in str(err.value)


# --------------------------------------------------------------------------- the service's enricher


def test_make_enricher_uses_what_is_installed(monkeypatch, indexer_tenants) -> None:  # type: ignore[no-untyped-def]
    settings = settings_from_env(monkeypatch, indexer_tenants, **BASE_ENV)
    enricher = enrich.make_enricher(settings)
    call = make_call(utterances=REFUND_ZH)
    enricher(call, "simplified")
    assert all(u.normalized_text for u in call.utterances)
    has_analytics = enrich._optional_module("callscribe.indexer.analytics", ("load_config", "analyze")) is not None
    assert call.HasField("analytics") == has_analytics


def test_enricher_parts_that_are_not_built_are_skipped() -> None:
    assert enrich._optional_module("callscribe.indexer.not_built_yet", ("anything",)) is None
    assert enrich._optional_module("callscribe.indexer.documents", ("NoSuchThing",)) is None
    assert enrich._optional_module("callscribe.indexer.documents", ("call_document",)) is documents
    call = make_call(utterances=HOURS_EN)
    enrich.copy_text(call)
    assert [u.normalized_text for u in call.utterances] == [u.text for u in call.utterances]
    assert enrich.utterance_language(call.utterances[0], call) == "zh"


# --------------------------------------------------------------------------- diarized mono calls (issue 17.3)


def _diarized_call() -> pb.Call:
    call = make_call(layout=c.CHANNEL_LAYOUT_MONO, language=c.LANGUAGE_EN)
    call.diarization.CopyFrom(
        c.Diarization(
            status=c.DIARIZATION_STATUS_DIARIZED,
            agent_rule="first_speaker",
            voice_similarity=0.7,
            model="resemblyzer-0.1.4-voice-encoder",
            speakers=[
                c.SpeakerSpeech(speaker=1, role=c.SPEAKER_ROLE_AGENT, speech_ms=4000, segment_count=1),
                c.SpeakerSpeech(speaker=2, role=c.SPEAKER_ROLE_CUSTOMER, speech_ms=3000, segment_count=1),
            ],
        )
    )
    call.utterances.add(
        channel=0, role=c.SPEAKER_ROLE_AGENT, start_ms=0, end_ms=4000, text="Good morning, how can I help?",
        speaker=1, role_confidence=0.97, language=c.LANGUAGE_EN,
    )  # fmt: skip
    call.utterances.add(
        channel=0, role=c.SPEAKER_ROLE_CUSTOMER, start_ms=4500, end_ms=7500, text="I was charged twice.",
        speaker=2, role_confidence=0.91, language=c.LANGUAGE_EN,
    )  # fmt: skip
    return call


def test_indices_of_an_older_mapping_take_the_diarization_fields(es_server, indexer_tenants, es) -> None:  # type: ignore[no-untyped-def]
    """A tenant index created before mapping version 2 (no diarization fields) gets them when the indexer
    first uses the tenant, and a diarized call is then written and read back whole."""
    old = {kind: mappings.mappings(kind) for kind in mappings.KINDS}
    old["calls"]["properties"] = {k: v for k, v in old["calls"]["properties"].items() if k != "diarization"}
    old["utterances"]["properties"] = {
        k: v for k, v in old["utterances"]["properties"].items() if k not in ("speaker", "role_confidence")
    }
    for kind in mappings.KINDS:
        es.indices.create(
            index=f"upgr-{kind}-acme-000001",
            mappings=old[kind],
            aliases={f"upgr-{kind}-acme": {"is_write_index": True}},
        )
    store = new_store(es_server.url, indexer_tenants, index_prefix="upgr")
    store.connect()
    call = indexed(_diarized_call())
    store.index_call(Tenant("acme"), call)  # the tenant's first use adds the fields to its indices
    for kind in mappings.KINDS:
        props = es.indices.get_mapping(index=f"upgr-{kind}-acme-000001")[f"upgr-{kind}-acme-000001"]["mappings"]
        wanted = ("diarization",) if kind == "calls" else ("speaker", "role_confidence")
        assert all(name in props["properties"] for name in wanted), props["properties"].keys()
    back = store.get_call("acme", call.recording_id)
    assert back.diarization == call.diarization
    assert [(u.speaker, round(u.role_confidence, 2), u.role) for u in back.utterances] == [
        (1, 0.97, c.SPEAKER_ROLE_AGENT),
        (2, 0.91, c.SPEAKER_ROLE_CUSTOMER),
    ]
