"""Which voice of a diarized mono call is the agent, chosen again where the text is: here.

The VAD splits a mono recording into two voices and calls the one heard first the agent (or the second,
VAD_DIARIZE_AGENT): it has the audio but no words. The indexer has the normalized text and the keyword
lists, so with `diarized_agent.rule` "greeting" (the default) it counts, per voice, the phrases of the
configured lists (the "greeting" list: "thank you for calling", "how can I help", "您好", ...) in utterances
starting within the first `within_first_ms`; the voice with more is the agent. When that is the voice the
VAD called the customer, every diarized utterance's role is swapped (and the diarization's speakers), and
`call.diarization.agent_rule` becomes "greeting". A tie (none said, or both as often) leaves the VAD's
choice as it is. This runs before the analytics, so talk ratio, interruptions and QA go by the chosen roles.
"""

from __future__ import annotations

from callscribe.indexer.analytics import keywords
from callscribe.indexer.analytics.config import AnalyticsConfig
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

_SWAP = {c.SPEAKER_ROLE_AGENT: c.SPEAKER_ROLE_CUSTOMER, c.SPEAKER_ROLE_CUSTOMER: c.SPEAKER_ROLE_AGENT}


def greeting_counts(call: pb.Call, config: AnalyticsConfig) -> dict[int, int]:
    """Phrases of the rule's lists said by voice 1 and voice 2 in utterances starting early enough."""
    rule = config.diarized_agent
    counts = {1: 0, 2: 0}
    lists = [config.keyword_list(name) for name in rule.lists]
    phrases = [phrase for kl in lists if kl is not None for phrase in kl.phrases]
    for u in call.utterances:
        if u.speaker not in counts or u.start_ms > rule.within_first_ms:
            continue
        text = u.normalized_text or u.text
        counts[u.speaker] += sum(len(keywords.matcher(phrase).find(text)) for phrase in phrases)
    return counts


def choose_agent(call: pb.Call, config: AnalyticsConfig) -> None:
    """Swap the roles of a diarized call's voices when the greeting phrases say the other voice is the agent."""
    if config.diarized_agent.rule != "greeting" or call.diarization.status != c.DIARIZATION_STATUS_DIARIZED:
        return
    counts = greeting_counts(call, config)
    if counts[1] == counts[2]:
        return
    agent = 1 if counts[1] > counts[2] else 2
    current = next((u.speaker for u in call.utterances if u.speaker and u.role == c.SPEAKER_ROLE_AGENT), None)
    if current is None:
        current = next((s.speaker for s in call.diarization.speakers if s.role == c.SPEAKER_ROLE_AGENT), None)
    call.diarization.agent_rule = "greeting"
    if current == agent:
        return
    for u in call.utterances:
        if u.speaker in (1, 2) and u.role in _SWAP:
            u.role = _SWAP[u.role]
    for s in call.diarization.speakers:
        if s.role in _SWAP:
            s.role = _SWAP[s.role]
