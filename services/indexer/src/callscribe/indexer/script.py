"""Chinese scripts: Simplified and Traditional characters, converted with OpenCC (the `opencc` package).

Whisper writes Mandarin mostly in Traditional characters (謝謝, 營業), Paraformer in Simplified ones; a tenant
chooses the script its normalized text is written in (`zh_script` in the tenants file, else
INDEXER_ZH_SCRIPT). Three uses, each with its own OpenCC configuration:

- `to_script(text, script)`: the text in an output script, before ITN: `t2s` (simplified), `s2t`
  (traditional, OpenCC's standard forms), `s2tw` (Taiwan), `s2hk` (Hong Kong); `as_recognized` leaves it.
  Characters already written in the target script stay as they are.
- `itn_form(text)`: `t2s`, what ITN reads: its grammars (wetext's and callscribe's) are written in
  Simplified characters (一百五十八塊五 is not read as an amount, 一百五十八块五 is).
- `fold(text)` (from `callscribe.kit.zhscript`, which the ASR's hotword matcher shares): one Simplified form
  for comparing, never shown: Hong Kong variants (`hk2s`), then Taiwan variants and everything else (`tw2s`),
  so that 著急 and 着急, 衞生 and 卫生 meet. Search indexes it and folds the query the same way; keyword
  phrases, backchannels and the sentiment lexicon are compared folded.

OpenCC converts character by character and by phrase tables of equal length, so a converted text has the
length of the original in practice; the callers that map positions between the two check it anyway.
Converters are loaded on first use (`load` loads them all now) and shared by every thread.
"""

from __future__ import annotations

from collections.abc import Iterator

from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.kit.zhscript import FOLD_CONFIGS, convert, converter, fold, has_han

__all__ = ["convert", "fold", "has_han"]  # the shared primitives (kit.zhscript), used through this module

SIMPLIFIED, TRADITIONAL, TRADITIONAL_TW, TRADITIONAL_HK, AS_RECOGNIZED = ZH_SCRIPTS
SCRIPTS = ZH_SCRIPTS
DEFAULT_SCRIPT = SIMPLIFIED

# OpenCC configuration that writes text in each output script (as_recognized: none).
_OUTPUT_CONFIGS = {SIMPLIFIED: "t2s", TRADITIONAL: "s2t", TRADITIONAL_TW: "s2tw", TRADITIONAL_HK: "s2hk"}
# Aligning ITN's output with its input: after an edit, this many characters must agree again; an edit spans
# at most this many characters on either side (ITN rewrites a number at a time: 一百一十九万零九 -> 1190009).
_RESYNC = 4
_WINDOW = 64


def load() -> None:
    """Load every converter now (at start, rather than on first use)."""
    for config in (*_OUTPUT_CONFIGS.values(), *FOLD_CONFIGS):
        converter(config)


def check_script(script: str) -> str:
    if script not in SCRIPTS:
        raise ValueError(f"zh_script must be one of {', '.join(SCRIPTS)}, got {script!r}")
    return script


def to_script(text: str, script: str) -> str:
    """`text` written in `script` (one of SCRIPTS); `as_recognized` leaves it as it is."""
    config = _OUTPUT_CONFIGS.get(check_script(script))
    return text if config is None else convert(text, config)


def itn_form(text: str) -> str:
    """What ITN reads: `text` in Simplified characters (OpenCC t2s)."""
    return convert(text, "t2s")


def written_in(text: str) -> str:
    """SIMPLIFIED or TRADITIONAL: the script most of `text`'s convertible characters are written in (characters
    OpenCC's t2s changes are Traditional, those its s2t changes are Simplified); SIMPLIFIED when none is."""
    if not has_han(text):
        return SIMPLIFIED
    simplified, traditional = convert(text, "t2s"), convert(text, "s2t")
    if len(simplified) != len(text) or len(traditional) != len(text):
        return TRADITIONAL if simplified != text else SIMPLIFIED
    trad = sum(1 for x, y in zip(text, simplified, strict=True) if x != y)
    simp = sum(1 for x, y in zip(text, traditional, strict=True) if x != y)
    return TRADITIONAL if trad > simp else SIMPLIFIED


def back_config(script: str, recognized: str) -> str:
    """The OpenCC configuration that writes ITN's (Simplified) output in `script`; for as_recognized, in the
    script the utterance (`recognized`) is mostly written in."""
    if check_script(script) == AS_RECOGNIZED:
        return _OUTPUT_CONFIGS[written_in(recognized)]
    return _OUTPUT_CONFIGS[script]


def restore(shown: str, read: str, written: str, config: str) -> str:
    """ITN's output `written` in the script of `shown`.

    `read` is what ITN read: `shown` in Simplified characters (`itn_form`). Every run of characters that
    ITN left as it was is taken from `shown` as it is (so the recognized characters stay, 裡 is not turned
    into 裏); what ITN wrote or changed (digits, 点, 元, punctuation) is converted with `config`. Where
    `read` and `shown` differ in length (never seen with OpenCC's tables) positions cannot be mapped, and
    all of `written` is converted.
    """
    if written == read:
        return shown
    if len(read) != len(shown):
        return convert(written, config)
    pieces: list[str] = []
    for equal, i1, i2, j1, j2 in align(read, written):
        pieces.append(shown[i1:i2] if equal else convert(written[j1:j2], config))
    return "".join(pieces)


def align(a: str, b: str) -> Iterator[tuple[bool, int, int, int, int]]:
    """(equal, a_start, a_end, b_start, b_end) runs that turn `a` into `b`: equal runs, and edits between them.

    Linear in the length for texts that differ in local edits, as ITN's input and output do (difflib's
    matcher took minutes on a 20,000-character utterance). Each edit is the smallest one after which
    `_RESYNC` characters (or both ends) agree again, looked for up to `_WINDOW` characters on either side;
    past that the rest is one edit. Whatever the alignment, an equal run pairs equal characters.
    """
    i = j = 0
    n, m = len(a), len(b)
    while True:
        start_i, start_j = i, j
        while i < n and j < m and a[i] == b[j]:
            i += 1
            j += 1
        if i > start_i:
            yield True, start_i, i, start_j, j
        if i == n or j == m:
            if i < n or j < m:
                yield False, i, n, j, m
            return
        di, dj = _resync(a, b, i, j)
        yield False, i, i + di, j, j + dj
        i, j = i + di, j + dj


def _resync(a: str, b: str, i: int, j: int) -> tuple[int, int]:
    n, m = len(a), len(b)
    for total in range(1, 2 * _WINDOW + 1):
        for di in range(max(0, total - _WINDOW), min(total, _WINDOW) + 1):
            dj = total - di
            x, y = i + di, j + dj
            if x > n or y > m:
                continue
            if n - x >= _RESYNC and m - y >= _RESYNC:
                if a[x : x + _RESYNC] == b[y : y + _RESYNC]:
                    return di, dj
            elif a[x:] == b[y:]:
                return di, dj
    return n - i, m - j
