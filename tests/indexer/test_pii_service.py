"""PII redaction through the real IndexerService on noida-db: what IndexCall stores, what search finds, what
GetCall and ExportCalls return, the tenants' policies, the keep_unredacted hook, and PreviewRedaction."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from callscribe.stack.tenants import TenantsFile
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

from .conftest import (
    AGENT,
    CUSTOMER,
    RPC_TIMEOUT_S,
    Indexer,
    PiiIndexer,
    StartIndexer,
    analytics,
    make_call,
    new_agent,
)

CARD_WRITTEN = "6222 0212 3456 7894"
CARD_SPOKEN = "六二二二 零二幺二 三四五六 七八九四"
CARD_DIGITS = ("6222", "0212", "3456", "7894", "6222021234567894", CARD_WRITTEN)
CARD_CALL = [
    (0, AGENT, 0, 2_000, "您好,请问您要绑定哪张卡"),
    (1, CUSTOMER, 2_500, 6_000, f"我的卡号是{CARD_WRITTEN},手机13800138000"),
    (0, AGENT, 6_500, 8_000, "好的,请报一下短信验证码"),
    (1, CUSTOMER, 8_500, 10_000, "四七二九"),
]


def stored_sources(indexer: Indexer, tenant: str, recording_id: str) -> list[dict]:
    """The call document and its utterance documents as Elasticsearch holds them."""
    prefix = indexer.settings.index_prefix
    found = indexer.es.search(
        index=f"{prefix}-utterances-{tenant},{prefix}-calls-{tenant}",
        query={"term": {"recording_id": recording_id}},
        size=100,
    )
    return [hit["_source"] for hit in found["hits"]["hits"]]


def test_a_card_read_out_is_masked_everywhere_and_search_cannot_find_it(indexer: Indexer) -> None:
    agent = new_agent()
    call = make_call(agent_id=agent, utterances=CARD_CALL)
    planted = analytics(hits=[("forbidden", "卡号")])  # a hit whose matched text holds the number
    planted.keyword_hits[0].matched = CARD_WRITTEN
    planted.qa.deductions.add(rule="forbidden", points=5, reason=f'forbidden phrase "{CARD_WRITTEN}" at 00:02')
    indexer.enricher.plant(call.recording_id, planted)
    indexer.index(call)

    for digits in CARD_DIGITS + ("13800138000", "4729"):
        assert indexer.search(query=digits, agent_id=agent).total == 0, digits
    # the call is there and searchable: its other words are found, and so is a mask
    assert [h.recording_id for h in indexer.search(query="卡号", agent_id=agent).hits] == [call.recording_id]
    assert [h.recording_id for h in indexer.search(query="CARD", agent_id=agent).hits] == [call.recording_id]

    got = indexer.get(call.recording_id)
    assert got.utterances[1].text == "我的卡号是[CARD],手机[PHONE]"
    assert got.utterances[1].normalized_text == "我的卡号是[CARD],手机[PHONE]"
    assert got.utterances[3].text == "[VERIFICATION_CODE]"  # the cue was in the agent's utterance before
    assert got.analytics.keyword_hits[0].matched == "[CARD]"
    assert got.analytics.qa.deductions[-1].reason == 'forbidden phrase "[CARD]" at 00:02'
    [exported] = indexer.export(agent_id=agent)
    assert exported.utterances[1].text == "我的卡号是[CARD],手机[PHONE]"

    stored = json.dumps(stored_sources(indexer, "acme", call.recording_id), ensure_ascii=False)
    assert "[CARD]" in stored and "[PHONE]" in stored
    for digits in CARD_DIGITS + ("13800138000", "4729"):
        assert digits not in stored, digits
    assert indexer.metric("callscribe_indexer_pii_masked_total", category="card") >= 2


def test_the_service_enricher_sees_the_number_spoken_and_masks_both_forms(pii_indexer: PiiIndexer) -> None:
    """With ITN: the recognized text has the spoken digits, the normalized text the written ones."""
    service = pii_indexer.indexer
    agent = new_agent()
    utterances = [(1, CUSTOMER, 0, 4_000, f"我的卡号是{CARD_SPOKEN}")]
    call = make_call(agent_id=agent, utterances=utterances)
    service.index(call)
    [utterance] = service.get(call.recording_id).utterances
    assert utterance.text == "我的卡号是[CARD]"
    assert utterance.normalized_text.startswith("我的卡号是[CARD]")
    for query in CARD_DIGITS + ("六二二二",):
        assert service.search(query=query, agent_id=agent).total == 0, query
    assert not pii_indexer.kept.of(call.recording_id)  # acme's policy keeps no unredacted transcript


def test_a_tenants_policy_decides_what_is_masked(pii_indexer: PiiIndexer) -> None:
    service = pii_indexer.indexer
    agent = new_agent()
    utterances = [(1, CUSTOMER, 0, 4_000, f"卡号{CARD_WRITTEN},手机13800138000")]
    call = make_call(tenant="cards", agent_id=agent, utterances=utterances)
    service.index(call)
    [utterance] = service.get(call.recording_id, tenant="cards").utterances
    assert utterance.text == "卡号[CARD ****7894],手机13800138000"  # cards only, last four shown
    assert service.search("cards", query="13800138000", agent_id=agent).total == 1
    assert service.search("cards", query="0212", agent_id=agent).total == 0


def test_keep_unredacted_hands_the_unredacted_call_to_the_sink(pii_indexer: PiiIndexer) -> None:
    service = pii_indexer.indexer
    call = make_call(tenant="keeper", agent_id=new_agent(), utterances=CARD_CALL)
    service.index(call)
    assert service.get(call.recording_id, tenant="keeper").utterances[1].text == "我的卡号是[CARD],手机[PHONE]"
    [(tenant, unredacted)] = pii_indexer.kept.of(call.recording_id)
    assert tenant == "keeper"
    assert unredacted.utterances[1].text == CARD_CALL[1][4]
    assert unredacted.utterances[1].normalized_text.startswith("我的卡号是6222 0212 3456 7894")


def test_keep_unredacted_without_a_sink_is_logged_once(
    start_indexer: StartIndexer, pii_indexer: PiiIndexer, caplog: pytest.LogCaptureFixture
) -> None:
    tenants = TenantsFile(pii_indexer.indexer.settings.tenants_file, dict(pii_indexer.indexer.tokens))
    service = start_indexer(tenants=tenants)  # no unredacted_sink
    with caplog.at_level(logging.WARNING, logger="callscribe.indexer.servicer"):
        for _ in range(2):
            service.index(make_call(tenant="keeper", agent_id=new_agent(), utterances=CARD_CALL))
    warnings = [r.getMessage() for r in caplog.records if "keep_unredacted" in r.getMessage()]
    assert warnings == [
        "tenant keeper keeps unredacted transcripts (redaction.keep_unredacted), but this indexer has no encrypted "
        "store for them yet: only the redacted transcript is indexed"
    ]


# --------------------------------------------------------------------------- PreviewRedaction


def preview(service: Indexer, tenant: str, text: str, language: int = c.LANGUAGE_ZH) -> pb.PreviewRedactionResponse:
    request = pb.PreviewRedactionRequest(language=language, text=text)
    return service.stub.PreviewRedaction(request, metadata=service.auth(tenant), timeout=RPC_TIMEOUT_S)


def test_preview_shows_what_the_callers_policy_stores(pii_indexer: PiiIndexer) -> None:
    service = pii_indexer.indexer
    text = f"卡号{CARD_WRITTEN},手机13800138000"
    default = preview(service, "acme", text)
    assert default.text == "卡号[CARD],手机[PHONE]"
    assert [(s.category, s.start, s.end, s.mask) for s in default.masked] == [
        ("card", 2, 21, "[CARD]"),
        ("phone", 24, 35, "[PHONE]"),
    ]
    assert list(default.categories) == ["card", "cn_id", "bank_account", "phone", "email", "verification_code"]
    assert not default.keep_unredacted and default.keep_last == 0 and not default.kept

    cards = preview(service, "cards", text)
    assert cards.text == "卡号[CARD ****7894],手机13800138000"
    assert [(s.category, s.start, s.end, s.mask) for s in cards.kept] == [("phone", 24, 35, "")]
    assert list(cards.categories) == ["card"] and cards.keep_last == 4
    assert preview(service, "keeper", "my email is a.b@example.com", c.LANGUAGE_EN).keep_unredacted


@pytest.mark.parametrize(
    ("language", "text", "message"),
    [
        (
            c.LANGUAGE_AUTO,
            "卡号6222021234567894",
            "language must be LANGUAGE_ZH or LANGUAGE_EN, got LANGUAGE_AUTO "
            "(callscribe redact: --language zh or --language en",
        ),
        (c.LANGUAGE_UNSPECIFIED, "x", "language must be LANGUAGE_ZH or LANGUAGE_EN, got LANGUAGE_UNSPECIFIED"),
        (c.LANGUAGE_ZH, "  ", "text is empty"),
        (c.LANGUAGE_EN, "x" * 10_001, "text is 10001 characters; at most 10000"),
    ],
)
def test_preview_refuses_a_bad_request(pii_indexer: PiiIndexer, language: int, text: str, message: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        preview(pii_indexer.indexer, "acme", text, language)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(message)


def test_preview_is_scoped_to_the_callers_tenant(pii_indexer: PiiIndexer) -> None:
    service = pii_indexer.indexer
    request = pb.PreviewRedactionRequest(tenant="cards", language=c.LANGUAGE_ZH, text="手机13800138000")
    with pytest.raises(grpc.RpcError) as err:
        service.stub.PreviewRedaction(request, metadata=service.auth("acme"), timeout=RPC_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
