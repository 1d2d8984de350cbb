"""Speech spans on the call's time line: unions, gaps, overlap and interruptions (all in ms)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

Span = tuple[int, int]

# Word times further outside the utterance than this are not trusted (not call-relative, or wrong).
TOKEN_TOLERANCE_MS = 500


def speech_span(utterance: pb.Utterance, pad_start_ms: int, pad_end_ms: int, word_slack_ms: int) -> Span | None:
    """Where `utterance` really has speech, from its VAD span and its word times where it has them.

    The VAD starts a segment ~0.26 s before the speech and ends it ~0.22 s after: the span is trimmed by
    `pad_start_ms` / `pad_end_ms` (scaled down so that at least half of it remains). Word times then bound
    it: the speech starts no earlier than `word_slack_ms` before the first word and ends no later than
    `word_slack_ms` after the last one. The slack is there because word times are only so exact: Whisper's
    (cross-attention alignment) end words 60-290 ms early and puts a segment's first word on its very start.
    So the words tighten a segment that holds much more than its speech (noise, a long breath, a VAD that
    pads more), and leave a well-trimmed one as it is.
    """
    start, end = int(utterance.start_ms), int(utterance.end_ms)
    if end <= start:
        return None
    length = end - start
    pad = pad_start_ms + pad_end_ms
    scale = min(1.0, length / (2 * pad)) if pad > 0 else 0.0
    speech_start = start + round(pad_start_ms * scale)
    speech_end = end - round(pad_end_ms * scale)
    tokens = usable_tokens(utterance.tokens, start, end)
    if tokens:
        first_word = min(int(t.start_ms) for t in tokens)
        last_word = max(int(t.end_ms) for t in tokens)
        bounded = max(speech_start, first_word - word_slack_ms), min(speech_end, last_word + word_slack_ms)
        if bounded[1] > bounded[0]:
            speech_start, speech_end = bounded
    return speech_start, speech_end


def usable_tokens(tokens: Sequence[c.Token], start: int, end: int) -> list[c.Token]:
    if not tokens:
        return []
    if any(
        t.end_ms < t.start_ms or t.start_ms < start - TOKEN_TOLERANCE_MS or t.end_ms > end + TOKEN_TOLERANCE_MS
        for t in tokens
    ):
        return []
    return list(tokens)


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping spans covering the same time (touching spans are joined)."""
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def total(spans: Iterable[Span]) -> int:
    return sum(end - start for start, end in spans)


def gaps(merged: Sequence[Span]) -> list[Span]:
    """The silences between the spans of a union (none before the first or after the last)."""
    return [(a[1], b[0]) for a, b in zip(merged, merged[1:], strict=False)]


def overlap_ms(a: Sequence[Span], b: Sequence[Span]) -> int:
    """Time covered by both unions."""
    i = j = 0
    shared = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            shared += hi - lo
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return shared


@dataclass(frozen=True)
class Barge:
    at_ms: int
    overlap_ms: int


def interruptions(by: Sequence[Span], other: Sequence[Span], min_overlap_ms: int) -> list[Barge]:
    """Where a span of `by` starts while `other` is already speaking and both then speak for at least
    `min_overlap_ms` (a backchannel under the minimum, or a turn the other side yields at once, is not one).
    """
    found = []
    j = 0
    for start, end in by:
        while j < len(other) and other[j][1] <= start:
            j += 1
        if j < len(other) and other[j][0] < start:
            shared = min(end, other[j][1]) - start
            if shared > 0 and shared >= min_overlap_ms:
                found.append(Barge(start, shared))
    return found
