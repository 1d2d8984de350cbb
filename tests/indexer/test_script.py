"""Chinese scripts (issue 17): the output script setting, conversion before ITN, script-blind analytics and search.

Whisper writes Mandarin mostly in Traditional characters (謝謝, 營業), Paraformer in Simplified ones. The tenant's
`zh_script` (else INDEXER_ZH_SCRIPT, default simplified) says which script normalized text is written in; the
recognized text is kept as it came. Keyword lists, QA rules, backchannels and sentiment compare text folded to
Simplified, and search finds a call in either script with a query in either script, on the real noida-db.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from elasticsearch import ApiError, Elasticsearch
from prometheus_client import CollectorRegistry

from callscribe.indexer import enrich, mappings, script
from callscribe.indexer.analytics import analyze, load_config
from callscribe.indexer.es.client import make_client
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.indexer.store import EsStore
from callscribe.indexer.text import TextNormalizer
from callscribe.kit.tenants import Tenant, TenantRegistry
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

from .conftest import AGENT, CUSTOMER, Indexer, StartIndexer, TenantsFile, indexer_settings, make_call, new_agent

# A call as Whisper wrote it (Traditional) and the same call as Paraformer wrote it (Simplified).
HANT = [
    (0, AGENT, 0, 2_000, "您好，歡迎致電客服中心，請問有什麼可以幫您？"),
    (1, CUSTOMER, 2_500, 6_000, "我上個月被多扣了錢，我要退費，你們營業到幾點？"),
    (0, AGENT, 6_500, 9_000, "我們營業到下午五點，我幫您辦理退費"),
    (1, CUSTOMER, 9_500, 11_000, "好的，謝謝"),
    (0, AGENT, 11_500, 13_000, "感謝您的來電，再見"),
]
HANS = [
    (0, AGENT, 0, 2_000, "您好，欢迎致电客服中心，请问有什么可以帮您？"),
    (1, CUSTOMER, 2_500, 6_000, "我上个月被多扣了钱，我要退费，你们营业到几点？"),
    (0, AGENT, 6_500, 9_000, "我们营业到下午五点，我帮您办理退费"),
    (1, CUSTOMER, 9_500, 11_000, "好的，谢谢"),
    (0, AGENT, 11_500, 13_000, "感谢您的来电，再见"),
]


@pytest.fixture(scope="module")
def tn() -> TextNormalizer:
    return TextNormalizer()


# --------------------------------------------------------------------------- the setting


def test_tenants_file_and_settings_name_the_script(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    tenants = {"a": {"token_sha256": ["00" * 32]}, "b": {"token_sha256": ["11" * 32], "zh_script": "traditional_tw"}}
    path.write_text(json.dumps({"tenants": tenants}))
    registry = TenantRegistry.load(path)
    assert registry.get("a") == Tenant("a")  # no zh_script: the indexer's default
    assert registry.get("a").zh_script is None  # type: ignore[union-attr]
    assert registry.get("b").zh_script == "traditional_tw"  # type: ignore[union-attr]
    tenants["b"]["zh_script"] = "hanzi"
    path.write_text(json.dumps({"tenants": tenants}))
    with pytest.raises(ValueError, match="tenant b: zh_script must be one of simplified, traditional, .*as_recognized"):
        TenantRegistry.load(path)

    base: dict[str, Any] = {"elasticsearch_url": "http://es:9200", "tenants_file": path.with_name("absent.json")}
    path.with_name("absent.json").write_text(json.dumps({"tenants": {"a": {"token_sha256": ["00" * 32]}}}))
    assert IndexerSettings(**base).zh_script == "simplified"
    assert IndexerSettings(**base, zh_script="as_recognized").zh_script == "as_recognized"
    with pytest.raises(ValueError, match="zh_script must be one of"):
        IndexerSettings(**base, zh_script="Traditional")


# --------------------------------------------------------------------------- conversion


def test_conversion_and_fold() -> None:
    assert script.to_script("谢谢，营业到下午五点", "traditional") == "謝謝，營業到下午五點"
    assert script.to_script("謝謝，營業到下午五點", "simplified") == "谢谢，营业到下午五点"
    assert script.to_script("裡面", "traditional_tw") == "裡面" and script.to_script("里面", "traditional_tw") == "裡面"
    assert script.to_script("謝謝", "as_recognized") == "謝謝"
    assert script.to_script("thank you, 12:30", "traditional") == "thank you, 12:30"
    # one Simplified form for Traditional, Taiwan and Hong Kong variants, and Simplified itself
    for text in ("謝謝營業著急衞生", "谢谢营业着急卫生"):
        assert script.fold(text) == "谢谢营业着急卫生"
    for text in ("頭髮一百一十九萬", "您好，請問有什麼可以幫您", "打到裏面 裡面 里面", "谢谢"):
        folded = script.fold(text)
        assert script.fold(folded) == folded and len(folded) == len(text)
    assert script.written_in("營業到下午五點") == "traditional" and script.written_in("营业到下午五点") == "simplified"
    assert script.written_in("中文 hello") == "simplified"  # nothing convertible
    with pytest.raises(ValueError, match="zh_script must be one of"):
        script.to_script("谢谢", "hant")


def test_itn_reads_one_script_and_writes_the_chosen_one(tn: TextNormalizer) -> None:
    """到下午五點 was normalized to 到下午5点 (the digit from ITN, 点 in Simplified inside a Traditional sentence)."""
    for recognized in ("到下午五點", "到下午五点"):
        assert tn.normalize(recognized, "zh", "simplified") == "到下午5点。"
        assert tn.normalize(recognized, "zh", "traditional") == "到下午5點。"
        assert tn.normalize(recognized, "zh", "traditional_hk") == "到下午5點。"
    assert tn.normalize("到下午五點", "zh", "as_recognized") == "到下午5點。"
    assert tn.normalize("到下午五点", "zh", "as_recognized") == "到下午5点。"
    # ITN's grammars read Simplified: a Traditional amount is read (it was left as 158塊五 before)
    assert tn.normalize("一共是一百五十八塊五", "zh", "as_recognized") == "一共是158.5元。"
    assert tn.normalize("一共是一百五十八塊五", "zh", "simplified") == "一共是158.5元。"
    assert tn.normalize("好的一共是一百五十八塊五", "zh", "traditional") == "好的，一共是158.5元。"
    assert tn.normalize("一百一十九萬零九塊錢", "auto", "traditional") == "1190009塊錢。"
    # what ITN did not touch keeps the recognized characters (a round trip through Simplified would not)
    assert tn.normalize("頭髮裡面有一根白的", "zh", "traditional_tw") == "頭髮裡面有一根白的。"
    assert tn.normalize("呃我想問一下", "zh", "as_recognized") == "我想問一下。"
    # English and Japanese are neither converted nor read as Chinese
    assert tn.normalize("It costs eighty five dollars.", "en", "traditional") == "It costs $85."
    assert tn.normalize("営業は五時までです", "auto", "simplified") == "営業は五時までです"
    # never mixed: the result is unchanged by a conversion to its own script
    for recognized in ("您好請問有什麼可以幫您", "營業時間是早上九點到下午五點半", "退費三百塊已經到賬了嗎"):
        hans = tn.normalize(recognized, "zh", "simplified")
        hant = tn.normalize(recognized, "zh", "traditional")
        assert script.to_script(hans, "simplified") == hans and script.to_script(hant, "traditional") == hant
        assert script.fold(hans) == script.fold(hant)


def test_long_utterance_is_restored_in_linear_time(tn: TextNormalizer) -> None:
    """A 20,000-character utterance (the largest IndexCall takes): difflib's matcher took over 3 minutes."""
    sentence = "您好，請問有什麼可以幫您？我上個月被多扣了三百塊，一共是一百五十八塊五，營業到下午五點，謝謝。"
    recognized = (sentence * 420)[:20_000]
    read = script.itn_form(recognized)
    written = tn.itn(read, "zh")
    started = time.perf_counter()
    restored = script.restore(recognized, read, written, "s2t")
    assert time.perf_counter() - started < 10
    assert restored == script.to_script(written, "traditional")
    assert restored.startswith("您好，請問有什麼可以幫您？我上個月被多扣了300塊，一共是158.5元，營業到下午5點，謝謝。")


