"""Chinese characters in one form for comparing: OpenCC (the `opencc` package) conversions shared by services.

Whisper writes Mandarin mostly in Traditional characters (謝謝, 營業), Paraformer in Simplified ones, and people
type either. `fold(text)` is the one Simplified form text is compared in (never shown): Hong Kong variants
(`hk2s`), then Taiwan variants and everything else (`tw2s`), so that 著急 and 着急, 衞生 and 卫生 meet. The
indexer folds for search, keywords, QA rules and sentiment; the ASR folds when it matches hotwords.

OpenCC converts character by character and by phrase tables of equal length, so a converted text has the
length of the original in practice; callers that map positions between the two check it anyway.

Converters are loaded on first use (a few ms each) and shared by every thread.
"""

from __future__ import annotations

import re
import threading

import opencc

FOLD_CONFIGS = ("hk2s", "tw2s")
# Han characters (CJK unified ideographs, extension A, compatibility ideographs): nothing else is converted.
HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class _Converter:
    """One OpenCC converter, used by one thread at a time (its thread safety is not documented; a
    conversion takes microseconds, so the lock costs nothing that matters)."""

    def __init__(self, config: str) -> None:
        self._opencc = opencc.OpenCC(config)
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            return str(self._opencc.convert(text))


_converters: dict[str, _Converter] = {}
_converters_lock = threading.Lock()


def converter(config: str) -> _Converter:
    """The shared converter of one OpenCC configuration (t2s, s2t, s2tw, s2hk, hk2s, tw2s, ...)."""
    found = _converters.get(config)
    if found is None:
        with _converters_lock:
            found = _converters.get(config)
            if found is None:
                found = _converters[config] = _Converter(config)
    return found


def has_han(text: str) -> bool:
    return bool(HAN_RE.search(text))


def convert(text: str, config: str) -> str:
    """`text` through one OpenCC configuration; text without Han characters as it is."""
    if not text or not has_han(text):
        return text
    return converter(config)(text)


def fold(text: str) -> str:
    """The Simplified form `text` is compared in."""
    if not text or not has_han(text):
        return text
    for config in FOLD_CONFIGS:
        text = converter(config)(text)
    return text
