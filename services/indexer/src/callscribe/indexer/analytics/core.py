"""analyze(call, config): the CallAnalytics of one call, from its utterances and their word times."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from callscribe.indexer.analytics import keywords, qa, sentiment, timeline
from callscribe.indexer.analytics.config import AnalyticsConfig
from callscribe.indexer.script import fold
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

AGENT = c.SPEAKER_ROLE_AGENT
CUSTOMER = c.SPEAKER_ROLE_CUSTOMER
MIXED = c.SPEAKER_ROLE_MIXED

_LATIN_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)*")
_CJK_CHAR_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def count_words(text: str) -> int:
    """Latin words plus Chinese characters: the unit of the speaking rate (wpm for English, cpm for Chinese)."""
    return len(_LATIN_WORD_RE.findall(text)) + len(_CJK_CHAR_RE.findall(text))


@dataclass
class _Utt:
    message: pb.Utterance
    role: int  # AGENT, CUSTOMER or MIXED
    span: timeline.Span | None
    text: str  # normalized text, or the raw text
    folded: str  # `text` in the one Simplified form phrases and lexicons are compared in (script.fold)


def _role(utterance: pb.Utterance, layout: int) -> int:
    if utterance.role in (AGENT, CUSTOMER, MIXED):
        return utterance.role
    if layout == c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT:
        return AGENT if utterance.channel == 0 else CUSTOMER
    if layout == c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT:
        return AGENT if utterance.channel == 1 else CUSTOMER
    return MIXED


def analyze(call: pb.Call, config: AnalyticsConfig) -> pb.CallAnalytics:
    """Talk, silence, overlap, interruptions, speaking rate, keyword hits, sentiment and QA of `call`.

    Text is compared in one script: utterances, keyword phrases, backchannels and the sentiment lexicon are
    folded to Simplified characters (`callscribe.indexer.script.fold`), so a phrase written in either script
    matches a transcript in either; a hit's `matched` is the text as the utterance shows it.

    Sets `sentiment` on each of `call.utterances`; changes nothing else in `call`.
    """
    layout = call.metadata.channel_layout
    utts = []
    for u in call.utterances:
        span = timeline.speech_span(
            u, config.segment_padding_start_ms, config.segment_padding_end_ms, config.word_time_slack_ms
        )
        text = u.normalized_text or u.text
        utts.append(_Utt(u, _role(u, layout), span, text, fold(text)))
    mono = not any(u.role in (AGENT, CUSTOMER) for u in utts)

    agent = timeline.union(u.span for u in utts if u.role == AGENT and u.span)
    customer = timeline.union(u.span for u in utts if u.role == CUSTOMER and u.span)
    # where each side could interrupt: its speech less the utterances that are only a backchannel ("ok", "嗯")
    turns = {
        role: timeline.union(
            u.span
            for u in utts
            if u.role == role and u.span and not keywords.is_backchannel(u.folded, config.backchannels)
        )
        for role in (AGENT, CUSTOMER)
    }
    speech = timeline.union(u.span for u in utts if u.span)
    silences = timeline.gaps(speech)

    out = pb.CallAnalytics(dead_air_threshold_ms=config.dead_air_threshold_ms)
    talk_agent, talk_customer = timeline.total(agent), timeline.total(customer)
    if talk_agent + talk_customer:
        out.agent_talk_ratio = talk_agent / (talk_agent + talk_customer)
    out.silence_ms = timeline.total(silences)
    out.longest_silence_ms = max((end - start for start, end in silences), default=0)
    out.dead_air_count = sum(1 for start, end in silences if end - start >= config.dead_air_threshold_ms)
    out.overlap_ms = timeline.overlap_ms(agent, customer)

    minimum = config.min_interruption_overlap_ms
    barges = [(AGENT, b) for b in timeline.interruptions(turns[AGENT], customer, minimum)]
    barges += [(CUSTOMER, b) for b in timeline.interruptions(turns[CUSTOMER], agent, minimum)]
    for role, b in sorted(barges, key=lambda rb: (rb[1].at_ms, rb[0])):
        out.interruptions.add(by=role, at_ms=b.at_ms, overlap_ms=b.overlap_ms)
    out.interruption_count = len(out.interruptions)

    lex = sentiment.lexicon_for(config.sentiment.terms)
    scores: dict[int, list[float]] = {AGENT: [], CUSTOMER: [], MIXED: []}
    for u in utts:
        value = sentiment.score(u.folded, lex)
        u.message.sentiment = value
        if value:
            scores[u.role].append(value)

    for role, side, spans in ((AGENT, out.agent, agent), (CUSTOMER, out.customer, customer)):
        side.talk_ms = timeline.total(spans)
        side.words = sum(count_words(u.message.text or u.text) for u in utts if u.role == role)
        if side.talk_ms:
            side.speaking_rate = side.words * 60000 / side.talk_ms
        side.interruptions = sum(1 for i in out.interruptions if i.by == role)
        side.sentiment = _mean(scores[role])
    out.sentiment = _mean([v for values in scores.values() for v in values])
    out.sentiment_label = sentiment.label(
        out.sentiment, config.sentiment.positive_threshold, config.sentiment.negative_threshold
    )

    out.keyword_hits.extend(_keyword_hits(utts, config))

    out.qa.CopyFrom(
        qa.score_call(
            config.qa,
            hits=out.keyword_hits,
            silences=silences,
            dead_air_threshold_ms=config.dead_air_threshold_ms,
            interruptions=out.interruptions,
            speech_end_ms=speech[-1][1] if speech else 0,
            mono=mono,
        )
    )
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _keyword_hits(utts: list[_Utt], config: AnalyticsConfig) -> list[pb.KeywordHit]:
    found: list[tuple[int, int, int, pb.KeywordHit]] = []
    for order, u in enumerate(utts):
        if not u.text:
            continue
        msg = u.message
        tokens = timeline.usable_tokens(msg.tokens, msg.start_ms, msg.end_ms)
        shown = u.text if len(u.text) == len(u.folded) else u.folded  # positions of the folded text
        for keyword_list in config.keyword_lists:
            for phrase in keyword_list.phrases:
                m = keywords.matcher(phrase)
                spans = m.find(u.folded)
                for index, (lo, hi) in enumerate(spans):
                    start, end = keywords.place(m, u.folded, spans, index, tokens, (msg.start_ms, msg.end_ms))
                    hit = pb.KeywordHit(
                        list=keyword_list.name,
                        phrase=phrase,
                        matched=shown[lo:hi],
                        channel=msg.channel,
                        role=u.role,
                        start_ms=start,
                        end_ms=end,
                    )
                    found.append((start, order, lo, hit))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found]
