"""Text a caller supplies (ids, labels, file names): what is refused, and how it is shown safely.

Refused in every id, label and file name: control characters (C0, DEL, C1: CR, LF, ESC, ...), format
characters (bidi overrides and isolates such as U+202E, zero-width characters, the BOM U+FEFF),
surrogates and unassigned code points. They fool terminals, logs and people ("invoice‮fdp.exe");
nothing a call-center system sends needs them. `shown` escapes them for display, for text stored
before these checks or coming from elsewhere.
"""

from __future__ import annotations

import unicodedata

_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Cn"}


def unsafe_character(value: str) -> str | None:
    """A description of the first refused character of `value` ("U+202E RIGHT-TO-LEFT OVERRIDE at 7"),
    or None when there is none."""
    for at, ch in enumerate(value):
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            name = unicodedata.name(ch, "control character")
            return f"U+{ord(ch):04X} {name} at position {at}"
    return None


def shown(value: str) -> str:
    """`value` for a terminal or a log line: refused characters as \\xNN / \\uNNNN escapes, backslashes doubled."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in _REFUSED_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
