"""Scoring for the hotword corrector: pinyin and letter edit distances, a phonetic key, window search."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from callscribe.kit.zhscript import fold

ZH_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TONE_COST = 0.2  # same syllable, other tone
FUZZY_COST = 0.35  # a common confusion: zh/z, ch/c, sh/s, n/l, an/ang, en/eng, in/ing
MAX_SYLLABLE_COST = 0.67  # a substituted syllable must sound at least this close (hui ~ fei is 2/3)
MIN_WORD_SIMILARITY = 0.7  # an English word replaced in place must keep 70% of its letters
SHORT_TERM = 3  # Chinese terms this short are replaced only over exact homophones (same tones)
FORBIDDEN = 2.0  # above delete + insert: such syllables are never aligned to each other
INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"))
SOUND_CLASSES = {**dict.fromkeys("bfpv", "B"), **dict.fromkeys("cgjkqsxz", "K"), "d": "T", "t": "T", "l": "L"}
SOUND_CLASSES.update({"m": "M", "n": "M", "r": "R"})


@dataclass(frozen=True)
class Candidate:
    start: int
    end: int
    replacement: str
    score: float
    same_length: bool


@dataclass(frozen=True)
class Span:
    """A run of Chinese characters at ``offset`` in the text, with its pinyin (one syllable a character).

    ``text`` is the run as compared: folded to Simplified characters (`kit.zhscript.fold`) where that keeps
    its length, so that a term matches a transcript written in either script."""

    text: str
    offset: int
    plain: list[str]
    toned: list[str]


@dataclass(frozen=True)
class ChineseTerm:
    """A Chinese hotword: ``text`` as given (what a correction writes), ``key`` its folded form (compared)."""

    text: str
    key: str
    plain: list[str]
    toned: list[str]
    max_diff: int
    chars: Counter[str]

    @classmethod
    def build(cls, text: str, ratio: float) -> ChineseTerm:
        key = comparable(text)
        plain, toned = read_pinyin(key)
        return cls(text, key, plain, toned, max_differences(len(key), ratio), Counter(key))


def comparable(chars: str) -> str:
    """``chars`` folded to the one Simplified form terms and transcripts are compared in (營業廳 and 营业厅
    meet); as it is when folding would change its length (positions must map one to one)."""
    folded = fold(chars)
    return folded if len(folded) == len(chars) else chars


@dataclass(frozen=True)
class EnglishTerm:
    text: str
    words: list[str]
    letters: str
    key: str
    max_diff: int
    counts: Counter[str]

    @classmethod
    def build(cls, text: str, words: list[str], ratio: float) -> EnglishTerm:
        letters = "".join(words)
        key = "".join(phonetic_key(w) for w in words)
        return cls(text, words, letters, key, max_differences(len(letters), ratio), Counter(letters))


def max_differences(length: int, ratio: float) -> int:
    """Edits allowed against a term of ``length`` characters: a quarter, at least one."""
    return max(1, math.floor(length * ratio))


def read_pinyin(chars: str) -> tuple[list[str], list[str]]:
    """Toneless and tone-numbered pinyin, one syllable per character (unknown characters read "?")."""
    from pypinyin import Style, lazy_pinyin

    def unknown(x: str) -> list[str]:
        return ["?"] * len(x)

    # pypinyin documents `errors` callables returning a list (one item per character); its type
    # stubs only allow str.
    plain = lazy_pinyin(chars, style=Style.NORMAL, errors=unknown)  # type: ignore[arg-type]
    toned = lazy_pinyin(chars, style=Style.TONE3, neutral_tone_with_five=True, errors=unknown)  # type: ignore[arg-type]
    if len(plain) != len(chars) or len(toned) != len(chars):  # never expected for pure CJK runs
        plain, toned = ["?"] * len(chars), ["?"] * len(chars)
    return plain, toned


def levenshtein(
    a: Sequence[object],
    b: Sequence[object],
    sub: Callable[[int, int], float] | None = None,
    limit: float = math.inf,
) -> float:
    """Edit distance with unit insert/delete and a substitution cost (default 0 if equal else 1).

    Stops early once every path costs more than ``limit`` and then returns a value above it."""
    prev = [float(j) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            cost = sub(i - 1, j - 1) if sub else (0.0 if a[i - 1] == b[j - 1] else 1.0)
            cur[j] = min(prev[j] + 1.0, cur[j - 1] + 1.0, prev[j - 1] + cost)
        if min(cur) > limit:
            return min(cur)
        prev = cur
    return prev[-1]


@lru_cache(maxsize=65536)
def syllable_cost(a: str, b: str, a_toned: str, b_toned: str) -> float:
    if a == b:
        return 0.0 if a_toned == b_toned else TONE_COST
    if _fuzzy(a) == _fuzzy(b):
        return FUZZY_COST
    cost = levenshtein(a, b) / max(len(a), len(b))
    return cost if cost <= MAX_SYLLABLE_COST else FORBIDDEN


def _fuzzy(syllable: str) -> str:
    for full, short in INITIALS:
        if syllable.startswith(full):
            syllable = short + syllable[len(full) :]
            break
    for full, short in FINALS:
        if syllable.endswith(full):
            return syllable[: -len(full)] + short
    return syllable


def pinyin_similarity(plain: list[str], toned: list[str], term: ChineseTerm) -> float:
    def sub(i: int, j: int) -> float:
        return syllable_cost(plain[i], term.plain[j], toned[i], term.toned[j])

    distance = levenshtein(plain, term.plain, sub)
    return 1.0 - distance / max(len(plain), len(term.plain))


def chinese_candidates(term: ChineseTerm, span: Span, threshold: float) -> list[Candidate]:
    n = len(term.key)
    blocked = _occurrences(span.text, term.key)  # the term already there, in either script: left as written
    found = []
    for size in (n, n - 1, n + 1):
        if size < 2 or size > len(span.text):
            continue
        for i in range(len(span.text) - size + 1):
            window = span.text[i : i + size]
            if window == term.key or _overlaps(i, i + size, blocked):
                continue
            if max(size, n) - sum((Counter(window) & term.chars).values()) > term.max_diff:
                continue  # cheap lower bound on the character edit distance
            if size != n and not (span.plain[i] == term.plain[0] and span.plain[i + size - 1] == term.plain[-1]):
                continue  # a longer or shorter window must keep the term's edges (no prefix/suffix grabs)
            if levenshtein(window, term.key, limit=term.max_diff) > term.max_diff:
                continue
            if n <= SHORT_TERM and (size != n or span.toned[i : i + size] != term.toned):
                continue
            score = pinyin_similarity(span.plain[i : i + size], span.toned[i : i + size], term)
            if score >= threshold:
                found.append(Candidate(span.offset + i, span.offset + i + size, term.text, score, size == n))
    return found


def english_candidates(
    term: EnglishTerm, words: list[tuple[int, int, str]], joinable: list[bool], threshold: float
) -> list[Candidate]:
    m = len(term.words)
    lowered = [w for _, _, w in words]
    blocked = _occurrences(lowered, term.words)
    found = []
    for size in (m, m - 1, m + 1):
        for i in range(max(0, len(words) - size + 1) if size >= 1 else 0):
            group = lowered[i : i + size]
            if group == term.words or _overlaps(i, i + size, blocked) or not all(joinable[i : i + size - 1]):
                continue
            if _inflected(group, term.words):
                continue  # "account numbers" is the plural of the term, not a miss
            letters = "".join(group)
            if max(len(letters), len(term.letters)) - sum((Counter(letters) & term.counts).values()) > term.max_diff:
                continue  # cheap lower bound on the letter edit distance
            distance = levenshtein(letters, term.letters, limit=term.max_diff)
            if distance > term.max_diff or (size == m and not _words_close(group, term.words)):
                continue
            key = "".join(phonetic_key(w) for w in group)
            char_sim = 1.0 - distance / max(len(letters), len(term.letters))
            sound_sim = 1.0 - levenshtein(key, term.key) / max(len(key), len(term.key), 1)
            if char_sim >= threshold and sound_sim >= threshold:
                score = (char_sim + sound_sim) / 2
                found.append(Candidate(words[i][0], words[i + size - 1][1], term.text, score, size == m))
    return found


@lru_cache(maxsize=65536)
def phonetic_key(word: str) -> str:
    """A coarse consonant-class key (Soundex classes, vowels and h/w/y dropped, repeats merged)."""
    w = word.lower()
    w = re.sub(r"^kn|^gn|^wr", lambda m: m.group()[1], w)
    w = w.replace("ph", "f").replace("ck", "k").replace("gh", "").replace("qu", "kw").replace("x", "ks")
    w = re.sub(r"c(?=[eiy])", "s", w)
    out: list[str] = []
    for ch in w:
        cls = SOUND_CLASSES.get(ch, "")
        if cls and (not out or out[-1] != cls):
            out.append(cls)
        elif not cls and ch.isdigit():
            out.append(ch)
    return "".join(out)


def pick_non_overlapping(candidates: list[Candidate]) -> list[Candidate]:
    """Best score first (ties: the term's own length, then leftmost); overlapping ones are dropped."""
    chosen: list[Candidate] = []
    for cand in sorted(candidates, key=lambda c: (-c.score, not c.same_length, c.start)):
        if not any(cand.start < c.end and c.start < cand.end for c in chosen):
            chosen.append(cand)
    return chosen


def _words_close(group: list[str], words: list[str]) -> bool:
    """Word by word, each changed word keeps most of its letters ("debet" ~ "debit", not "served" ~ "service")."""
    for got, want in zip(group, words, strict=True):
        if got != want and levenshtein(got, want) / max(len(got), len(want)) > 1.0 - MIN_WORD_SIMILARITY:
            return False
    return True


def _inflected(group: list[str], words: list[str]) -> bool:
    last = group[-1] if group else ""
    return group[:-1] == words[:-1] and last in (words[-1] + "s", words[-1] + "es")


def _occurrences(seq: Sequence[object], part: Sequence[object]) -> list[tuple[int, int]]:
    n = len(part)
    return [(i, i + n) for i in range(len(seq) - n + 1) if list(seq[i : i + n]) == list(part)]


def _overlaps(start: int, end: int, ranges: list[tuple[int, int]]) -> bool:
    return any(start < b and a < end for a, b in ranges)
