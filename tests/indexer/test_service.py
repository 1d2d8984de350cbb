"""IndexerService over gRPC on the real noida-db: index, read back, search, filters, paging, export, tenants."""

from __future__ import annotations

import grpc
import pytest

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

from .conftest import (
    AGENT,
    CUSTOMER,
    HOURS_EN,
    MIXED,
    REFUND_EN,
    REFUND_ZH,
    Indexer,
    analytics,
    make_call,
    new_agent,
    new_id,
    pipeline_auth,
)


def ts(value: str):  # type: ignore[no-untyped-def]
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromJsonString(value)
    return out


def utterance_docs(indexer: Indexer, recording_id: str) -> list[dict]:
    found = indexer.es.search(
        index=f"{indexer.settings.index_prefix}-utterances-acme",
        query={"term": {"recording_id": recording_id}},
        size=1000,
    )
    return [{"_id": h["_id"], "_index": h["_index"], **h["_source"]} for h in found["hits"]["hits"]]


def ids_of(response: pb.SearchResponse) -> list[str]:
    return [h.recording_id for h in response.hits]


# --------------------------------------------------------------------------- index and read back


def test_index_then_get_call_round_trips(indexer: Indexer) -> None:
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH, labels={"queue": "billing", "vip": "yes"})
    planted = analytics(hits=[("refund", "退费")], longest_silence_ms=1_200, interruptions=2, qa_score=80)
    indexer.enricher.plant(call.recording_id, planted)

    reply = indexer.index(call)
    assert reply.recording_id == call.recording_id
    assert reply.utterances_indexed == len(REFUND_ZH)

    got = indexer.get(call.recording_id)
    assert got.HasField("indexed_at") and got.indexed_at.seconds > 1_700_000_000
    expected = pb.Call()
    expected.CopyFrom(call)
    expected.indexed_at.CopyFrom(got.indexed_at)
    expected.analytics.CopyFrom(planted)
    for u in expected.utterances:  # what the enricher did
        u.normalized_text = u.text.replace("三百", "300")
        u.sentiment = -0.5 if "退费" in u.text else 0.25
    assert got == expected
    assert got.utterances[1].normalized_text == "我上个月被多扣了300块,我要退费"


def test_call_document_fields_as_agreed(indexer: Indexer) -> None:
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH)
    indexer.enricher.plant(call.recording_id, analytics(hits=[("refund", "退费"), ("required", "感谢来电")]))
    indexer.index(call)
    doc = indexer.es.get(index=f"{indexer.settings.index_prefix}-calls-acme", id=call.recording_id)["_source"]
    assert doc["tenant"] == "acme" and doc["language"] == "LANGUAGE_ZH" and doc["tier"] == "STORAGE_TIER_HOT"
    assert doc["channel_layout"] == "CHANNEL_LAYOUT_STEREO_AGENT_LEFT"
    assert doc["started_at"] == "2024-05-01T10:00:00.000Z"
    assert doc["object"] == {"bucket": "callscribe-hot", "key": call.object.key, "version_id": "v1"}
    assert doc["sha256"] == "ab" * 32
    assert doc["audio"]["sample_rate_hz"] == 8000 and doc["duration_ms"] == 60_000
    assert doc["utterance_count"] == 4
    assert doc["transcript_agent"].startswith("您好") and "退费" in doc["transcript_customer"]
    assert "300块" in doc["transcript_normalized"] and "三百块" in doc["transcript"]
    assert doc["keywords"] == ["感谢来电", "退费"] and doc["keyword_lists"] == ["refund", "required"]
    assert doc["analytics"]["keyword_hits"][0]["role"] == "SPEAKER_ROLE_CUSTOMER"
    assert doc["analytics"]["agent_talk_ratio"] == 0.47  # float32 stored by its shortest decimal
    utts = sorted(utterance_docs(indexer, call.recording_id), key=lambda d: d["start_ms"])
    assert [d["_id"] for d in utts] == [f"{call.recording_id}:{ch}:{s}" for ch, _, s, _, _ in REFUND_ZH]
    second = utts[1]
    assert second["role"] == "SPEAKER_ROLE_CUSTOMER" and second["channel"] == 1
    assert second["started_at"] == "2024-05-01T10:00:00.000Z" and second["at"] == "2024-05-01T10:00:02.500Z"
    assert second["agent_id"] == call.metadata.agent_id and second["call_id"] == call.metadata.call_id
    assert second["engine"] == "paraformer" and second["confidence"] == 0.875 and second["sentiment"] == -0.5


