"""QA score: each rule, its points, its cap, and the reason a QA lead reads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from callscribe.indexer.analytics import AnalyticsConfig, analyze, load_config
from callscribe.indexer.analytics.qa import clock
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

AGENT, CUSTOMER, MIXED = c.SPEAKER_ROLE_AGENT, c.SPEAKER_ROLE_CUSTOMER, c.SPEAKER_ROLE_MIXED


def utt(role: int, start: int, end: int, text: str) -> pb.Utterance:
    return pb.Utterance(channel=1 if role == CUSTOMER else 0, role=role, start_ms=start, end_ms=end, text=text)


def call_of(*utterances: pb.Utterance, layout: int = c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT) -> pb.Call:
    return pb.Call(recording_id="r", metadata=c.RecordingMetadata(channel_layout=layout), utterances=utterances)


@pytest.fixture(scope="module")
def config() -> AnalyticsConfig:
    """The default rules, spans taken as given (no VAD padding trim)."""
    return replace(load_config(None), segment_padding_start_ms=0, segment_padding_end_ms=0)


def deductions(result: pb.CallAnalytics) -> list[tuple[str, float, str]]:
    return [(d.rule, d.points, d.reason) for d in result.qa.deductions]


def check_sum(result: pb.CallAnalytics) -> None:
    qa = result.qa
    assert qa.score == pytest.approx(qa.max_score - sum(d.points for d in qa.deductions), abs=1e-3)
    assert 0 <= qa.score <= qa.max_score


GREETING = utt(AGENT, 0, 3000, "Thank you for calling Acme, how can I help you?")
CLOSING = utt(AGENT, 20000, 22000, "Is there anything else? Have a nice day.")


def test_a_clean_call_scores_full_marks(config: AnalyticsConfig) -> None:
    result = analyze(
        call_of(
            GREETING,
            utt(CUSTOMER, 3500, 6000, "I need a refund"),
            utt(AGENT, 7000, 12000, "Sure, let me do that"),
            utt(CUSTOMER, 13000, 18000, "thanks"),
            CLOSING,
        ),
        config,
    )
    assert deductions(result) == []
    assert result.qa.score == result.qa.max_score == 100


def test_missing_closing_phrase(config: AnalyticsConfig) -> None:
    result = analyze(call_of(GREETING, utt(CUSTOMER, 3500, 6000, "bye"), utt(AGENT, 6500, 8000, "ok")), config)
    assert deductions(result) == [("required:closing", 10, "closing phrase never said by the agent")]
    assert result.qa.score == 90
    check_sum(result)


def test_a_phrase_said_by_the_customer_does_not_count_for_the_agent(config: AnalyticsConfig) -> None:
    result = analyze(call_of(utt(CUSTOMER, 0, 2000, "hello, good morning"), CLOSING), config)
    required = [d.reason for d in result.qa.deductions if d.rule.startswith("required:")]
    assert required == ["greeting phrase never said by the agent"]


def test_greeting_too_late_and_closing_too_early(config: AnalyticsConfig) -> None:
    result = analyze(
        call_of(
            utt(AGENT, 0, 2000, "yes?"),
            utt(AGENT, 45000, 47000, "oh, good morning, how can I help"),
            utt(AGENT, 48000, 50000, "goodbye"),  # the closing, but 70 s before the end
            *[utt(AGENT, 50000 + i * 4000, 53000 + i * 4000, "reading the terms") for i in range(18)],
        ),
        config,
    )
    assert [d for d in deductions(result) if d[0].startswith("required:")] == [
        ("required:greeting", 10, "greeting phrase not said by the agent in the first 30 s (first said at 00:45)"),
        (
            "required:closing",
            10,
            "closing phrase not said by the agent in the last 60 s of the call (last said at 00:48)",
        ),
    ]
    check_sum(result)


def test_dead_air_is_charged_per_silence_with_a_cap(config: AnalyticsConfig) -> None:
    talk = [GREETING]
    at = 3000
    for gap in (7200, 3000, 5000, 12000, 6000, 9000):  # four silences of at least 5 s after the 3 s one
        talk.append(utt(CUSTOMER, at + gap, at + gap + 1000, "hm"))
        at += gap + 1000
    talk.append(utt(AGENT, at + 100, at + 2000, "have a nice day"))
    result = analyze(call_of(*talk), config)
    dead = [d for d in deductions(result) if d[0] == "dead_air"]
    assert dead == [
        ("dead_air", 5, "dead air 7.2 s at 00:03"),
        ("dead_air", 5, "dead air 5 s at 00:15"),
        ("dead_air", 5, "dead air 12 s at 00:21"),
    ]  # capped at 15: the 6 s and 9 s silences cost nothing more
    assert result.dead_air_count == 5 and result.longest_silence_ms == 12000
    assert result.qa.score == 85
    check_sum(result)


def test_dead_air_rule_has_its_own_minimum(config: AnalyticsConfig) -> None:
    rules = replace(config.qa, dead_air=replace(config.qa.dead_air, min_ms=10000, max_points=None))
    talk = [GREETING, utt(CUSTOMER, 10200, 11000, "hello?"), utt(AGENT, 23000, 25000, "have a nice day")]
    result = analyze(call_of(*talk), replace(config, qa=rules))
    assert deductions(result) == [("dead_air", 5, "dead air 12 s at 00:11")]
    assert result.dead_air_count == 2  # the analytics count still uses the 5 s threshold


def test_agent_interruptions(config: AnalyticsConfig) -> None:
    talk = [GREETING]
    for i in range(7):
        start = 4000 + i * 10000
        talk.append(utt(CUSTOMER, start, start + 5000, "let me explain the whole problem"))
        talk.append(utt(AGENT, start + 3500, start + 6000, "yes but listen"))  # 1.5 s over the customer
    talk.append(utt(CUSTOMER, 74000, 78000, "fine"))
    talk.append(utt(AGENT, 77000, 80000, "have a nice day"))  # 1.0 s over the customer
    result = analyze(call_of(*talk), config)
    agent = [d for d in deductions(result) if d[0] == "agent_interruptions"]
    assert agent[0] == ("agent_interruptions", 3, "agent interrupted the customer at 00:07 (1.5 s of overlap)")
    assert len(agent) == 5 and sum(d[1] for d in agent) == 15  # 8 interruptions, capped at 15 points
    assert result.agent.interruptions == 8 and result.customer.interruptions == 0
    check_sum(result)


def test_customer_interruptions_cost_the_agent_nothing(config: AnalyticsConfig) -> None:
    talk = [GREETING, utt(CUSTOMER, 1500, 5000, "no no no, listen to me"), utt(AGENT, 5200, 7000, "have a nice day")]
    result = analyze(call_of(*talk), config)
    assert result.customer.interruptions == 1
    assert deductions(result) == []


def test_forbidden_phrases_by_the_agent(config: AnalyticsConfig) -> None:
    talk = [
        GREETING,
        utt(CUSTOMER, 3500, 6000, "shut up, this is stupid"),  # the customer: not charged
        utt(AGENT, 6500, 9000, "That's not my problem."),
        utt(AGENT, 63000, 65000, "闭嘴，不关我的事"),
        utt(AGENT, 65500, 67000, "have a nice day"),
    ]
    result = analyze(call_of(*talk), config)
    forbidden = [d for d in deductions(result) if d[0] == "forbidden:forbidden"]
    assert forbidden == [
        ("forbidden:forbidden", 25, 'forbidden phrase "not my problem" said by the agent at 00:06'),
        ("forbidden:forbidden", 25, 'forbidden phrase "闭嘴" said by the agent at 01:03'),
    ]  # the third ("不关我的事") is over the 50-point cap
    assert sum(1 for h in result.keyword_hits if h.list == "forbidden" and h.role == AGENT) == 3
    assert sum(1 for h in result.keyword_hits if h.list == "forbidden" and h.role == CUSTOMER) == 2
    check_sum(result)


def test_deductions_never_exceed_the_maximum(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(
        json.dumps(
            {
                "segment_padding_ms": {"start": 0, "end": 0},
                "qa": {
                    "max_score": 30,
                    "required": [{"list": "greeting", "points": 20}, {"list": "closing", "points": 20}],
                    "forbidden": [{"list": "forbidden", "points": 20}],
                },
            }
        ),
        encoding="utf-8",
    )
    result = analyze(call_of(utt(AGENT, 0, 1000, "shut up")), load_config(path))
    assert deductions(result) == [
        ("required:greeting", 20, "greeting phrase never said by the agent"),
        ("required:closing", 10, "closing phrase never said by the agent"),
    ]
    assert result.qa.score == 0 and result.qa.max_score == 30
    check_sum(result)


def test_custom_rules_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(
        json.dumps(
            {
                "segment_padding_ms": {"start": 0, "end": 0},
                "keywords": {"verification": ["date of birth", "出生日期"], "upsell": ["premium"]},
                "qa": {
                    "required": [{"list": "verification", "points": 15}],
                    "dead_air": None,
                    "agent_interruptions": None,
                    "forbidden": [{"list": "upsell", "points": 2.5, "max_points": 4}],
                },
            }
        ),
        encoding="utf-8",
    )
    talk = [
        utt(AGENT, 0, 2000, "premium, premium and premium"),
        utt(CUSTOMER, 30000, 32000, "my date of birth is in May"),
    ]
    result = analyze(call_of(*talk), load_config(path))
    assert deductions(result) == [
        ("required:verification", 15, "verification phrase never said by the agent"),
        ("forbidden:upsell", 2.5, 'upsell phrase "premium" said by the agent at 00:00'),
        ("forbidden:upsell", 1.5, 'upsell phrase "premium" said by the agent at 00:00'),
    ]
    assert result.qa.score == 81
    check_sum(result)


def test_mono_calls_credit_anyone_and_charge_nobody(config: AnalyticsConfig) -> None:
    talk = [
        utt(MIXED, 0, 3000, "您好，请问有什么可以帮您"),
        utt(MIXED, 2000, 6000, "闭嘴，我要投诉"),  # agent or customer? unknown: not charged
        utt(MIXED, 7000, 8000, "再见"),
    ]
    result = analyze(call_of(*talk, layout=c.CHANNEL_LAYOUT_MONO), config)
    assert deductions(result) == []
    silent = analyze(call_of(utt(MIXED, 0, 3000, "嗯"), layout=c.CHANNEL_LAYOUT_MONO), config)
    assert [d.reason for d in silent.qa.deductions] == [
        "greeting phrase never said by anyone",
        "closing phrase never said by anyone",
    ]


def test_clock() -> None:
    assert [clock(ms) for ms in (0, 999, 63_000, 600_500, 3_723_000)] == ["00:00", "00:00", "01:03", "10:00", "1:02:03"]