# --------------------------------------------------------------------------- analytics


def _call(rows: list[tuple[int, int, int, int, str]], normalized: bool = True) -> pb.Call:
    call = make_call(utterances=rows)
    for u in call.utterances:
        u.normalized_text = u.text if normalized else ""
    return call


def test_simplified_keywords_and_qa_rules_match_a_traditional_transcript() -> None:
    config = load_config(None)  # the built-in lists are written in Simplified characters
    hant, hans = analyze(_call(HANT), config), analyze(_call(HANS), config)
    lists = {(h.list, h.role) for h in hant.keyword_hits}
    assert {("greeting", AGENT), ("closing", AGENT), ("refund", CUSTOMER), ("refund", AGENT)} <= lists
    assert [(h.list, h.phrase) for h in hant.keyword_hits] == [(h.list, h.phrase) for h in hans.keyword_hits]
    refund = next(h for h in hant.keyword_hits if h.list == "refund")
    assert (refund.phrase, refund.matched) == ("退费", "退費")  # matched as the transcript shows it
    assert hant.qa.score == hans.qa.score == 100 and not hant.qa.deductions  # greeting and closing were said
    assert hant.sentiment == pytest.approx(hans.sentiment)
    assert [u.sentiment for u in _scored(HANT)] == pytest.approx([u.sentiment for u in _scored(HANS)])
    # a forbidden phrase written in Simplified costs points when the agent says it in Traditional
    rude = analyze(_call([*HANT, (0, AGENT, 13_500, 15_000, "不關我的事，你自己看著辦")]), config)
    assert [d.rule for d in rude.qa.deductions] == ["forbidden:forbidden", "forbidden:forbidden"]
    assert '"不關我的事"' in rude.qa.deductions[0].reason
    # backchannels too: 對對 (Traditional) is 对对, never an interruption however long it overlaps
    backchannel = [(0, AGENT, 0, 10_000, "請您提供一下訂單號"), (1, CUSTOMER, 2_000, 3_500, "對對")]
    assert analyze(_call(backchannel), config).interruption_count == 0


