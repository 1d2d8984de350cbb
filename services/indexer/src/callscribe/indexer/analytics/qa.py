"""QA score: the configured maximum less a deduction, with a reason, for every rule a call breaks.

Rules (config.QaRules): required phrase lists said by the agent (optionally within the first / last so
many ms), dead air (per silence, capped), interruptions by the agent (per interruption, capped), and
forbidden phrase lists said by the agent (per phrase, capped). The deductions never add up to more than
the maximum: the sum of the deductions' points is always max_score - score.

In a mono call the speakers cannot be told apart: a required phrase said by anyone counts, and forbidden
phrases and interruptions are not charged to the agent (the hits are still listed in the analytics).
"""

from __future__ import annotations

from collections.abc import Sequence

from callscribe.indexer.analytics.config import PerEventRule, QaRules
from callscribe.indexer.analytics.timeline import Span
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb


def clock(ms: int) -> str:
    """01:03 (or 1:02:03 past an hour) for a time in the call."""
    seconds = max(0, int(ms)) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def seconds(ms: int) -> str:
    """7.2 s, 12 s."""
    return f"{ms / 1000:.1f}".removesuffix(".0") + " s"


def score_call(
    rules: QaRules,
    *,
    hits: Sequence[pb.KeywordHit],
    silences: Sequence[Span],
    dead_air_threshold_ms: int,
    interruptions: Sequence[pb.Interruption],
    speech_end_ms: int,
    mono: bool,
) -> pb.QaResult:
    deductions: list[tuple[str, float, str]] = []

    def agent_said(hit: pb.KeywordHit) -> bool:
        return hit.role == c.SPEAKER_ROLE_AGENT or (mono and hit.role == c.SPEAKER_ROLE_MIXED)

    for rule in rules.required:
        said = sorted((h for h in hits if h.list == rule.list and agent_said(h)), key=lambda h: h.start_ms)
        name = f"required:{rule.list}"
        who = "anyone" if mono else "the agent"
        if not said:
            deductions.append((name, rule.points, f"{rule.list} phrase never said by {who}"))
            continue
        if rule.within_first_ms is not None and not any(h.start_ms <= rule.within_first_ms for h in said):
            deductions.append(
                (
                    name,
                    rule.points,
                    f"{rule.list} phrase not said by {who} in the first {seconds(rule.within_first_ms)} "
                    f"(first said at {clock(said[0].start_ms)})",
                )
            )
            continue
        if rule.within_last_ms is not None and not any(h.end_ms >= speech_end_ms - rule.within_last_ms for h in said):
            deductions.append(
                (
                    name,
                    rule.points,
                    f"{rule.list} phrase not said by {who} in the last {seconds(rule.within_last_ms)} of the call "
                    f"(last said at {clock(said[-1].start_ms)})",
                )
            )

    if rules.dead_air is not None:
        minimum = rules.dead_air.min_ms or dead_air_threshold_ms
        events = [
            f"dead air {seconds(end - start)} at {clock(start)}" for start, end in silences if end - start >= minimum
        ]
        deductions += _per_event("dead_air", rules.dead_air, events)

    if rules.agent_interruptions is not None and not mono:
        events = [
            f"agent interrupted the customer at {clock(i.at_ms)} ({seconds(i.overlap_ms)} of overlap)"
            for i in interruptions
            if i.by == c.SPEAKER_ROLE_AGENT
        ]
        deductions += _per_event("agent_interruptions", rules.agent_interruptions, events)

    for forbidden in rules.forbidden:
        if mono:
            continue
        events = [
            f'{forbidden.list} phrase "{h.matched}" said by the agent at {clock(h.start_ms)}'
            for h in sorted(hits, key=lambda h: h.start_ms)
            if h.list == forbidden.list and h.role == c.SPEAKER_ROLE_AGENT
        ]
        deductions += _per_event(f"forbidden:{forbidden.list}", forbidden, events)

    result = pb.QaResult(max_score=rules.max_score)
    left = rules.max_score
    for rule_name, points, reason in deductions:
        points = min(points, left)
        if points <= 0:
            continue
        left -= points
        result.deductions.add(rule=rule_name, points=points, reason=reason)
    result.score = round(max(0.0, left), 3)
    return result


def _per_event(name: str, rule: PerEventRule, reasons: list[str]) -> list[tuple[str, float, str]]:
    cap = rule.max_points if rule.max_points is not None else float("inf")
    out = []
    spent = 0.0
    for reason in reasons:
        points = min(rule.points, cap - spent)
        if points <= 0:
            break
        spent += points
        out.append((name, points, reason))
    return out