def test_reindexing_never_duplicates_and_drops_removed_utterances(indexer: Indexer) -> None:
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH)
    for _ in range(3):
        assert indexer.index(call).utterances_indexed == 4
    docs = utterance_docs(indexer, call.recording_id)
    assert len(docs) == 4 and len({d["_id"] for d in docs}) == 4
    calls = indexer.es.count(
        index=f"{indexer.settings.index_prefix}-calls-acme", query={"term": {"recording_id": call.recording_id}}
    )
    assert calls["count"] == 1

    # A re-run with fewer utterances (and one text changed): the missing ones go, the changed one is updated.
    shorter = make_call(recording_id=call.recording_id, agent_id=call.metadata.agent_id, utterances=REFUND_ZH[:2])
    shorter.utterances[0].text = "您好,客服中心"
    indexer.index(shorter)
    docs = sorted(utterance_docs(indexer, call.recording_id), key=lambda d: d["start_ms"])
    assert [d["start_ms"] for d in docs] == [0, 2_500]
    assert docs[0]["text"] == "您好,客服中心"
    assert len(indexer.get(call.recording_id).utterances) == 2
    assert indexer.metric("callscribe_indexer_documents_deleted_total") >= 2
    hits = indexer.search(query="查一下", agent_id=call.metadata.agent_id)
    assert hits.total == 0  # the removed utterance's words are no longer found


def test_reindex_after_rollover_overwrites_in_place(start_indexer) -> None:  # type: ignore[no-untyped-def]
    idx = start_indexer(index_prefix="roll")
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH[:3])
    idx.index(call)
    for kind in ("calls", "utterances"):
        rolled = idx.es.indices.rollover(alias=f"roll-{kind}-acme")
        assert rolled["rolled_over"] and rolled["new_index"] == f"roll-{kind}-acme-000002"
    again = make_call(recording_id=call.recording_id, agent_id=call.metadata.agent_id, utterances=REFUND_ZH)
    idx.index(again)
    docs = sorted(utterance_docs(idx, call.recording_id), key=lambda d: d["start_ms"])
    assert len(docs) == 4
    # The three that existed stay in the first backing index; only the new one goes to the write index.
    assert [d["_index"] for d in docs] == ["roll-utterances-acme-000001"] * 3 + ["roll-utterances-acme-000002"]
    found = idx.es.search(index="roll-calls-acme", query={"ids": {"values": [call.recording_id]}})["hits"]["hits"]
    assert [h["_index"] for h in found] == ["roll-calls-acme-000001"]
    assert found[0]["_source"]["utterance_count"] == 4
    assert len(idx.get(call.recording_id).utterances) == 4
    # A call indexed now goes to the new write index.
    fresh = make_call(agent_id=call.metadata.agent_id, utterances=HOURS_EN)
    idx.index(fresh)
    found = idx.es.search(index="roll-calls-acme", query={"ids": {"values": [fresh.recording_id]}})["hits"]["hits"]
    assert [h["_index"] for h in found] == ["roll-calls-acme-000002"]
    assert set(idx.find([call.recording_id, fresh.recording_id])) == {call.recording_id, fresh.recording_id}


def test_call_without_utterances_or_start_time(indexer: Indexer) -> None:
    agent = new_agent()
    silent = make_call(agent_id=agent, started_at="")
    assert indexer.index(silent).utterances_indexed == 0
    got = indexer.get(silent.recording_id)
    assert not got.metadata.HasField("started_at") and len(got.utterances) == 0
    dated = make_call(agent_id=agent, utterances=HOURS_EN)
    indexer.index(dated)
    # Newest first; a call without a start time comes last.
    assert ids_of(indexer.search(agent_id=agent)) == [dated.recording_id, silent.recording_id]