def _scored(rows: list[tuple[int, int, int, int, str]]) -> list[pb.Utterance]:
    call = _call(rows)
    analyze(call, load_config(None))
    return list(call.utterances)


def test_traditional_phrases_of_an_analytics_file_match_simplified_text(tmp_path: Path) -> None:
    path = tmp_path / "analytics.json"
    config = {"keywords": {"refund": ["退費"], "hours": ["營業時間"]}, "backchannels": ["對"]}
    path.write_text(json.dumps(config, ensure_ascii=False))
    call = _call([*HANS, (1, CUSTOMER, 13_500, 15_000, "营业时间是几点")])
    result = analyze(call, load_config(path))
    found = {(h.list, h.phrase, h.matched) for h in result.keyword_hits}
    assert ("refund", "退費", "退费") in found and ("hours", "營業時間", "营业时间") in found


def test_enricher_writes_the_tenants_script_and_keeps_the_recognized_text(indexer_tenants: TenantsFile) -> None:
    enricher = enrich.make_enricher(indexer_settings("http://es:9200", indexer_tenants))
    expected_in = {
        "simplified": "我们营业到下午5点，我帮您办理退费",
        "traditional": "我們營業到下午5點，我幫您辦理退費",
    }
    for zh_script, expected in expected_in.items():
        call = make_call(utterances=HANT)
        enricher(call, zh_script)
        assert [u.text for u in call.utterances] == [row[4] for row in HANT]  # the recognized text, as it came
        assert call.utterances[2].normalized_text == expected
        assert {h.list for h in call.analytics.keyword_hits} >= {"greeting", "closing", "refund"}
    with pytest.raises(ValueError, match="zh_script"):
        enricher(make_call(utterances=HANT), "Traditional")
    # only Chinese is converted: a Japanese utterance keeps its kanji (営業 is not 营业)
    call = make_call(language=c.LANGUAGE_AUTO, utterances=[(0, AGENT, 0, 2_000, "営業は五時までです")])
    enricher(call, "simplified")
    assert call.utterances[0].normalized_text == "営業は五時までです"


