"""The check digits that decide whether a digit string is a payment card or a Chinese resident ID number."""

from __future__ import annotations

import datetime as dt

# GB 11643-1999: weights of the first 17 digits, and the check character for each sum mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# The first two digits of a resident ID: the province (GB/T 2260), Taiwan, Hong Kong and Macau.
_ID_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment cards: True when `digits` (0-9 only) carry a valid check digit."""
    if not digits.isdigit():
        return False
    return luhn_sum(digits) % 10 == 0


def luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total


def luhn_check_digit(payload: str) -> str:
    """The digit that makes `payload` + it Luhn-valid (for authoring test numbers)."""
    return str((10 - luhn_sum(payload + "0") % 10) % 10)


def cn_id_check_char(first17: str) -> str:
    """GB 11643 mod 11-2 check character (0-9 or X) of the first 17 digits of a resident ID."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def cn_id_shape(number: str) -> bool:
    """18 characters (17 digits and a digit or X) with a known province and a real birth date: what an ID
    number looks like before its check character is compared."""
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return False
    return number[:2] in _ID_PROVINCES and _real_date(number[6:14])


def cn_id_valid(number: str) -> bool:
    """A resident ID number whose check character (the 18th, X for 10) is right."""
    return cn_id_shape(number) and cn_id_check_char(number[:17]) == number[17]


def old_cn_id_shape(number: str) -> bool:
    """A first-generation (15-digit, before 1999) ID: province, then a birth date YYMMDD; it has no check digit."""
    return len(number) == 15 and number.isdigit() and number[:2] in _ID_PROVINCES and _real_date("19" + number[6:12])


def _real_date(yyyymmdd: str) -> bool:
    try:
        born = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= born <= dt.date.today()
