"""Chinese numerals: values of spoken numbers, digit strings, and the numeral-only character rewrites.

Only well-formed numbers parse (units in descending order, no digit directly after a digit); anything
else (ranges such as 三五百, idioms) returns None so the caller can leave it to wetext or as spoken.
"""

from __future__ import annotations

import re
from decimal import Decimal

DIGITS: dict[str, int] = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
# Radio-style digits that only occur inside digit strings (phone, order and ID numbers).
STRING_DIGITS: dict[str, int] = {**DIGITS, "洞": 0, "拐": 7, "勾": 9}
SMALL_UNITS: dict[str, int] = {"十": 10, "百": 100, "千": 1000}
BIG_UNITS: dict[str, int] = {"万": 10**4, "亿": 10**8, "兆": 10**12}

# Financial (大写) and traditional numeral characters, rewritten to the plain forms only inside numeral runs.
NUMERAL_VARIANTS: dict[str, str] = {
    "壹": "一",
    "贰": "二",
    "貳": "二",
    "叁": "三",
    "參": "三",
    "叄": "三",
    "肆": "四",
    "伍": "五",
    "陆": "六",
    "陸": "六",
    "柒": "七",
    "捌": "八",
    "玖": "九",
    "拾": "十",
    "佰": "百",
    "仟": "千",
    "萬": "万",
    "億": "亿",
    "兩": "两",
    "點": "点",
    "負": "负",
}
PLAIN_NUMERAL_CHARS = "零〇一二两三四五六七八九十百千万亿兆点负幺"


def parse_digit_string(text: str) -> str | None:
    """一二三四五 -> '12345' (幺/洞/拐 included); None unless every character is a digit."""
    if not text or any(ch not in STRING_DIGITS for ch in text):
        return None
    return "".join(str(STRING_DIGITS[ch]) for ch in text)


def _parse_section(text: str) -> int | None:
    """A number below 10000: 千/百/十 with digits, 零 for gaps; 一千二 = 1200, 三百五 = 350."""
    total = 0
    pending: int | None = None  # a digit not yet multiplied by a unit
    last_unit = 10**4
    after_zero = False
    for ch in text:
        if ch in ("零", "〇"):
            if pending is not None:
                return None
            after_zero = True
        elif ch in DIGITS:
            if pending is not None:
                return None
            pending = DIGITS[ch]
        elif ch in SMALL_UNITS:
            unit = SMALL_UNITS[ch]
            if unit >= last_unit:
                return None
            if pending is None:
                if unit != 10:
                    return None
                pending = 1  # 十五, 一百十, 两千零十
            total += pending * unit
            pending, last_unit, after_zero = None, unit, False
        else:
            return None
    if pending is not None:
        # A digit right after 百/千 (no 零 between) is abbreviated: 一千二 = 1200.
        abbreviated = not after_zero and last_unit in (100, 1000)
        total += pending * (last_unit // 10 if abbreviated else 1)
    return total


def parse_int(text: str) -> int | None:
    """Value of a spoken integer (一百一十九万零九 -> 1190009, 两万五 -> 25000); None if not well formed."""
    if not text:
        return None
    for big in ("兆", "亿", "万"):
        if big in text:
            head, _, tail = text.partition(big)
            if not head or big in tail:
                return None
            high = parse_int(head)
            if high is None or high == 0:
                return None
            low = _parse_tail(tail, BIG_UNITS[big])
            if low is None:
                return None
            return high * BIG_UNITS[big] + low
    if text[0] in ("零", "〇") and len(text) > 1:
        return None
    return _parse_section(text)


def _parse_tail(tail: str, unit: int) -> int | None:
    """The part after 万/亿/兆: 零 marks a gap (万零九 = 9), a lone digit is abbreviated (万九 = 9000)."""
    if not tail:
        return 0
    if tail[0] in ("零", "〇"):
        rest = tail[1:]
        if not rest or rest[0] in ("零", "〇"):
            return None
        value = parse_int(rest)
        if value is None or value >= unit:
            return None
        return value
    if len(tail) == 1 and tail in DIGITS:
        return DIGITS[tail] * unit // 10
    value = parse_int(tail)
    if value is None or value >= unit:
        return None
    return value


def parse_decimal(text: str) -> Decimal | None:
    """三点一四 -> 3.14, 一百点零五 -> 100.05; integers too. None if not well formed."""
    if "点" not in text:
        value = parse_int(text)
        return None if value is None else Decimal(value)
    head, _, tail = text.partition("点")
    whole = parse_int(head)
    digits = parse_digit_string(tail)
    if whole is None or digits is None or any(ch in "洞拐勾幺" for ch in tail):
        return None
    return Decimal(f"{whole}.{digits}")


def format_decimal(value: Decimal) -> str:
    """Plain positional notation, keeping spoken trailing zeros (十八点五零 -> 18.50)."""
    return format(value, "f")


def to_plain_numerals(text: str) -> str:
    """Rewrite financial/traditional numeral characters inside numeral runs (伍拾壹点肆 -> 五十一点四).

    A run is a stretch of numeral characters of either kind. Traditional units (萬 億 點 兩 負) are rewritten
    when the run holds another numeral; financial digits (壹 ... 玖) only when the run holds a financial unit
    (拾 佰 仟) or a decimal point between financial digits (玖点玖), so 大陆, 陆陆续续, 队伍 stay as they are.
    """
    if not any(ch in NUMERAL_VARIANTS for ch in text):
        return text
    out = list(text)
    for m in _NUMERAL_RUN.finditer(text):
        run = m.group()
        if len(run) < 2 or not any(c in NUMERAL_VARIANTS for c in run):
            continue
        financial = any(c in "拾佰仟" for c in run) or re.search(
            f"[{_FINANCIAL_DIGITS}][点點][{_FINANCIAL_DIGITS}]", run
        )
        for j, ch in enumerate(run, m.start()):
            if ch in _FINANCIAL_DIGITS or ch in "拾佰仟":
                if financial:
                    out[j] = NUMERAL_VARIANTS[ch]
            elif ch in NUMERAL_VARIANTS:
                out[j] = NUMERAL_VARIANTS[ch]
    return "".join(out)


_FINANCIAL_DIGITS = "壹贰貳叁參叄肆伍陆陸柒捌玖"
_NUMERAL_RUN = re.compile("[" + re.escape("".join(NUMERAL_VARIANTS) + PLAIN_NUMERAL_CHARS) + "]+")