# --------------------------------------------------------------------------- documents and queries


def test_documents_carry_the_simplified_form_only_where_it_differs() -> None:
    from callscribe.indexer import documents

    hant, hans = _call(HANT), _call(HANS)
    doc = documents.call_document(hant)
    assert doc["transcript_simplified"] == documents.call_document(hans)["transcript"]
    assert doc["transcript"].startswith("您好，歡迎致電")  # the stored text is the recognized one
    assert "transcript_simplified" not in documents.call_document(hans)
    utterance = documents.split_id(documents.utterance_documents(hant)[1])[1]
    assert utterance["text_simplified"] == HANS[1][4] and utterance["text"] == HANT[1][4]
    for texts, properties in (
        (mappings.CALL_TEXT_FIELDS, mappings.CALL_MAPPINGS),
        (mappings.UTTERANCE_TEXT_FIELDS, mappings.UTTERANCE_MAPPINGS),
    ):
        assert {mappings.folded(name) for name in texts} <= set(properties)


def test_keyword_filter_takes_a_phrase_in_either_script() -> None:
    from callscribe.indexer import query as qb

    assert set(qb.script_variants("退費")) >= {"退費", "退费"}
    assert set(qb.script_variants("退费")) >= {"退費", "退费"}
    assert qb.script_variants("closing") == ["closing"]
    assert qb.transplant("营业到<em>下午</em><em>五点</em>", "營業到下午五點") == "營業到<em>下午</em><em>五點</em>"
    assert qb.transplant("<em>营业</em>", "營業時間") is None  # not the whole folded text: not put anywhere


# --------------------------------------------------------------------------- search, on the real noida-db


def test_search_is_script_blind(indexer: Indexer) -> None:
    agent = new_agent()
    hant = make_call(agent_id=agent, utterances=HANT, started_at="2024-05-02T10:00:00Z")
    hans = make_call(agent_id=agent, utterances=HANS, started_at="2024-05-01T10:00:00Z")
    indexer.index(hant)
    indexer.index(hans)
    both = {hant.recording_id, hans.recording_id}
    for query in ("谢谢", "謝謝", "营业 退费", "營業 退費", "营业 退費"):
        found = indexer.search(query=query, agent_id=agent)
        assert {h.recording_id for h in found.hits} == both, query
    # highlights are on the stored text, in its own script, whatever the query's
    for query in ("营业", "營業"):
        found = indexer.search(query=query, agent_id=agent)
        shown = {h.recording_id: [(u.text, u.highlight) for u in h.utterances] for h in found.hits}
        hant_row, hans_row = HANT[2][4], HANS[2][4]
        assert (hant_row, hant_row.replace("營業", "<em>營業</em>")) in shown[hant.recording_id]
        assert (hans_row, hans_row.replace("营业", "<em>营业</em>")) in shown[hans.recording_id]
    # by role too
    found = indexer.search(query="謝謝", agent_id=agent, role=CUSTOMER)
    assert {h.recording_id for h in found.hits} == both
    assert not indexer.search(query="謝謝", agent_id=agent, role=AGENT).hits
    # the call as stored: the recognized text, as it came
    assert [u.text for u in indexer.get(hant.recording_id).utterances] == [row[4] for row in HANT]
    # the tenant's script reached the enricher (acme has none: the default)
    assert indexer.enricher.scripts[hant.recording_id] == "simplified"
    other = make_call(tenant="hant", agent_id=agent, utterances=HANS)
    indexer.index(other)
    assert indexer.enricher.scripts[other.recording_id] == "traditional"
    assert [h.recording_id for h in indexer.search("hant", query="謝謝", agent_id=agent).hits] == [other.recording_id]


