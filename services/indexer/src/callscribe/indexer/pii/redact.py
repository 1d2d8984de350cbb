"""redact(text, language, policy): the text with each PII span the policy masks replaced by a label.

A mask is the category in capitals in brackets, the same in Chinese and English text: ``[CARD]``, ``[CN_ID]``,
``[BANK_ACCOUNT]``, ``[PHONE]``, ``[EMAIL]``, ``[VERIFICATION_CODE]``. It replaces the whole span (separators
and the words of a spoken number too), so neither the digits nor their count can be read from it. Only a
policy's ``keep_last`` (cards and bank accounts) adds the last digits, as written digits: ``[CARD ****5678]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callscribe.indexer.pii.detect import Span, find_pii
from callscribe.indexer.pii.digits import digit_runs
from callscribe.kit.redaction import DEFAULT_REDACTION, RedactionPolicy

_KEEP_LAST_CATEGORIES = ("card", "bank_account")


@dataclass(frozen=True)
class Masked:
    """A masked span: where it was in the input text (code points, end exclusive) and what replaced it."""

    start: int
    end: int
    category: str
    mask: str


@dataclass(frozen=True)
class Redacted:
    text: str
    masked: tuple[Masked, ...]  # what the policy masked
    kept: tuple[Span, ...] = ()  # PII found in a category the policy leaves readable


def mask_for(category: str, value: str, keep_last: int = 0) -> str:
    label = category.upper()
    if keep_last and category in _KEEP_LAST_CATEGORIES:
        digits = "".join(segment.digits for run in digit_runs(value) for segment in run)
        return f"[{label} ****{digits[-keep_last:]}]"
    return f"[{label}]"


def redact(
    text: str, language: str, policy: RedactionPolicy = DEFAULT_REDACTION, *, before: str = "", after: str = ""
) -> Redacted:
    """What the index stores for `text` under `policy` (`before`/`after`: the neighbouring utterances, see
    `find_pii`)."""
    found = find_pii(text, language, before=before, after=after) if text else []
    masked = [span for span in found if span.category in policy.categories]
    kept = tuple(span for span in found if span.category not in policy.categories)
    return apply(text, masked, policy.keep_last, kept)


def apply(text: str, spans: Sequence[Span], keep_last: int = 0, kept: tuple[Span, ...] = ()) -> Redacted:
    """`text` with `spans` (in order, not overlapping) masked."""
    parts, masked, position = [], [], 0
    for span in spans:
        mask = mask_for(span.category, text[span.start : span.end], keep_last)
        parts += [text[position : span.start], mask]
        masked.append(Masked(span.start, span.end, span.category, mask))
        position = span.end
    parts.append(text[position:])
    return Redacted("".join(parts), tuple(masked), kept)


def render(text: str, masked: Sequence[Masked], start: int, end: int) -> str:
    """`text[start:end]` as the redacted text shows it: a masked span that reaches into it becomes its mask."""
    parts, position = [], start
    for span in masked:
        if span.end <= start or span.start >= end:
            continue
        parts += [text[position : max(position, span.start)], span.mask]
        position = max(position, span.end)
    parts.append(text[position:end])
    return "".join(parts)
