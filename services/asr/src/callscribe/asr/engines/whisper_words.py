"""Word times for a Whisper decode from CTranslate2's cross-attention alignment.

``Whisper.align`` returns, for the text tokens plus the end token, a monotonic path of
(token index, audio frame) pairs at 50 frames per second and each token's probability. A token starts
at the first frame the path reaches it; a word spans from its first token's start to the start of the
token after it (the end token closes the last word).
"""

from __future__ import annotations

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


def align_words(tokenizer: Any, tokens: list[int], result: Any, offset_ms: int) -> list[TokenTime]:
    """Split ``tokens`` into words (spaces, or characters for unspaced languages) with times and mean probability."""
    words, groups = tokenizer.split_to_word_tokens([*tokens, tokenizer.eot])
    starts = token_starts_ms(list(result.alignments), len(tokens) + 1)
    probs = np.asarray(result.text_token_probs, dtype=np.float64)
    out, first = [], 0
    for word, group in zip(words, groups, strict=True):
        last = first + len(group)
        text = word.strip()
        if text and group != [tokenizer.eot]:
            if out and not any(ch.isalnum() for ch in text):  # punctuation joins the word before it
                prev = out[-1]
                out[-1] = TokenTime(prev.text + text, prev.start_ms, prev.end_ms, prev.confidence)
            else:
                end = starts[min(last, len(starts) - 1)]
                chunk = probs[first : min(last, len(probs))]
                confidence = float(chunk.mean()) if chunk.size else 0.0
                out.append(TokenTime(text, offset_ms + starts[first], offset_ms + max(end, starts[first]), confidence))
        first = last
    return out
