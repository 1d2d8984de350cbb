"""Precision and recall of `find_pii` on a labelled set (tests/data/pii/labelled.jsonl; `bench/pii_eval.py`
prints the table).

A labelled line is ``{"text", "language", "entities": [{"category", "value"}], "before"?, "set"?}``: each value
occurs once in the text, ``before`` is the utterance said before it, ``set`` is ``held_out`` for the lines written
after the detector was tuned (and not tuned on), else ``dev``. An expected entity is found when a span of its
category covers every character of its value; a span that covers no expected entity of its category is a false
positive. "masked" counts an entity covered by a span of any category: what matters for privacy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from callscribe.indexer.pii.detect import LANGUAGES, Span, find_pii
from callscribe.kit.redaction import PII_CATEGORIES

SETS = ("dev", "held_out")


@dataclass(frozen=True)
class Example:
    text: str
    language: str
    entities: tuple[tuple[str, str], ...]  # (category, value)
    before: str = ""
    set: str = "dev"  # or "held_out"

    def expected(self) -> list[Span]:
        return [Span(self.text.index(v), self.text.index(v) + len(v), c) for c, v in self.entities]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Scores:
    by_category: dict[str, Counts] = field(default_factory=lambda: {c: Counts() for c in PII_CATEGORIES})
    masked: int = 0  # expected entities covered by a span of any category
    misses: list[str] = field(default_factory=list)  # "FN category value in text" / "FP ..." lines

    @property
    def overall(self) -> Counts:
        total = Counts()
        for counts in self.by_category.values():
            total.tp, total.fp, total.fn = total.tp + counts.tp, total.fp + counts.fp, total.fn + counts.fn
        return total


def load_examples(path: Path) -> list[Example]:
    """The labelled set; ValueError naming the line when one is malformed."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            examples.append(_example(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    return examples


def _example(row: dict) -> Example:
    text, language = str(row["text"]), str(row["language"])
    if language not in LANGUAGES:
        raise ValueError(f"language must be zh or en, got {language!r}")
    entities = tuple((str(e["category"]), str(e["value"])) for e in row["entities"])
    for category, value in entities:
        if category not in PII_CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        if text.count(value) != 1:
            raise ValueError(f"{value!r} must occur exactly once in the text")
    subset = str(row.get("set", "dev"))
    if subset not in SETS:
        raise ValueError(f"set must be one of {', '.join(SETS)}, got {subset!r}")
    return Example(text, language, entities, str(row.get("before", "")), subset)


def score(examples: Iterable[Example]) -> Scores:
    scores = Scores()
    for example in examples:
        found = find_pii(example.text, example.language, before=example.before)
        _score_one(example, found, scores)
    return scores


def _covers(span: Span, expected: Span) -> bool:
    return span.start <= expected.start and expected.end <= span.end


def _score_one(example: Example, found: list[Span], scores: Scores) -> None:
    expected = example.expected()
    for want in expected:
        counts = scores.by_category[want.category]
        if any(_covers(span, want) and span.category == want.category for span in found):
            counts.tp += 1
        else:
            counts.fn += 1
            scores.misses.append(f"FN {want.category} {example.text[want.start : want.end]!r} in {example.text!r}")
        scores.masked += any(_covers(span, want) for span in found)
    for span in found:
        if not any(_covers(span, want) and span.category == want.category for want in expected):
            scores.by_category[span.category].fp += 1
            scores.misses.append(f"FP {span.category} {example.text[span.start : span.end]!r} in {example.text!r}")


def table(scores: Scores, examples: int) -> str:
    """The figures as a Markdown table."""
    lines = ["| category | expected | found | false positives | precision | recall |", "|---|--:|--:|--:|--:|--:|"]
    rows = [*scores.by_category.items(), ("**overall**", scores.overall)]
    for name, c in rows:
        lines.append(f"| {name} | {c.tp + c.fn} | {c.tp} | {c.fp} | {c.precision:.3f} | {c.recall:.3f} |")
    total = scores.overall.tp + scores.overall.fn
    lines.append(f"\n{examples} utterances; {scores.masked} of {total} entities masked whatever the category.")
    return "\n".join(lines)
