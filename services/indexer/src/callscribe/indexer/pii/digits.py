"""Digit strings in transcripts, whether written (4567 8888, ４５６７) or spoken (四五六七 八八, 幺三八,
four five six seven, double eight, oh, forty-five sixty-seven, eight eight hundred), as runs of units.

A *unit* is one said or written thing that stands for one or more digits. Units follow each other with nothing
or a separator between them: a *weak* one (spaces, hyphens, brackets, a leading + or "plus", 杠, "dash") keeps them in
one *segment*; a *strong* one (commas, 、, semicolons, ASCII full stops, line breaks) starts a new segment of the
same *run*. Anything else ends the run. The detector tries each run's segments alone and joined (a card read in
four comma-separated groups), but never splits a segment (a 16-digit order number does not hide a phone).

The one letter that counts is the check character X of a resident ID (X, x, ×, 叉), and only as the last unit
of a run, right after a digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ZH = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "兩": "2", "三": "3", "四": "4", "五": "5"}
_ZH |= {"六": "6", "七": "7", "八": "8", "九": "9"}
_EN_UNITS = "zero one two three four five six seven eight nine".split()
_EN_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_WORDS = {word: str(n) for n, word in enumerate(_EN_UNITS)} | {"oh": "0", "o": "0"}
_EN_WORDS |= {word: str(10 + n) for n, word in enumerate(_EN_TEENS)}
_TENS = {word: str(2 + n) for n, word in enumerate(_EN_TENS)}
_TIMES = {"double": 2, "triple": 3}


def _words(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))  # longest first: "one" before "o"


_LATIN_BEFORE, _LATIN_AFTER = r"(?<![A-Za-z])", r"(?![A-Za-z])"
_TOKEN = re.compile(
    rf"(?P<digit>[0-9０-９])"
    rf"|(?P<zh>[{''.join(_ZH)}])"
    rf"|{_LATIN_BEFORE}(?:(?P<tens>(?:{_words(_EN_TENS)})(?:[ -](?:{_words(_EN_UNITS[1:])}))?)"
    rf"|(?P<word>{_words(list(_EN_WORDS))})"
    rf"|(?P<times>double|triple)|(?P<hundred>hundred)){_LATIN_AFTER}"
    rf"|(?P<strong>[,，、;；.\n])"
    rf"|(?P<weak>[ \t\u3000]+|[-–—()（）+＋]|杠|{_LATIN_BEFORE}(?:dash|hyphen|plus){_LATIN_AFTER})",
    re.IGNORECASE,
)
_ID_CHECK_CHARS = "Xx×Ｘｘ叉"
_ANY_UNIT = re.compile(
    rf"[0-9０-９{''.join(_ZH)}]|{_LATIN_BEFORE}(?:{_words(_EN_TENS + list(_EN_WORDS) + list(_TIMES))}){_LATIN_AFTER}",
    re.IGNORECASE,
)


def has_digits(text: str, start: int = 0, end: int | None = None) -> bool:
    """Whether `text[start:end]` says or writes any digit (a quicker question than `digit_runs`)."""
    return _ANY_UNIT.search(text, start, len(text) if end is None else end) is not None


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    digits: str  # "0"-"9", more for "double eight" or "forty-five", "X" for an ID's check character
    written: bool  # 0-9 as written (not a spoken word or a Chinese numeral)


@dataclass(frozen=True)
class Segment:
    units: tuple[Unit, ...]

    @property
    def start(self) -> int:
        return self.units[0].start

    @property
    def end(self) -> int:
        return self.units[-1].end

    @property
    def digits(self) -> str:
        return "".join(unit.digits for unit in self.units)


Run = tuple[Segment, ...]


def _unit(match: re.Match[str]) -> Unit | None:
    kind, word = match.lastgroup, match.group().lower()
    if kind == "digit":
        return Unit(match.start(), match.end(), str(int(word)), True)  # int() reads fullwidth digits too
    if kind == "zh":
        return Unit(match.start(), match.end(), _ZH[word], False)
    if kind == "word":
        return Unit(match.start(), match.end(), _EN_WORDS[word], False)
    if kind == "tens":
        tens, *ones = re.split(r"[ -]", word)
        return Unit(match.start(), match.end(), _TENS[tens] + (_EN_WORDS[ones[0]] if ones else "0"), False)
    return None


class _Scanner:
    """Collects the runs of one text as the tokens come."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.runs: list[Run] = []
        self.segments: list[Segment] = []
        self.units: list[Unit] = []
        self.strong = False  # a strong separator since the last unit
        self.times: tuple[int, int] | None = None  # a pending "double"/"triple": (its start, how often)

    def add(self, unit: Unit) -> None:
        if self.times is not None:
            start, times = self.times
            unit = Unit(start, unit.end, unit.digits[0] * times + unit.digits[1:], unit.written)
            self.times = None
        if self.strong and self.units:
            self.segments.append(Segment(tuple(self.units)))
            self.units = []
        self.strong = False
        self.units.append(unit)

    def hundred(self, end: int) -> bool:
        """ "eight eight hundred" is 8800: "hundred" right after a spoken digit adds two zeros to it."""
        if not self.units or self.strong or self.units[-1].written or len(self.units[-1].digits) != 1:
            return False
        last = self.units[-1]
        self.units[-1] = Unit(last.start, end, last.digits + "00", False)
        return True

    def close(self) -> None:
        if self.units:
            self.segments.append(Segment(tuple(self.units)))
        if self.segments:
            self.runs.append(tuple(self.segments))
        self.segments, self.units, self.strong, self.times = [], [], False, None

    def check_character(self, position: int) -> bool:
        """At a break: take an ID's X there (right after a digit, at most one space between) and end the run."""
        if not self.units or self.strong or not self.units[-1].digits[-1].isdigit():
            return False
        last = self.units[-1].end
        if self.text[last:position].strip(" ") or position - last > 1 or self.text[position] not in _ID_CHECK_CHARS:
            return False
        after = self.text[position + 1 : position + 2]
        if after.isascii() and after.isalpha():
            return False  # a word (xl, xyz), not the letter alone
        rest = position + 1
        while self.text[rest : rest + 1] == " ":
            rest += 1
        following = _TOKEN.match(self.text, rest)
        if following is not None and _unit(following) is not None:
            return False  # "0132 x 204": an extension, not a check character
        self.units.append(Unit(position, position + 1, "X", False))
        return True


def digit_runs(text: str) -> list[Run]:
    """The runs of digit units in `text`, in order."""
    scanner = _Scanner(text)
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() != position:  # something that is neither a unit nor a separator
            scanner.check_character(position)
            scanner.close()
        position = match.end()
        kind = match.lastgroup
        if kind == "strong":
            scanner.strong = True
        elif kind == "times":
            scanner.times = (match.start(), _TIMES[match.group().lower()])
        elif kind == "hundred":
            if not scanner.hundred(match.end()):
                scanner.close()  # "a hundred", "forty hundred": a quantity, not digits
        elif kind != "weak":
            unit = _unit(match)
            assert unit is not None
            scanner.add(unit)
    if position != len(text):
        scanner.check_character(position)
    scanner.close()
    return scanner.runs
