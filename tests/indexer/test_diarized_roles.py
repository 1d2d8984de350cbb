"""Diarized mono calls in the indexer (issue 17, item 3): the agent chosen again by the greeting phrases, and
the analytics treating the two voices as they treat two channels."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscribe.indexer.analytics import AnalyticsConfig, analyze, choose_agent, load_config
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

AGENT, CUSTOMER, MIXED = c.SPEAKER_ROLE_AGENT, c.SPEAKER_ROLE_CUSTOMER, c.SPEAKER_ROLE_MIXED


def diarized(turns: list[tuple[int, int, int, str]], agent_speaker: int = 1) -> pb.Call:
    """A diarized mono call as the pipeline sends it: (speaker, start_ms, end_ms, text) per utterance, the
    VAD having called `agent_speaker` the agent."""
    role = {agent_speaker: AGENT, 3 - agent_speaker: CUSTOMER}
    call = pb.Call(recording_id="r" * 32, metadata=c.RecordingMetadata(channel_layout=c.CHANNEL_LAYOUT_MONO))
    call.diarization.CopyFrom(
        c.Diarization(
            status=c.DIARIZATION_STATUS_DIARIZED,
            agent_rule="first_speaker" if agent_speaker == 1 else "second_speaker",
            speakers=[c.SpeakerSpeech(speaker=k, role=role[k]) for k in (1, 2)],
        )
    )
    for speaker, start, end, text in turns:
        call.utterances.add(
            channel=0, role=role[speaker], start_ms=start, end_ms=end, text=text, speaker=speaker, role_confidence=0.9
        )
    return call


# The customer speaks first ("hello?", an outbound call): the VAD's first-speaker rule gets it wrong.
OUTBOUND = [
    (1, 0, 1500, "Hello?"),
    (2, 2000, 6000, "Good morning, this is Dana from Acme, how can I help you today?"),
    (1, 6500, 9000, "I want to cancel my subscription, you stupid people."),
    (2, 8000, 12000, "I am sorry to hear that. I can cancel it for you now."),  # starts 1 s before 1 ends
    (1, 12500, 14000, "Thanks, bye."),
    (2, 14500, 17000, "Have a nice day, goodbye."),
]


@pytest.fixture(scope="module")
def config() -> AnalyticsConfig:
    return load_config(None)


def test_the_voice_that_greets_becomes_the_agent(config: AnalyticsConfig) -> None:
    call = diarized(OUTBOUND)
    choose_agent(call, config)
    assert [u.role for u in call.utterances] == [CUSTOMER, AGENT, CUSTOMER, AGENT, CUSTOMER, AGENT]
    assert call.diarization.agent_rule == "greeting"
    assert [(s.speaker, s.role) for s in call.diarization.speakers] == [(1, CUSTOMER), (2, AGENT)]
    assert all(u.role_confidence == pytest.approx(0.9) for u in call.utterances)  # the voices' confidence stays


def test_greeting_by_the_vads_agent_confirms_it(config: AnalyticsConfig) -> None:
    call = diarized([(speaker, start, end, text) for speaker, start, end, text in OUTBOUND], agent_speaker=2)
    choose_agent(call, config)
    assert [u.role for u in call.utterances][:2] == [CUSTOMER, AGENT]
    assert call.diarization.agent_rule == "greeting"


def test_no_greeting_leaves_the_vads_choice(config: AnalyticsConfig) -> None:
    call = diarized([(1, 0, 2000, "Hi, it is about my bill."), (2, 2500, 5000, "Sure, what is the number?")])
    choose_agent(call, config)
    assert [u.role for u in call.utterances] == [AGENT, CUSTOMER]
    assert call.diarization.agent_rule == "first_speaker"


def test_rule_vad_never_swaps(tmp_path: Path) -> None:
    path = tmp_path / "analytics.json"
    path.write_text('{"diarized_agent": {"rule": "vad"}}')
    call = diarized(OUTBOUND)
    choose_agent(call, load_config(path))
    assert call.utterances[0].role == AGENT and call.diarization.agent_rule == "first_speaker"


def test_calls_that_are_not_diarized_are_left_alone(config: AnalyticsConfig) -> None:
    call = diarized(OUTBOUND)
    call.diarization.status = c.DIARIZATION_STATUS_MIXED
    before = pb.Call()
    before.CopyFrom(call)
    choose_agent(call, config)
    assert call == before


def test_analytics_of_a_diarized_call_are_by_side_like_a_stereo_one(config: AnalyticsConfig) -> None:
    call = diarized(OUTBOUND)
    choose_agent(call, config)
    result = analyze(call, config)
    # talk per side, talk ratio and interruptions by side, as for two channels (VAD padding trimmed)
    assert result.agent.talk_ms > 0 and result.customer.talk_ms > 0
    assert 0 < result.agent_talk_ratio < 1
    assert [(i.by, i.at_ms) for i in result.interruptions] == [(AGENT, 8000 + 260)]
    # QA charges the agent (not "anyone" as in a MIXED call): the customer's "stupid" costs nothing,
    # the agent's interruption does
    rules = [d.rule for d in result.qa.deductions]
    assert "forbidden" not in " ".join(rules) and "agent_interruptions" in rules
    hits = {(h.list, h.role) for h in result.keyword_hits}
    assert ("greeting", AGENT) in hits and ("forbidden", CUSTOMER) in hits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"diarized_agent": {"rule": "loudest"}}', "diarized_agent.rule must be one of greeting, vad"),
        ('{"diarized_agent": {"lists": ["greetings"]}}', r"diarized_agent\.lists\[0\] must name a keyword list"),
        ('{"diarized_agent": {"within_first_ms": 0}}', "diarized_agent.within_first_ms must be a whole number"),
        ('{"diarized_agent": {"by": "greeting"}}', r"unknown key.*diarized_agent\.by"),
    ],
)
def test_bad_diarized_agent_settings_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "analytics.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)
