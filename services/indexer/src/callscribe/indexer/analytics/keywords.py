"""Phrase matching on utterance text and placing each match in time.

English phrases (no Chinese characters) match whole words, case-insensitively; the words of a phrase may be
separated by spaces or hyphens, and a trailing ``*`` matches any ending (``cancel*``: cancel, cancelled,
cancellation). Phrases with Chinese characters match as substrings, ignoring whitespace and case; they are
compared in the Simplified form of `callscribe.indexer.script.fold`, with the text folded the same way (退費
and 退费 are one phrase; the spans found are positions in the folded text).

A match is placed in time by the utterance's word times where it has them (the same phrase found in the
words, or else the words at the same relative position of the text); otherwise it gets the utterance's span.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from callscribe.indexer.script import fold
from callscribe.v1 import common_pb2 as c

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD_CHAR = "0-9a-z"


@dataclass(frozen=True)
class PhraseMatcher:
    phrase: str
    regex: re.Pattern[str] | None  # English phrases
    compact: str  # phrases with Chinese characters: lowercased, whitespace removed

    def find(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the non-overlapping matches in `text` (in `fold(text)` for a Chinese phrase)."""
        if self.regex is not None:
            return [m.span() for m in self.regex.finditer(text)]
        squeezed, keep = _squeeze(fold(text))
        spans = []
        at = squeezed.find(self.compact)
        while at >= 0 and self.compact:
            spans.append((keep[at], keep[at + len(self.compact) - 1] + 1))
            at = squeezed.find(self.compact, at + len(self.compact))
        return spans


@functools.lru_cache(maxsize=256)
def _squeeze(text: str) -> tuple[str, tuple[int, ...]]:
    """`text` lowercased without whitespace, and where each of its characters was in `text`."""
    keep = tuple(i for i, ch in enumerate(text) if not ch.isspace())
    return "".join(_lower1(text[i]) for i in keep), keep


def _lower1(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch


@functools.lru_cache(maxsize=4096)
def matcher(phrase: str) -> PhraseMatcher:
    phrase = phrase.strip()
    if _CJK_RE.search(phrase):
        return PhraseMatcher(phrase, None, "".join(_lower1(ch) for ch in fold(phrase) if not ch.isspace()))
    parts = []
    for word in phrase.split():
        if word.endswith("*"):
            parts.append(re.escape(word[:-1]) + f"[{_WORD_CHAR}']*")
        else:
            parts.append(re.escape(word))
    pattern = f"(?<![{_WORD_CHAR}])" + r"[\s\-]+".join(parts) + f"(?![{_WORD_CHAR}])"
    return PhraseMatcher(phrase, re.compile(pattern, re.IGNORECASE), "")


def place(
    m: PhraseMatcher,
    text: str,
    spans: list[tuple[int, int]],
    index: int,
    tokens: Sequence[c.Token],
    fallback: tuple[int, int],
) -> tuple[int, int]:
    """Start and end (ms) of the `index`-th of `spans` (matches of `m` in `text`, folded); the words are folded
    here."""
    if not tokens:
        return fallback
    words = [fold(t.text.strip()) for t in tokens]
    joined, offsets = "", []
    for word in words:
        if joined:
            joined += " "
        offsets.append((len(joined), len(joined) + len(word)))
        joined += word
    in_words = m.find(joined)
    if len(in_words) == len(spans):
        lo, hi = in_words[index]
        chosen = [k for k, (a, b) in enumerate(offsets) if a < hi and b > lo]
    else:  # the words differ from the text (normalization): the same relative position
        size = max(1, len(text))
        first = min(len(tokens) - 1, int(spans[index][0] / size * len(tokens)))
        last = min(len(tokens) - 1, max(first, int((spans[index][1] - 1) / size * len(tokens))))
        chosen = list(range(first, last + 1))
    if not chosen:
        return fallback
    start = min(int(tokens[k].start_ms) for k in chosen)
    end = max(int(tokens[k].end_ms) for k in chosen)
    return (start, end) if end >= start else fallback


_NOT_WORD_RE = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _squash(text: str) -> str:
    return " ".join(_NOT_WORD_RE.sub(" ", text.lower()).split())


MAX_BACKCHANNEL_CHARS = 40


def _ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


@functools.lru_cache(maxsize=64)
def _backchannel_set(phrases: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_squash(fold(p)) for p in phrases) - {""}


def is_backchannel(text: str, phrases: tuple[str, ...]) -> bool:
    """Whether `text` is made only of the given phrases ("Mm-hmm, ok." for "mm hmm" and "ok"; "对对" for "对").

    Punctuation, case and hyphens are ignored; a Latin phrase must end at a word boundary. Phrases and text
    are compared folded to Simplified characters (`script.fold`: 對 is 对).
    """
    known = _backchannel_set(phrases)
    squashed = _squash(fold(text))
    if not known or not squashed or len(squashed) > MAX_BACKCHANNEL_CHARS:
        return False
    longest = max(len(p) for p in known)
    reachable = [False] * (len(squashed) + 1)  # reachable[i]: squashed[:i] is a sequence of phrases
    reachable[0] = True
    for i in range(len(squashed)):
        if not reachable[i]:
            continue
        start = i + 1 if squashed[i] == " " else i
        for j in range(start + 1, min(len(squashed), start + longest) + 1):
            boundary = j == len(squashed) or not (_ascii_alnum(squashed[j - 1]) and _ascii_alnum(squashed[j]))
            if boundary and squashed[start:j] in known:
                reachable[j] = True
    return reachable[-1]