def test_service_normalizes_in_each_tenants_script(start_indexer: StartIndexer) -> None:
    """The service's own enricher: acme has no zh_script (simplified), hant's is traditional."""
    service = start_indexer(real_enricher=True)
    agent = new_agent()
    calls = {tenant: make_call(tenant=tenant, agent_id=agent, utterances=HANT) for tenant in ("acme", "hant")}
    for call in calls.values():
        service.index(call)
    acme, hant = (service.get(calls[t].recording_id, tenant=t) for t in ("acme", "hant"))
    for got in (acme, hant):
        assert [u.text for u in got.utterances] == [row[4] for row in HANT]
    assert acme.utterances[2].normalized_text == "我们营业到下午5点，我帮您办理退费"
    assert hant.utterances[2].normalized_text == "我們營業到下午5點，我幫您辦理退費"
    for got in (acme, hant):  # keyword lists written in Simplified matched the Traditional transcript
        assert {h.list for h in got.analytics.keyword_hits} >= {"greeting", "closing", "refund"}
        assert got.analytics.qa.score == got.analytics.qa.max_score
    for tenant in ("acme", "hant"):
        for query in ("5点 退费", "5點 退費"):
            found = service.search(tenant, query=query, agent_id=agent)
            assert [h.recording_id for h in found.hits] == [calls[tenant].recording_id], (tenant, query)
        for keyword in ("退费", "退費"):
            found = service.search(tenant, keyword=keyword, agent_id=agent)
            assert [h.recording_id for h in found.hits] == [calls[tenant].recording_id], (tenant, keyword)
    # An upload's own script wins over its tenant's; one the indexer does not know is refused.
    own = make_call(tenant="acme", agent_id=agent, utterances=HANS)
    own.metadata.zh_script = "traditional_tw"
    service.index(own)
    assert service.get(own.recording_id).utterances[2].normalized_text == "我們營業到下午5點，我幫您辦理退費"
    wrong = make_call(tenant="acme", agent_id=agent, utterances=HANS)
    wrong.metadata.zh_script = "klingon"
    with pytest.raises(grpc.RpcError) as err:
        service.index(wrong)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata.zh_script 'klingon'" in err.value.details()


def test_indices_of_the_previous_mapping_get_the_simplified_fields(es_server, indexer_tenants: TenantsFile) -> None:  # type: ignore[no-untyped-def]
    """Indices created before the `*_simplified` fields (mapping version 1, two backing indices) are given them
    when the tenant is set up, so the new documents fit them."""
    es = Elasticsearch(es_server.url)
    prefix = "scriptmig"
    try:
        for kind in mappings.KINDS:
            old = mappings.mappings(kind)
            old["properties"] = {k: v for k, v in old["properties"].items() if not k.endswith(mappings.FOLDED_SUFFIX)}
            old["_meta"]["mapping_version"] = 1
            alias = f"{prefix}-{kind}-acme"
            es.indices.create(index=f"{alias}-000001", mappings=old, aliases={alias: {"is_write_index": False}})
            es.indices.create(index=f"{alias}-000002", mappings=old, aliases={alias: {"is_write_index": True}})
        settings = indexer_settings(es_server.url, indexer_tenants, index_prefix=prefix)
        store = EsStore(make_client(settings), settings, IndexerMetrics(CollectorRegistry()))
        call = _call(HANT)
        call.indexed_at.FromJsonString("2024-05-02T00:00:00Z")
        store.index_call(Tenant("acme"), call)
        for kind in mappings.KINDS:
            found = es.indices.get_mapping(index=f"{prefix}-{kind}-acme").body
            assert len(found) == 2
            for index in found.values():
                assert index["mappings"]["properties"] == mappings.mappings(kind)["properties"]
                assert index["mappings"]["_meta"]["mapping_version"] == mappings.MAPPING_VERSION
        from callscribe.indexer import query as qb

        q = qb.parse_search(pb.SearchRequest(query="谢谢"), "acme")
        assert [h.recording_id for h in store.search(q, 10, "").hits] == [call.recording_id]
        store.client.close()
    finally:
        names = [f"{prefix}-{kind}-acme-00000{n}" for kind in mappings.KINDS for n in (1, 2)]
        es.indices.delete(index=",".join(names), ignore_unavailable=True)
        es.close()


