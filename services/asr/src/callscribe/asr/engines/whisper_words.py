"""Word times for a Whisper decode from CTranslate2's cross-attention alignment.

``Whisper.align`` returns, for the text tokens plus the end token, a monotonic path of
(token index, audio frame) pairs at 50 frames per second and each token's probability. A token starts
at the first frame the path reaches it; a word spans from its first token's start to the start of the
token after it (the end token closes the last word).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from callscribe.asr.engines.base import TokenTime

FRAMES_PER_SECOND = 50  # encoder output rate: 100 mel frames/s, stride 2


def token_starts_ms(alignments: list[tuple[int, int]], count: int) -> list[int]:
    """Start time in ms of tokens 0..count-1 (missing ones take the previous start)."""
    starts: list[int | None] = [None] * count
    for text_index, frame in alignments:
        if 0 <= text_index < count and starts[text_index] is None:
            starts[text_index] = int(frame) * 1000 // FRAMES_PER_SECOND
    filled, last = [], 0
    for value in starts:
        last = last if value is None else max(value, last)
        filled.append(last)
    return filled


@dataclass(frozen=True)
class AlignedWord:
    """A word as Whisper wrote it (``raw`` keeps its leading space) with its time and token scores."""

    raw: str
    start_ms: int
    end_ms: int
    confidence: float  # mean probability of the word's tokens (trailing punctuation not counted)
    logprob: float  # sum of the log-probabilities of all its tokens, punctuation included
    tokens: int  # how many tokens

    @property
    def text(self) -> str:
        return self.raw.strip()

    def token_time(self) -> TokenTime:
        return TokenTime(self.text, self.start_ms, self.end_ms, self.confidence)


def aligned_words(tokenizer: Any, tokens: list[int], result: Any, offset_ms: int) -> list[AlignedWord]:
    """Split ``tokens`` into words (spaces, or characters for unspaced languages) with times and scores."""
    words, groups = tokenizer.split_to_word_tokens([*tokens, tokenizer.eot])
    starts = token_starts_ms(list(result.alignments), len(tokens) + 1)
    probs = np.asarray(result.text_token_probs, dtype=np.float64)
    logprobs = np.log(np.clip(probs, 1e-12, 1.0))
    out: list[AlignedWord] = []
    first = 0
    for word, group in zip(words, groups, strict=True):
        last = first + len(group)
        if word.strip() and group != [tokenizer.eot]:
            chunk = logprobs[first : min(last, len(logprobs))]
            if out and not any(ch.isalnum() for ch in word):  # punctuation joins the word before it
                prev = out[-1]
                logprob, count = prev.logprob + float(chunk.sum()), prev.tokens + chunk.size
                out[-1] = AlignedWord(prev.raw + word, prev.start_ms, prev.end_ms, prev.confidence, logprob, count)
            else:
                end = starts[min(last, len(starts) - 1)]
                start, stop = offset_ms + starts[first], offset_ms + max(end, starts[first])
                confidence = float(np.exp(chunk).mean()) if chunk.size else 0.0
                out.append(AlignedWord(word, start, stop, confidence, float(chunk.sum()), chunk.size))
        first = last
    return out


def align_words(tokenizer: Any, tokens: list[int], result: Any, offset_ms: int) -> list[TokenTime]:
    """Split ``tokens`` into words (spaces, or characters for unspaced languages) with times and probability."""
    return [w.token_time() for w in aligned_words(tokenizer, tokens, result, offset_ms)]
