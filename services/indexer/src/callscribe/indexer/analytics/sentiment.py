"""Lexicon-based sentiment for English and Chinese (no model): a score from -1 to 1 and a label.

How a text is scored:

1. It is split into Latin words, runs of Chinese characters and punctuation. Word sequences are matched
   against the English lexicon longest phrase first ("not working", "thank you for calling"); Chinese
   runs are segmented by forward maximum matching over the Chinese lexicon and the modifiers (characters
   that match nothing stay single tokens).
2. Each sentiment term contributes its weight (-3..3). Looking back up to 3 tokens, within the clause
   (punctuation and "but" end a clause): every intensifier multiplies the value by its factor ("very"
   1.5, "有点" 0.7), and an odd number of negators ("not", "n't", "不", "没") turns it into -0.5 times
   the value ("not bad" -> mildly positive, "不满意" is its own lexicon entry).
3. A contrast word ("but", "但是", "不过") halves what came before it and multiplies what follows by 1.5.
4. The sum S becomes S / sqrt(S^2 + 4), in (-1, 1): one "great" (2) gives 0.71, one "thanks" (1) 0.45.

Labels: positive at or above the positive threshold (default 0.2), negative at or below the negative
threshold (default -0.2), neutral between. The lexicon files (lexicon_en.tsv, lexicon_zh.tsv,
modifiers.tsv) are in this package. Chinese terms are kept in the Simplified form of
`callscribe.indexer.script.fold`, and text is folded the same way before it is scored.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from importlib import resources

from callscribe.indexer.script import fold

WINDOW = 3
NEGATION_FACTOR = -0.5
CONTRAST_BEFORE = 0.5
CONTRAST_AFTER = 1.5
ALPHA = 4.0

POSITIVE = "positive"
NEUTRAL = "neutral"
NEGATIVE = "negative"

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[a-z0-9]+(?:'[a-z]+)*|[{_CJK}]+|[.,!?;:\u3002\uff0c\uff01\uff1f\uff1b\uff1a\u3001\u2026]")
_CJK_RE = re.compile(rf"[{_CJK}]")
_PUNCT = "punct"


@dataclass(frozen=True)
class Entry:
    kind: str  # "term", "negator", "intensifier", "contrast"
    value: float = 0.0  # weight of a term, factor of an intensifier


@dataclass(frozen=True)
class Lexicon:
    en: dict[str, Entry]  # key: words joined by single spaces
    en_max_words: int
    zh: dict[str, Entry]
    zh_max_chars: int

    def with_terms(self, terms: tuple[tuple[str, float], ...]) -> Lexicon:
        if not terms:
            return self
        en, zh = dict(self.en), dict(self.zh)
        for term, weight in terms:
            key = term.lower()
            if _CJK_RE.search(key):
                zh[fold(key.replace(" ", ""))] = Entry("term", weight)
            else:
                en[" ".join(key.split())] = Entry("term", weight)
        return Lexicon(en, _max_len(en, words=True), zh, _max_len(zh, words=False))


def _max_len(table: dict[str, Entry], *, words: bool) -> int:
    return max((len(k.split()) if words else len(k) for k in table), default=1)


def _rows(name: str) -> list[list[str]]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{name} line {number}: expected tab-separated fields, got {line!r}")
        rows.append(fields)
    return rows


@functools.cache
def builtin_lexicon() -> Lexicon:
    en: dict[str, Entry] = {}
    zh: dict[str, Entry] = {}
    for table, name in ((en, "lexicon_en.tsv"), (zh, "lexicon_zh.tsv")):
        for term, weight, *_ in _rows(name):
            table[fold(term.strip().lower())] = Entry("term", float(weight))
    for term, kind, factor, *_ in _rows("modifiers.tsv"):
        if kind not in ("negator", "intensifier", "contrast"):
            raise ValueError(f"modifiers.tsv: unknown kind {kind!r} for {term!r}")
        key = fold(term.strip().lower())
        (zh if _CJK_RE.search(key) else en)[key] = Entry(kind, float(factor))
    return Lexicon(en, _max_len(en, words=True), zh, _max_len(zh, words=False))


@functools.lru_cache(maxsize=16)
def lexicon_for(terms: tuple[tuple[str, float], ...]) -> Lexicon:
    return builtin_lexicon().with_terms(terms)


def _tokens(text: str, lex: Lexicon) -> list[Entry | None | str]:
    """The text as a list of lexicon entries, None for tokens outside the lexicon, and _PUNCT."""
    out: list[Entry | None | str] = []
    words: list[str] = []

    def flush_words() -> None:
        i = 0
        while i < len(words):
            for n in range(min(lex.en_max_words, len(words) - i), 0, -1):
                entry = lex.en.get(" ".join(words[i : i + n]))
                if entry is not None:
                    out.append(entry)
                    i += n
                    break
            else:
                out.append(None)
                i += 1
        words.clear()

    for match in _TOKEN_RE.finditer(text.lower().replace("\u2019", "'")):
        piece = match.group()
        if piece[0].isascii() and piece[0].isalnum():
            words.append(piece)
            continue
        flush_words()
        if _CJK_RE.match(piece):
            i = 0
            while i < len(piece):
                for n in range(min(lex.zh_max_chars, len(piece) - i), 0, -1):
                    entry = lex.zh.get(piece[i : i + n])
                    if entry is not None:
                        out.append(entry)
                        i += n
                        break
                else:
                    out.append(None)
                    i += 1
        else:
            out.append(_PUNCT)
    flush_words()
    return out


def raw_score(text: str, lex: Lexicon) -> float:
    """The summed contribution of the sentiment terms of `text` (unbounded)."""
    tokens = _tokens(fold(text), lex)
    before = 0.0  # the part before the last contrast word
    current = 0.0
    contrast = False
    clause_start = 0
    for i, tok in enumerate(tokens):
        if tok == _PUNCT:
            clause_start = i + 1
            continue
        if not isinstance(tok, Entry):
            continue
        if tok.kind == "contrast":
            before = (before + current) * CONTRAST_BEFORE
            current = 0.0
            contrast = True
            clause_start = i + 1
            continue
        if tok.kind != "term" or tok.value == 0.0:
            continue
        value = tok.value
        negations = 0
        for prev in tokens[max(clause_start, i - WINDOW) : i]:
            if isinstance(prev, Entry):
                if prev.kind == "negator":
                    negations += 1
                elif prev.kind == "intensifier":
                    value *= prev.value
        if negations % 2:
            value *= NEGATION_FACTOR
        current += value * (CONTRAST_AFTER if contrast else 1.0)
    return before + current


def normalize(total: float) -> float:
    return total / math.sqrt(total * total + ALPHA) if total else 0.0


def score(text: str, lex: Lexicon | None = None) -> float:
    """Sentiment of `text` from -1 (negative) to 1 (positive); 0 when no sentiment term is found."""
    return normalize(raw_score(text, lex or builtin_lexicon()))


def label(value: float, positive_threshold: float = 0.2, negative_threshold: float = -0.2) -> str:
    if value >= positive_threshold:
        return POSITIVE
    if value <= negative_threshold:
        return NEGATIVE
    return NEUTRAL