# --------------------------------------------------------------------------- search


def test_search_chinese_and_english_with_highlights(indexer: Indexer) -> None:
    agent = new_agent()
    zh = make_call(agent_id=agent, utterances=REFUND_ZH)
    en = make_call(agent_id=agent, language=c.LANGUAGE_EN, utterances=REFUND_EN)
    other = make_call(agent_id=agent, language=c.LANGUAGE_EN, utterances=HOURS_EN)
    for call in (zh, en, other):
        indexer.index(call)

    found = indexer.search(query="退费", agent_id=agent)
    assert ids_of(found) == [zh.recording_id] and found.total == 1
    hit = found.hits[0]
    assert hit.score > 0 and hit.call_id == zh.metadata.call_id and hit.duration_ms == 60_000
    assert [u.start_ms for u in hit.utterances] == [2_500, 6_500]  # both utterances that say it, in call order
    assert hit.utterances[0].highlight == "我上个月被多扣了300块,我要<em>退费</em>"
    assert hit.utterances[0].text == "我上个月被多扣了300块,我要退费"  # the normalized text is shown
    assert hit.utterances[0].role == CUSTOMER and hit.utterances[1].role == AGENT

    found = indexer.search(query="refund", agent_id=agent)  # English stems: refund matches "refunds" too
    assert ids_of(found) == [en.recording_id]
    highlights = [u.highlight for u in found.hits[0].utterances]
    assert "I can <em>refund</em> the second charge right now" in highlights
    assert any("<em>refunds</em>" in h for h in highlights)

    # ITN output is searchable: the customer said 三百, the index also has 300.
    assert ids_of(indexer.search(query="300", agent_id=agent)) == [zh.recording_id]
    assert ids_of(indexer.search(query="三百", agent_id=agent)) == [zh.recording_id]
    # Every word must be in the call.
    assert ids_of(indexer.search(query="refund Sunday", agent_id=agent)) == []
    assert ids_of(indexer.search(query="opening hours", agent_id=agent)) == [other.recording_id]


def test_search_by_role(indexer: Indexer) -> None:
    agent = new_agent()
    zh = make_call(agent_id=agent, utterances=REFUND_ZH)
    mono = make_call(
        agent_id=agent,
        layout=c.CHANNEL_LAYOUT_MONO,
        utterances=[(0, MIXED, 0, 3_000, "我要退费,好的马上处理")],
    )
    indexer.index(zh)
    indexer.index(mono)
    # "多扣" was said by the customer only.
    assert ids_of(indexer.search(query="多扣", agent_id=agent, role=CUSTOMER)) == [zh.recording_id]
    assert ids_of(indexer.search(query="多扣", agent_id=agent, role=AGENT)) == []
    # 退费: both sides said it in the stereo call; only the agent's utterance is shown for role=AGENT.
    found = indexer.search(query="退费", agent_id=agent, role=AGENT)
    assert ids_of(found) == [zh.recording_id]
    assert [(u.role, u.start_ms) for u in found.hits[0].utterances] == [(AGENT, 6_500)]
    found = indexer.search(query="退费", agent_id=agent, role=MIXED)
    assert ids_of(found) == [mono.recording_id]
    assert [u.role for u in found.hits[0].utterances] == [MIXED]


def test_empty_query_lists_newest_first(indexer: Indexer) -> None:
    agent = new_agent()
    days = ["2024-03-01T09:00:00Z", "2024-03-03T09:00:00Z", "2024-03-02T09:00:00Z"]
    calls = [make_call(agent_id=agent, started_at=d, utterances=HOURS_EN) for d in days]
    for call in calls:
        indexer.index(call)
    found = indexer.search(agent_id=agent)
    assert ids_of(found) == [calls[1].recording_id, calls[2].recording_id, calls[0].recording_id]
    assert found.total == 3 and found.next_page_token == ""
    assert all(h.score == 0 and len(h.utterances) == 0 for h in found.hits)
    assert found.hits[0].started_at == ts("2024-03-03T09:00:00Z")


