"""find_pii(text, language): where a transcript names a payment card, a resident ID, a bank account, a phone
number, an e-mail address or a verification code.

Numbers are read as digit runs (`digits.py`: written or spoken, Chinese or English), tried segment by segment
and joined, and each candidate is decided in this order:

1. kept when it is glued to Latin letters (SF1234567890), follows a currency sign, is followed by a unit (元,
   分钟, dollars, %...), is a date (2025-03-04), or when the nearest cue before it says it is not PII (订单号,
   tracking number, extension: `cues.py`);
2. ``cn_id``: 18 characters with a valid GB 11643 check character, a province and a real birth date; after an
   ID cue (身份证) also one whose check fails and a 15-digit first-generation number;
3. ``card``: 15 to 19 digits, an issuer's first digit (2221-2720, 3, 4, 5, 6) and a valid Luhn check;
4. ``bank_account``: 8 to 20 digits after an account cue (账号, account number), or 16 to 19 digits after a
   card cue (卡号) whose Luhn check fails (a misheard card is still one); and, as text, an IBAN whose ISO 13616
   mod-97 check passes;
5. ``verification_code``: 4 to 8 digits after a code cue (验证码, PIN, one-time code), 3 to 8 after a card
   security code cue (CVV, 安全码);
6. ``phone``: a mainland mobile (1[3-9] and 9 digits), a landline with its area code (010, 0755...), either
   with +86 / 0086, a US number (English only, or after +1) other than toll-free ones, or 7-8 digits after a
   phone cue.

Longer candidates win over shorter ones they overlap. E-mail addresses are matched as text: written
(a.b@example.com) or spoken with at/艾特/dot/点 and a known top-level domain.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from callscribe.indexer.pii import cues
from callscribe.indexer.pii.checksums import cn_id_shape, cn_id_valid, luhn_valid, old_cn_id_shape
from callscribe.indexer.pii.digits import Run, Unit, digit_runs, has_digits
from callscribe.kit.zhscript import fold, has_han

LANGUAGES = ("zh", "en")
_MAX_DIGITS = 20
_MAX_SEGMENTS = 8

_UNIT_AFTER = re.compile(
    r"\s*(?:[元块毛角分秒年月日号点个次位岁件台张楼室层米斤克倍天周万千百亿%％]|小时|公里|单元"
    r"|(?:dollars?|bucks?|cents?|yuan|rmb|usd|percent|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?"
    r"|months?|years?|times|am|pm|a\.m\.|p\.m\.|o'clock|items?|pieces?|units?|kg|km|miles?|pounds?|lbs?|gb|mb"
    r"|points?)(?![A-Za-z]))",
    re.IGNORECASE,
)
_CURRENCY_BEFORE = re.compile(r"(?:[$¥￥€£]|(?<![A-Za-z])(?:rmb|usd|cny|hkd))\s*$", re.IGNORECASE)
_DATE = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])")
_TOLL_FREE = frozenset({"800", "888", "877", "866", "855", "844", "833", "822", "400"})


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    category: str


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be zh or en, got {language!r}")
    return language


def find_pii(text: str, language: str, *, before: str = "", after: str = "") -> list[Span]:
    """The PII in `text` (positions in it), in order. `before` and `after` are the neighbouring utterances: a
    cue said before (the agent asks for the code, the customer says it) counts, and a number that an utterance
    boundary cuts in two is found in both parts."""
    check_language(language)
    prefix = before + "\n" if before else ""
    whole = prefix + text + ("\n" + after if after else "")
    joined = _Text(_simplified(whole), language, len(prefix), len(prefix) + len(text))
    found = []
    for span in _detect(joined):
        start, end = max(span.start, joined.start), min(span.end, joined.end)
        found.append(Span(start - joined.start, end - joined.start, span.category))
    return found


def _simplified(text: str) -> str:
    """`text` with Traditional characters folded to Simplified ones (驗證碼 is a cue as 验证码 is, 兩 a digit, 塊
    a unit), when that keeps every character where it was (as OpenCC's tables do in practice)."""
    if not has_han(text):
        return text
    folded = fold(text)
    return folded if len(folded) == len(text) else text


@dataclass
class _Text:
    """The text searched: an utterance (`start`-`end`) and its neighbours, and its cues."""

    text: str
    language: str
    start: int
    end: int

    @functools.cached_property
    def cues(self) -> cues.Cues:  # looked for only when a number needs them
        return cues.Cues(self.text, self.language)

    def reaches(self, start: int, end: int) -> bool:
        """Whether `start`-`end` overlaps the utterance (what lies in a neighbour alone is not asked about)."""
        return start < self.end and self.start < end


def _detect(text: _Text) -> list[Span]:
    emails = [span for span in [*_emails(text), *_ibans(text.text)] if text.reaches(span.start, span.end)]
    taken = [(span.start, span.end) for span in emails]
    chosen: list[Span] = []
    for _, span in sorted(_number_candidates(text), key=lambda item: (-item[0], item[1].start)):
        if not any(span.start < end and start < span.end for start, end in taken):
            chosen.append(span)
            taken.append((span.start, span.end))
    return sorted(emails + chosen)


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class _Candidate:
    units: tuple[Unit, ...]
    start: int  # a leading + or ( included
    plus: bool  # written with a leading + (an international number)

    @property
    def end(self) -> int:
        return self.units[-1].end

    @property
    def digits(self) -> str:
        return "".join(unit.digits for unit in self.units)


def _number_candidates(text: _Text) -> Iterator[tuple[int, Span]]:
    """(number of digits, span) of each candidate that is PII and reaches into the utterance."""
    if not has_digits(text.text, text.start, text.end):
        return
    for run in digit_runs(text.text):
        if not text.reaches(run[0].start - 6, run[-1].end):  # 6: a leading "plus " is part of it
            continue
        for candidate in _candidates(text.text, run):
            if not text.reaches(candidate.start, candidate.end):
                continue
            category = _category(text, candidate)
            if category is not None:
                yield len(candidate.digits), Span(candidate.start, candidate.end, category)


def _candidates(text: str, run: Run) -> Iterator[_Candidate]:
    for first in range(len(run)):
        units: tuple[Unit, ...] = ()
        for segment in run[first : first + _MAX_SEGMENTS]:
            units += segment.units
            if sum(len(unit.digits) for unit in units) > _MAX_DIGITS:
                break
            yield _candidate(text, units)
            if units[-1].digits == "X" and len(units) > 1:
                yield _candidate(text, units[:-1])


_LEAD = re.compile(r"(?:(?P<plus>[+＋]|(?<![A-Za-z])plus)|[(（])[\s,]*$", re.IGNORECASE)


def _candidate(text: str, units: tuple[Unit, ...]) -> _Candidate:
    """The candidate of `units`, with the + ("plus") or bracket written right before it."""
    start = units[0].start
    lead = _LEAD.search(text, max(0, start - 6), start)
    if lead is None:
        return _Candidate(units, start, False)
    return _Candidate(units, lead.start(), lead.group("plus") is not None)


def _category(text: _Text, candidate: _Candidate) -> str | None:
    digits = candidate.digits
    if len(digits) < 3 or _blocked(text.text, candidate):
        return None
    cue = text.cues.nearest(candidate.start)
    if cue == cues.NOT_PII:
        return None
    if cn_id_valid(digits) or (cue == cues.ID and (cn_id_shape(digits) or old_cn_id_shape(digits))):
        return "cn_id"
    if "X" in digits:
        return None
    if _card(digits):
        return "card"
    if (cue == cues.ACCOUNT and 8 <= len(digits) <= 20) or (cue == cues.CARD and 16 <= len(digits) <= 19):
        return "bank_account"
    if (cue == cues.CODE and 4 <= len(digits) <= 8) or (cue == cues.CVV and 3 <= len(digits) <= 8):
        return "verification_code"
    if _phone(digits, text.language, cue, candidate.plus):
        return "phone"
    return None


def _blocked(text: str, candidate: _Candidate) -> bool:
    """A number that is part of a code with letters, an amount, a quantity, a time span or a date."""
    first, last = candidate.units[0], candidate.units[-1]
    if (
        first.written
        and text[first.start - 1 : first.start].isascii()
        and text[first.start - 1 : first.start].isalpha()
    ):
        return True
    if last.written and text[last.end : last.end + 1].isascii() and text[last.end : last.end + 1].isalpha():
        return True
    before = _CURRENCY_BEFORE.search(text, max(0, candidate.start - 8), candidate.start)
    if before or _UNIT_AFTER.match(text, candidate.end):
        return True
    return _DATE.fullmatch(text, candidate.start, candidate.end) is not None


def _card(digits: str) -> bool:
    issuer = digits[0] in "3456" or (len(digits) == 16 and 2221 <= int(digits[:4]) <= 2720)
    return 15 <= len(digits) <= 19 and issuer and luhn_valid(digits)


def _phone(digits: str, language: str, cue: str | None, plus: bool) -> bool:
    if digits.startswith("0086") or (digits.startswith("86") and (plus or _mobile(digits[2:]))):
        national = digits[4:] if digits.startswith("0086") else digits[2:]
        return _mobile(national) or _landline("0" + national)
    if plus and digits.startswith("1"):
        return _us(digits[1:])
    if language == "en" and len(digits) == 11 and digits[0] == "1" and digits[1:4] in _TOLL_FREE:
        return False  # 1-800-...: a business line, though it has a mainland mobile's shape
    if _mobile(digits) or _landline(digits):
        return True
    if language == "en" and (_us(digits) or (len(digits) == 11 and digits[0] == "1" and _us(digits[1:]))):
        return True
    return cue == cues.PHONE and 7 <= len(digits) <= 8 and digits[0] not in "01"


def _mobile(digits: str) -> bool:
    return len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789"


def _landline(digits: str) -> bool:
    """0, an area code (010 and 02x: 3 digits, the others 4) and a local number of 7 or 8 digits."""
    if len(digits) < 11 or digits[0] != "0" or digits[1] == "0":
        return False
    return len(digits) == 11 if digits[1] in "12" else len(digits) in (11, 12)


def _us(digits: str) -> bool:
    """A North American number: area code and exchange not starting with 0 or 1, not a toll-free line."""
    return len(digits) == 10 and digits[0] not in "01" and digits[3] not in "01" and digits[:3] not in _TOLL_FREE


# --------------------------------------------------------------------------- IBANs

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")


def _ibans(text: str) -> Iterator[Span]:
    """International bank account numbers (country, two check digits, the account) whose ISO 13616 mod-97
    check passes: bank accounts, though they have letters."""
    for match in _IBAN.finditer(text):
        iban = match.group().replace(" ", "")
        number = "".join(str(int(char, 36)) for char in iban[4:] + iban[:4])
        if 15 <= len(iban) <= 34 and int(number) % 97 == 1:
            yield Span(match.start(), match.end(), "bank_account")


# --------------------------------------------------------------------------- e-mail addresses

_TLD = r"(?:com|net|org|edu|gov|cn|io|co|info|biz|me|us|uk|hk|tw|jp|de|fr|ca|au|sg|top|xyz|vip)"
# Bounded (a label of at most 64 characters, at most 8 more parts) so that no text makes the search quadratic.
_LABEL_CHARS = "A-Za-z0-9零一二三四五六七八九幺"
_LABEL = rf"[{_LABEL_CHARS}][{_LABEL_CHARS}_\-]{{0,63}}"
_LOCAL_JOIN = r"(?:\.|\s+(?:dot|underscore|dash)\s+|\s*(?:点|下划线)\s*)"
_DOMAIN_DOT = r"(?:\s*[.点]\s*|\s+dot\s+)"
_AT_SIGN = r"\s*[@＠]\s*|\s*艾特\s*|\s*圈\s*a\s*"
_EMAIL = re.compile(
    rf"(?<![{_LABEL_CHARS}._%+\-])(?P<local>{_LABEL}(?:{_LOCAL_JOIN}{_LABEL}){{0,8}})"
    rf"(?:(?P<sign>{_AT_SIGN})|(?P<word>\s+at\s+))"
    rf"{_LABEL}(?:{_DOMAIN_DOT}{_LABEL}){{0,8}}{_DOMAIN_DOT}{_TLD}(?![A-Za-z])",
    re.IGNORECASE,
)
_EMAIL_CUE = re.compile(r"邮箱|邮件|电邮|(?<![A-Za-z])(?:e-?mail|mail|address)(?![A-Za-z])", re.IGNORECASE)
# Words that come before "at <site> dot com" without being an address ("I bought it at amazon dot com").
_NOT_LOCAL = frozenset(
    "it them me us you him her that this there here one something stuff online work home school store shop "
    "bought ordered purchased paid is was look".split()
)


# A spoken local part before one ITN glued to its domain: "mary underscore chen eighty8@outlook.com".
_SPOKEN_HEAD = re.compile(rf"(?:{_LABEL}\s+(?:dot|underscore|dash)\s+)+{_LABEL}\s+$", re.IGNORECASE)


def _emails(text: _Text) -> Iterator[Span]:
    for match in _EMAIL.finditer(text.text):
        if match.group("word") is None or _spoken_address(text.text, match, text.language):
            head = _SPOKEN_HEAD.search(text.text, max(0, match.start() - 80), match.start())
            yield Span(head.start() if head else match.start(), match.end(), "email")


def _spoken_address(text: str, match: re.Match[str], language: str) -> bool:
    """ "<local> at <domain> dot com" is an address when its local part looks like one (digits, dots,
    underscores) or an e-mail cue comes shortly before, and the local part is not a common word."""
    local = match.group("local")
    if local.lower() in _NOT_LOCAL:
        return False
    if re.search(r"[0-9._]|\s", local):
        return True
    window = text[max(0, match.start() - cues.WINDOWS[language]) : match.start()]
    return _EMAIL_CUE.search(window) is not None
