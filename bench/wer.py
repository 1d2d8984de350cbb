"""Word error rate for the English call corpus, shared by the ASR benchmarks.

Hypotheses and references are normalized the same way (lowercase, digits spelled out the way the
corpus reads them, punctuation removed) and scored with jiwer: one global alignment count over every
channel of every call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
ONES += "seventeen eighteen nineteen"
SMALL = ONES.split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

References = Sequence[tuple[str, str]]  # per call: channel 0, channel 1
Hypotheses = dict[tuple[int, int], str]  # (call index, channel) -> text


def _cardinal(n: int) -> str:
    if n < 20:
        return SMALL[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + SMALL[n % 10])
    rest = n % 100
    return f"{SMALL[n // 100]} hundred" + ("" if rest == 0 else " " + _cardinal(rest))


def _spell(match: re.Match[str]) -> str:
    digits = match.group()
    if len(digits) > 3 or (len(digits) > 1 and digits[0] == "0"):
        return " " + " ".join(SMALL[int(d)] for d in digits) + " "  # an order or card number, read digit by digit
    return " " + _cardinal(int(digits)) + " "


def normalize(text: str) -> str:
    """Lowercase, digits spelled out, punctuation removed, whitespace collapsed."""
    text = text.lower().replace("%", " percent ")
    text = re.sub(r"(?<=\d)[,-](?=\d)", "", text)
    text = re.sub(r"\d+", _spell, text)
    text = text.replace("'", "")
    return " ".join(re.sub(r"[^a-z]+", " ", text).split())


def corpus_wer(references: References, hypotheses: Hypotheses) -> float:
    """Word error rate over every channel of every call (a missing hypothesis counts as empty)."""
    import jiwer

    refs, hyps = [], []
    for i, pair in enumerate(references):
        for channel in (0, 1):
            refs.append(normalize(pair[channel]))
            hyps.append(normalize(hypotheses.get((i, channel), "")))
    return float(jiwer.wer(refs, hyps))


def channel_details(names: Sequence[str], references: References, hypotheses: Hypotheses) -> list[dict[str, Any]]:
    """Each channel's WER and hypothesis (for the JSON: where the errors are)."""
    import jiwer

    out = []
    for (i, channel), text in sorted(hypotheses.items()):
        ref = normalize(references[i][channel])
        wer = 100 * float(jiwer.wer(ref, normalize(text)))
        out.append({"call": names[i], "channel": channel, "wer_percent": wer, "hypothesis": text})
    return out