def test_filters(indexer: Indexer) -> None:
    agent, other_agent = new_agent(), new_agent()
    a = make_call(agent_id=agent, started_at="2024-01-10T08:00:00Z", duration_ms=30_000, utterances=REFUND_ZH)
    b = make_call(
        agent_id=agent,
        started_at="2024-02-10T08:00:00Z",
        duration_ms=300_000,
        language=c.LANGUAGE_EN,
        utterances=REFUND_EN,
    )
    d = make_call(agent_id=agent, started_at="2024-03-10T08:00:00Z", duration_ms=90_000, utterances=REFUND_ZH)
    e = make_call(agent_id=other_agent, started_at="2024-02-11T08:00:00Z", utterances=REFUND_ZH)
    for call in (a, b, d, e):
        indexer.index(call)
    mine = {"agent_id": agent}

    assert set(ids_of(indexer.search(**mine))) == {a.recording_id, b.recording_id, d.recording_id}
    assert ids_of(indexer.search(agent_id=other_agent)) == [e.recording_id]
    window = indexer.search(started_from=ts("2024-02-01T00:00:00Z"), started_to=ts("2024-03-10T08:00:00Z"), **mine)
    assert ids_of(window) == [b.recording_id]  # from inclusive, to exclusive
    assert ids_of(indexer.search(started_from=ts("2024-02-10T08:00:00Z"), **mine)) == [
        d.recording_id,
        b.recording_id,
    ]
    assert ids_of(indexer.search(language=c.LANGUAGE_EN, **mine)) == [b.recording_id]
    assert set(ids_of(indexer.search(language=c.LANGUAGE_ZH, **mine))) == {a.recording_id, d.recording_id}
    assert ids_of(indexer.search(min_duration_ms=60_000, max_duration_ms=120_000, **mine)) == [d.recording_id]
    assert ids_of(indexer.search(min_duration_ms=200_000, **mine)) == [b.recording_id]
    assert ids_of(indexer.search(max_duration_ms=30_000, **mine)) == [a.recording_id]
    assert ids_of(indexer.search(query="退费", started_to=ts("2024-02-01T00:00:00Z"), **mine)) == [a.recording_id]


def test_analytics_filters(indexer: Indexer) -> None:
    agent = new_agent()
    plans = {
        # refund said, closing said, long silence, many interruptions, negative, low QA
        "angry": analytics(
            hits=[("refund", "退费"), ("required", "感谢来电")],
            longest_silence_ms=12_000,
            interruptions=4,
            sentiment_label="negative",
            qa_score=55,
        ),
        # refund said, closing NOT said
        "no_closing": analytics(hits=[("refund", "退费")], longest_silence_ms=3_000, interruptions=1, qa_score=70),
        # a forbidden phrase, closing said
        "rude": analytics(
            hits=[("forbidden", "不知道"), ("required", "感谢来电")], sentiment_label="negative", qa_score=40
        ),
        # nothing special, no QA result at all
        "calm": analytics(hits=[("required", "感谢来电")], sentiment_label="positive"),
    }
    calls = {}
    for name, plan in plans.items():
        call = make_call(agent_id=agent, utterances=REFUND_ZH)
        indexer.enricher.plant(call.recording_id, plan)
        indexer.index(call)
        calls[call.recording_id] = name

    def names(**fields) -> set[str]:  # type: ignore[no-untyped-def]
        return {calls[rid] for rid in ids_of(indexer.search(agent_id=agent, **fields))}

    assert names() == set(plans)
    assert names(keyword="退费") == {"angry", "no_closing"}  # a phrase
    assert names(keyword="refund") == {"angry", "no_closing"}  # a list name
    assert names(keyword="FORBIDDEN") == {"rude"}  # case does not matter
    assert names(missing_keyword="required") == {"no_closing"}
    # "customer said 退费 and the agent never said the closing"
    assert names(keyword="退费", missing_keyword="感谢来电") == {"no_closing"}
    assert names(min_longest_silence_ms=10_000) == {"angry"}
    assert names(min_longest_silence_ms=3_000) == {"angry", "no_closing"}
    assert names(min_interruptions=2) == {"angry"}
    assert names(min_interruptions=1) == {"angry", "no_closing"}
    assert names(sentiment_label="negative") == {"angry", "rude"}
    assert names(sentiment_label="Positive") == {"calm"}
    assert names(min_qa_score=60) == {"no_closing"}
    assert names(max_qa_score=55) == {"angry", "rude"}
    assert names(min_qa_score=50, max_qa_score=60) == {"angry"}
    assert names(max_qa_score=0) == set()  # set to 0 (HasField), not "unset": no call scores 0 or less
    assert names(min_qa_score=0) == {"angry", "no_closing", "rude"}  # calls without a QA result drop out
    assert names(query="退费", keyword="refund", min_interruptions=1, sentiment_label="neutral") == {"no_closing"}
    hit = indexer.search(agent_id=agent, min_longest_silence_ms=10_000).hits[0]
    assert hit.analytics == plans["angry"]