LIFECYCLE_FIELDS = ("moved_at", "integrity", "verified_at")


def test_indices_of_mapping_version_3_get_the_lifecycle_fields(es_server, indexer_tenants: TenantsFile) -> None:  # type: ignore[no-untyped-def]
    """Indices created before the storage lifecycle fields (mapping version 3, two backing indices, a call indexed
    in the older one) are given them when the tenant is first set up, here by UpdateStorage: the partial update
    fits the strict mapping, and the fields read back and filter."""
    from callscribe.indexer import documents
    from callscribe.indexer import query as qb

    es = Elasticsearch(es_server.url)
    prefix = "lifemig"
    try:
        for kind in mappings.KINDS:
            old = mappings.mappings(kind)
            old["properties"] = {k: v for k, v in old["properties"].items() if k not in LIFECYCLE_FIELDS}
            old["_meta"]["mapping_version"] = 3
            alias = f"{prefix}-{kind}-acme"
            es.indices.create(index=f"{alias}-000001", mappings=old, aliases={alias: {"is_write_index": False}})
            es.indices.create(index=f"{alias}-000002", mappings=old, aliases={alias: {"is_write_index": True}})
        call = _call(HANS)
        call.indexed_at.FromJsonString("2024-05-02T00:00:00Z")
        # As an indexer of mapping version 3 wrote it, before the rollover.
        es.index(index=f"{prefix}-calls-acme-000001", id=call.recording_id, document=documents.call_document(call))
        for doc in documents.utterance_documents(call):
            doc_id, body = documents.split_id(doc)
            es.index(index=f"{prefix}-utterances-acme-000001", id=doc_id, document=body)
        es.indices.refresh(index=f"{prefix}-*")
        with pytest.raises(ApiError):  # what a version 4 write met before the migration
            es.update(index=f"{prefix}-calls-acme-000001", id=call.recording_id, doc={"integrity": "INTEGRITY_OK"})

        settings = indexer_settings(es_server.url, indexer_tenants, index_prefix=prefix)
        store = EsStore(make_client(settings), settings, IndexerMetrics(CollectorRegistry()))
        request = pb.UpdateStorageRequest(recording_id=call.recording_id, integrity=c.INTEGRITY_MISMATCH)
        request.verified_at.FromJsonString("2024-06-01T00:00:00Z")
        store.update_storage(Tenant("acme"), call.recording_id, documents.storage_fields(request), None)

        for kind in mappings.KINDS:
            found = es.indices.get_mapping(index=f"{prefix}-{kind}-acme").body
            assert len(found) == 2
            for index in found.values():
                assert index["mappings"]["properties"] == mappings.mappings(kind)["properties"]
                assert index["mappings"]["_meta"]["mapping_version"] == mappings.MAPPING_VERSION == 4
        got = store.get_call("acme", call.recording_id)
        assert got.integrity == c.INTEGRITY_MISMATCH
        assert got.verified_at.ToJsonString() == "2024-06-01T00:00:00Z"
        assert len(got.utterances) == len(HANS)
        q = qb.parse_search(pb.SearchRequest(integrity=c.INTEGRITY_MISMATCH), "acme")
        assert [h.recording_id for h in store.search(q, 10, "").hits] == [call.recording_id]
        store.client.close()
    finally:
        names = [f"{prefix}-{kind}-acme-00000{n}" for kind in mappings.KINDS for n in (1, 2)]
        es.indices.delete(index=",".join(names), ignore_unavailable=True)
        es.close()
