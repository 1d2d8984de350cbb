"""Precision and recall of the indexer's PII detector on the labelled set, as a Markdown table.

    python bench/pii_eval.py [--set dev|held_out] [--misses] [--labelled FILE]

Reads tests/data/pii/labelled.jsonl (call-center utterances in Chinese and English with the PII they hold:
`callscribe.indexer.pii.evaluate`), runs `find_pii` on each and prints per-category and overall figures, all
lines and then each subset: ``dev`` (written while the detector was built) and ``held_out`` (written after, not
tuned on). ``--misses`` lists each false negative and false positive. Also measures the speed (ms per utterance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from callscribe.indexer.pii.detect import find_pii
from callscribe.indexer.pii.evaluate import SETS, Example, load_examples, score, table

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii" / "labelled.jsonl"


def report(name: str, examples: list[Example], misses: bool) -> None:
    scores = score(examples)
    print(f"\n### {name}\n\n{table(scores, len(examples))}")
    if misses and scores.misses:
        print("\n" + "\n".join(scores.misses))


def speed_ms(examples: list[Example], passes: int = 3) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for example in examples:
            find_pii(example.text, example.language, before=example.before)
        best = min(best, time.perf_counter() - started)
    return best * 1000 / len(examples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=Path, default=LABELLED)
    parser.add_argument("--set", choices=SETS, default=None, help="only this subset (default: all, then each)")
    parser.add_argument("--misses", action="store_true", help="list the false negatives and false positives")
    args = parser.parse_args()
    examples = load_examples(args.labelled)
    subsets = [args.set] if args.set else list(SETS)
    if args.set is None:
        report("all lines", examples, args.misses)
    for subset in subsets:
        report(subset, [e for e in examples if e.set == subset], args.misses)
    print(f"\n{speed_ms(examples):.3f} ms per utterance (find_pii, one thread, best of 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