# --------------------------------------------------------------------------- paging and export


def test_paging_with_page_tokens(indexer: Indexer) -> None:
    agent = new_agent()
    calls = []
    for i in range(45):
        text = "我要退费" if i % 3 else "我要退费,退费,马上退费"  # different scores
        call = make_call(
            agent_id=agent,
            started_at=f"2024-04-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            utterances=[(1, CUSTOMER, 0, 2_000, text)],
        )
        indexer.index(call)
        calls.append(call.recording_id)
    for query in ("", "退费"):
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = indexer.search(agent_id=agent, query=query, page_size=10, page_token=token)
            assert page.total == 45
            seen.extend(ids_of(page))
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert pages == 5 and sorted(seen) == sorted(calls) and len(set(seen)) == 45
    default = indexer.search(agent_id=agent)
    assert len(default.hits) == 20 and default.next_page_token  # page_size 0 -> 20
    capped = indexer.search(agent_id=agent, page_size=1000)
    assert len(capped.hits) == 45  # at most 100 per page; all 45 fit
    # A token only continues its own search.
    with pytest.raises(grpc.RpcError) as err:
        indexer.search(agent_id=agent, query="退费", page_token=default.next_page_token)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.value.details()
    for bad in ("garbage!", "eyJ2IjoxfQ", "x" * 40):
        with pytest.raises(grpc.RpcError) as err:
            indexer.search(agent_id=agent, page_token=bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_page_size_cap_is_100(indexer: Indexer) -> None:
    agent = new_agent()
    ops = []
    for i in range(105):
        call = make_call(agent_id=agent, started_at=f"2024-06-01T00:{i // 60:02d}:{i % 60:02d}Z")
        ops.append(call)
    # Written straight through the store (same code as IndexCall) to keep the test quick.
    from callscribe.kit.tenants import Tenant

    for call in ops:
        call.indexed_at.GetCurrentTime()
        indexer.store.index_call(Tenant("acme"), call)
    page = indexer.search(agent_id=agent, page_size=500)
    assert len(page.hits) == 100 and page.total == 105 and page.next_page_token
    rest = indexer.search(agent_id=agent, page_size=500, page_token=page.next_page_token)
    assert len(rest.hits) == 5 and rest.next_page_token == ""


def test_ranked_pages_with_equal_scores_end_at_the_result_window(
    indexer: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free-text results page by offset (equal scores across pages, which once made noida-db repeat a
    search_after page forever) and stop at the result window, `total` still counting every match."""
    from callscribe.indexer import query as qb
    from callscribe.kit.tenants import Tenant

    agent = new_agent()
    for i in range(30):
        call = make_call(
            agent_id=agent, started_at=f"2024-07-01T00:00:{i:02d}Z", utterances=[(1, CUSTOMER, 0, 2_000, "我要退费")]
        )
        call.indexed_at.GetCurrentTime()
        indexer.store.index_call(Tenant("acme"), call)
    monkeypatch.setattr(qb, "MAX_RANKED_RESULTS", 25)
    seen: list[str] = []
    sizes = []
    token = ""
    while True:
        page = indexer.search(agent_id=agent, query="退费", page_size=10, page_token=token)
        assert page.total == 30 and len({h.score for h in page.hits}) == 1
        seen.extend(ids_of(page))
        sizes.append(len(page.hits))
        token = page.next_page_token
        if not token:
            break
        assert len(sizes) < 5, "pages never end"
    assert sizes == [10, 10, 5] and len(set(seen)) == 25


def test_export_streams_every_matching_call(indexer: Indexer) -> None:
    agent = new_agent()
    expected = set()
    for i in range(130):  # the shared indexer exports in pages of 40
        utterances = REFUND_ZH if i % 2 else HOURS_EN
        call = make_call(
            agent_id=agent, started_at=f"2024-07-{1 + i % 28:02d}T00:00:{i % 60:02d}Z", utterances=utterances
        )
        indexer.index(call)
        if i % 2:
            expected.add(call.recording_id)
    exported = indexer.export(agent_id=agent)
    assert len(exported) == 130 and len({x.recording_id for x in exported}) == 130
    starts = [x.metadata.started_at.ToSeconds() for x in exported]
    assert starts == sorted(starts, reverse=True)
    assert all(len(x.utterances) in (len(REFUND_ZH), len(HOURS_EN)) for x in exported)
    refunds = indexer.export(agent_id=agent, query="退费")
    assert {x.recording_id for x in refunds} == expected
    assert all(x.utterances[1].normalized_text.endswith("我要退费") for x in refunds)
    with pytest.raises(grpc.RpcError) as err:
        indexer.export(agent_id=agent, page_token="abc")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------- tenants


def test_tenant_wall(indexer: Indexer) -> None:
    agent = new_agent()
    ours = make_call(tenant="acme", agent_id=agent, utterances=REFUND_ZH)
    theirs = make_call(tenant="globex", agent_id=agent, utterances=REFUND_ZH)
    indexer.index(ours)
    indexer.index(theirs, tenant="globex")

    # acme's token, naming globex: refused whatever the method.
    attempts = [
        lambda: indexer.stub.Search(pb.SearchRequest(tenant="globex", query="退费"), metadata=indexer.auth("acme")),
        lambda: indexer.stub.GetCall(
            pb.GetCallRequest(tenant="globex", recording_id=theirs.recording_id), metadata=indexer.auth("acme")
        ),
        lambda: list(
            indexer.stub.ExportCalls(
                pb.ExportCallsRequest(filter=pb.SearchRequest(tenant="globex")), metadata=indexer.auth("acme")
            )
        ),
        lambda: indexer.stub.FindIndexed(
            pb.FindIndexedRequest(tenant="globex", recording_ids=[theirs.recording_id]), metadata=indexer.auth("acme")
        ),
        lambda: indexer.index(make_call(tenant="globex", agent_id=agent, utterances=REFUND_ZH), tenant="acme"),
    ]
    for attempt in attempts:
        with pytest.raises(grpc.RpcError) as err:
            attempt()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    # A call naming acme but with globex in its metadata is refused as well.
    sneaky = make_call(tenant="acme", agent_id=agent)
    sneaky.metadata.tenant = "globex"
    with pytest.raises(grpc.RpcError) as err:
        indexer.index(sneaky, tenant="acme")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert indexer.find([sneaky.recording_id]) == []

    # Each tenant only ever sees its own calls, even by id.
    assert ids_of(indexer.search("acme", agent_id=agent)) == [ours.recording_id]
    assert ids_of(indexer.search("globex", agent_id=agent)) == [theirs.recording_id]
    assert ids_of(indexer.search("acme", query="退费", agent_id=agent)) == [ours.recording_id]
    assert {x.recording_id for x in indexer.export("acme", agent_id=agent)} == {ours.recording_id}
    assert indexer.find([ours.recording_id, theirs.recording_id], tenant="acme") == [ours.recording_id]
    assert indexer.find([ours.recording_id, theirs.recording_id], tenant="globex") == [theirs.recording_id]
    with pytest.raises(grpc.RpcError) as err:
        indexer.get(theirs.recording_id, tenant="acme")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # The same recording id in two tenants stays two calls.
    twin = make_call(tenant="globex", recording_id=ours.recording_id, agent_id=agent, utterances=HOURS_EN)
    indexer.index(twin, tenant="globex")
    assert len(indexer.get(ours.recording_id, tenant="acme").utterances) == len(REFUND_ZH)
    assert len(indexer.get(ours.recording_id, tenant="globex").utterances) == len(HOURS_EN)
    # No token: refused before anything is read.
    with pytest.raises(grpc.RpcError) as err:
        indexer.stub.Search(pb.SearchRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_find_indexed(indexer: Indexer) -> None:
    calls = [make_call(agent_id=new_agent(), utterances=HOURS_EN) for _ in range(3)]
    for call in calls[:2]:
        indexer.index(call)
    missing = new_id()
    asked = [calls[2].recording_id, calls[1].recording_id, missing, calls[0].recording_id, calls[1].recording_id]
    assert indexer.find(asked) == [calls[1].recording_id, calls[0].recording_id]
    assert indexer.find([]) == []
    many = [new_id() for _ in range(999)] + [calls[0].recording_id]
    assert indexer.find(many) == [calls[0].recording_id]
    with pytest.raises(grpc.RpcError) as err:
        indexer.find([new_id() for _ in range(1001)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "1000" in err.value.details()


# --------------------------------------------------------------------------- bad requests


BAD_CALLS = {
    "no recording id": lambda call: call.ClearField("recording_id"),
    "recording id with a colon": lambda call: setattr(call, "recording_id", "a:b"),
    "end before start": lambda call: setattr(call.utterances[1], "end_ms", 100),
    "same channel and start twice": lambda call: setattr(call.utterances[2], "start_ms", 0),
    "channel beyond the audio": lambda call: setattr(call.utterances[0], "channel", 5),
    "unknown role": lambda call: setattr(call.utterances[0], "role", 42),
    "unknown language": lambda call: setattr(call.metadata, "language", 42),
    "starts after the audio ends": lambda call: call.utterances[3].MergeFrom(
        pb.Utterance(start_ms=70_000, end_ms=71_000)
    ),
    "call id too long": lambda call: setattr(call.metadata, "call_id", "x" * 300),
    "bad sha256": lambda call: setattr(call.object, "sha256", "XYZ"),
    "unknown integrity": lambda call: setattr(call, "integrity", 42),
    "verified after year 9999": lambda call: setattr(call.verified_at, "seconds", 300_000_000_000),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_calls_are_refused_and_change_nothing(indexer: Indexer, case: str) -> None:
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH)
    BAD_CALLS[case](call)
    with pytest.raises(grpc.RpcError) as err:
        indexer.index(call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert err.value.details()  # a message a person can act on
    assert indexer.search(agent_id=call.metadata.agent_id).total == 0
    if call.recording_id and ":" not in call.recording_id:
        assert indexer.find([call.recording_id]) == []


def test_missing_call_is_refused(indexer: Indexer) -> None:
    with pytest.raises(grpc.RpcError) as err:
        indexer.stub.IndexCall(pb.IndexCallRequest(), metadata=pipeline_auth())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "call is required" in err.value.details()


BAD_SEARCHES = {
    "from after to": {"started_from": ts("2024-02-01T00:00:00Z"), "started_to": ts("2024-01-01T00:00:00Z")},
    "min duration above max": {"min_duration_ms": 10, "max_duration_ms": 5},
    "unknown language": {"language": 9},
    "unknown role": {"role": 9},
    "unknown tier": {"tier": 9},
    "unknown integrity": {"integrity": 9},
    "unknown sentiment label": {"sentiment_label": "furious"},
    "qa min above max": {"min_qa_score": 80, "max_qa_score": 20},
    "not a number": {"min_qa_score": float("nan")},
    "query too long": {"query": "退" * 1001},
    "bad page token": {"page_token": "%%%"},
}


@pytest.mark.parametrize("case", sorted(BAD_SEARCHES))
def test_bad_searches_are_refused(indexer: Indexer, case: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        indexer.search(**BAD_SEARCHES[case])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


@pytest.mark.parametrize("rid", ["", "../x", "deadbeef", "rec-1", "A" * 32, "0" * 31 + "g", "0" * 33])
def test_malformed_recording_id_is_invalid_as_on_ingest(indexer: Indexer, rid: str) -> None:
    """Ingest's shape (32 lowercase hex) and ingest's message, on every indexer method that takes an id."""
    expected = f"recording_id {rid!r} is not a recording id (32 lowercase hex characters)"
    with pytest.raises(grpc.RpcError) as err:
        indexer.get(rid)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, expected)
    with pytest.raises(grpc.RpcError) as err:
        indexer.find([new_id(), rid])
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        expected.replace("recording_id", "recording_ids[]", 1),
    )
    call = make_call(recording_id=rid or None, utterances=HOURS_EN)
    call.recording_id = rid
    with pytest.raises(grpc.RpcError) as err:
        indexer.index(call)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        expected.replace("recording_id", "call.recording_id", 1),
    )


def test_well_formed_unknown_recording_is_not_found(indexer: Indexer) -> None:
    with pytest.raises(grpc.RpcError) as err:
        indexer.get(new_id())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# --------------------------------------------------------------------------- metrics


def test_metrics(indexer: Indexer) -> None:
    before = indexer.metric("callscribe_indexer_documents_indexed_total", kind="utterance")
    call = make_call(agent_id=new_agent(), utterances=REFUND_ZH)
    indexer.index(call)
    indexer.search(query="退费", agent_id=call.metadata.agent_id)
    assert indexer.metric("callscribe_indexer_documents_indexed_total", kind="utterance") == before + 4
    assert indexer.metric("callscribe_indexer_documents_indexed_total", kind="call") >= 1
    assert indexer.metric("callscribe_indexer_bulk_seconds_count") >= 1
    assert indexer.metric("callscribe_indexer_search_seconds_count", op="search") >= 1
    assert indexer.metric("callscribe_indexer_index_call_seconds_count", stage="enrich") >= 1
    assert indexer.metric("callscribe_indexer_elasticsearch_ready") == 1
    assert indexer.metric("callscribe_indexer_ilm_supported") == 0  # noida-db has no ILM
    method = "/callscribe.v1.IndexerService/IndexCall"
    assert indexer.metric("callscribe_indexer_grpc_requests_total", method=method, code="OK") >= 1


def test_at_most_five_utterances_per_call_hit(indexer: Indexer) -> None:
    agent = new_agent()
    lines = [(i % 2, CUSTOMER if i % 2 else AGENT, 3_000 * i, 3_000 * i + 2_000, f"第{i}次说退费") for i in range(8)]
    call = make_call(agent_id=agent, utterances=lines)
    other = make_call(agent_id=agent, utterances=REFUND_ZH)
    indexer.index(call)
    indexer.index(other)
    found = indexer.search(query="退费", agent_id=agent)
    by_id = {h.recording_id: h for h in found.hits}
    shown = by_id[call.recording_id].utterances
    assert len(shown) == 5 and all("<em>退费</em>" in u.highlight for u in shown)
    assert [u.start_ms for u in shown] == sorted(u.start_ms for u in shown)  # in call order
    assert len(by_id[other.recording_id].utterances) == 2  # one busy call does not crowd out the others
