"""Engine-independent hotword correction: replace near-miss spans of a transcript with configured terms.

Chinese terms are compared by pinyin: every run of Chinese characters is read once (pypinyin, with
context for polyphones), and windows of the term's length and ±1 characters are scored by an edit
distance over syllables whose substitution cost is the letter distance between the two syllables (0 for
homophones, a small cost for a tone or a common confusion such as zh/z, an/ang, n/l). English terms are
compared over windows of whole words: letters edit distance with the spaces dropped ("re fund" ≈ "refund")
and the same over a coarse phonetic key of each word. A span is replaced only when it differs from the
term by at most a quarter of its characters, every substituted syllable sounds close, and both scores
clear the threshold; a span that already is the term is never touched, nor is anything overlapping one.

Scripts: terms and transcripts are compared folded to Simplified characters (`kit.zhscript.fold`, OpenCC), so
a hotword written in Simplified characters corrects a transcript written in Traditional ones (Whisper's usual
Mandarin) and the other way round; a span that already is the term in the other script is left as written.
A correction writes the term as configured; the indexer then writes the whole text in the tenant's script.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from callscribe.asr.engines.base import Hotword
from callscribe.asr.hotword_match import (
    ZH_CHARS,
    Candidate,
    ChineseTerm,
    EnglishTerm,
    Span,
    chinese_candidates,
    comparable,
    english_candidates,
    pick_non_overlapping,
    read_pinyin,
)

log = logging.getLogger(__name__)

ZH_THRESHOLD = 0.8
EN_THRESHOLD = 0.8
MAX_DIFF_RATIO = 0.25
ZH_MIN_CHARS = 2
EN_MIN_LETTERS = 4
ZH_RUN = re.compile(f"[{ZH_CHARS}]+")
EN_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True)
class Replacement:
    start: int  # character offsets in the text given to ``correct``
    end: int
    original: str
    replacement: str
    score: float


class HotwordCorrector:
    """Precomputes each term's keys once; ``correct`` is then cheap enough for every utterance."""

    def __init__(
        self,
        hotwords: Sequence[Hotword],
        language: str = "auto",
        zh_threshold: float = ZH_THRESHOLD,
        en_threshold: float = EN_THRESHOLD,
    ) -> None:
        self.language = language
        self.zh_threshold = zh_threshold
        self.en_threshold = en_threshold
        self._zh: list[ChineseTerm] = []
        self._en: list[EnglishTerm] = []
        for hotword in dict.fromkeys(h.text.strip() for h in hotwords if h.text.strip()):
            self._add(hotword)
        log.debug("hotword corrector: %d Chinese, %d English terms", len(self._zh), len(self._en))

    def _add(self, text: str) -> None:
        if ZH_RUN.search(text):
            if language_allows(self.language, "zh") and len(text) >= ZH_MIN_CHARS and ZH_RUN.fullmatch(text):
                self._zh.append(ChineseTerm.build(text, MAX_DIFF_RATIO))
            else:
                log.debug("hotword %r not used for correction (too short or mixed script)", text)
            return
        words = [w.lower() for w in EN_WORD.findall(text)]
        if sum(len(w) for w in words) >= EN_MIN_LETTERS:
            self._en.append(EnglishTerm.build(text, words, MAX_DIFF_RATIO))
        else:
            log.debug("hotword %r too short to correct fuzzily", text)

    def correct(self, text: str) -> tuple[str, list[Replacement]]:
        """Return the corrected text and what was replaced (offsets into the original text)."""
        if not text or (not self._zh and not self._en):
            return text, []
        candidates: list[Candidate] = []
        if self._zh:
            candidates += self._chinese(text)
        if self._en:
            candidates += self._english(text)
        chosen = pick_non_overlapping(candidates)
        out, last, replacements = [], 0, []
        for cand in sorted(chosen, key=lambda c: c.start):
            new = _match_case(text[cand.start : cand.end], cand.replacement)
            out += [text[last : cand.start], new]
            replacements.append(Replacement(cand.start, cand.end, text[cand.start : cand.end], new, cand.score))
            last = cand.end
        out.append(text[last:])
        return "".join(out), replacements

    def _chinese(self, text: str) -> list[Candidate]:
        found: list[Candidate] = []
        for run in ZH_RUN.finditer(text):
            chars = comparable(run.group())
            plain, toned = read_pinyin(chars)
            span = Span(chars, run.start(), plain, toned)
            for term in self._zh:
                found += chinese_candidates(term, span, self.zh_threshold)
        return found

    def _english(self, text: str) -> list[Candidate]:
        words = [(m.start(), m.end(), m.group().lower()) for m in EN_WORD.finditer(text)]
        joinable = [bool(re.fullmatch(r"[\s-]*", text[a[1] : b[0]])) for a, b in zip(words, words[1:], strict=False)]
        found: list[Candidate] = []
        for term in self._en:
            found += english_candidates(term, words, joinable, self.en_threshold)
        return found


def language_allows(language: str, script: str) -> bool:
    """Chinese terms are skipped for English transcripts; English terms apply everywhere (code-switching)."""
    return not (language == "en" and script == "zh")


def _match_case(original: str, replacement: str) -> str:
    if original[:1].isupper() and replacement[:1].islower():
        return replacement[:1].upper() + replacement[1:]
    return replacement
