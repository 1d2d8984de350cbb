"""wetext's compiled tagger/verbalizer FSTs run through kaldifst, and the token format between them.

wetext ships WeTextProcessing grammars as OpenFst files. Importing the ``wetext`` package itself loads
every graph it has (TN and ITN, zh, en and ja), so this module finds the files without importing it and
loads only the ITN graphs callscribe uses, once per process.

kaldifst's ``TextNormalizer.normalize`` is a const C++ call made with the GIL held: one loaded graph can
be shared by all threads.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import kaldifst

# Field order the verbalizers expect (WeTextProcessing's token parser reorders tagger output the same way).
ITN_ORDERS: dict[str, list[str]] = {
    "date": ["year", "month", "day", "preserve_order"],
    "fraction": ["sign", "numerator", "denominator"],
    "measure": ["numerator", "denominator", "value", "units"],
    "money": ["currency", "value", "decimal", "quantity"],
    "time": ["hour", "minute", "second", "noon", "zone"],
    "telephone": ["country_code", "number_part"],
    "electronic": ["username", "domain", "protocol"],
}

_TOKEN = re.compile(r'\s*([A-Za-z_]+) \{((?:\s*[A-Za-z_]+: "(?:[^"\\]|\\.)*")*)\s*\}')
_FIELD = re.compile(r'([A-Za-z_]+): "((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")


class FstUnavailableError(RuntimeError):
    """wetext's graphs cannot be found or loaded."""


@dataclass
class Token:
    """One tagger token: a name (``cardinal``, ``word``, ``char``...) and its fields in tagger order."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> str:
        return self.fields.get("value", "")

    def serialize(self) -> str:
        """The token as the verbalizer reads it (fields in ITN order unless the tagger asked to keep them)."""
        keys = list(self.fields)
        canonical = ITN_ORDERS.get(self.name)
        if canonical and self.fields.get("preserve_order") != "true":
            keys = [k for k in canonical if k in self.fields] + [k for k in keys if k not in canonical]
        body = " ".join(f'{k}: "{_escape(self.fields[k])}"' for k in keys)
        return f"{self.name} {{ {body} }}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_tokens(tagged: str) -> list[Token] | None:
    """Parse tagger output; None when it is not a clean sequence of tokens."""
    tokens: list[Token] = []
    pos = 0
    text = tagged.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            return None
        fields = {k: _UNESCAPE.sub(r"\1", v) for k, v in _FIELD.findall(match.group(2))}
        tokens.append(Token(match.group(1), fields))
        pos = match.end()
    return tokens


def wetext_fst_dir() -> Path:
    """The ``fsts`` directory of the installed wetext package (found without importing wetext)."""
    spec = importlib.util.find_spec("wetext")
    if spec is None or not spec.submodule_search_locations:
        raise FstUnavailableError("the wetext package is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "fsts"
        if candidate.is_dir():
            return candidate
    raise FstUnavailableError("wetext has no fsts directory")


_LOCK = threading.Lock()
_LOADED: dict[str, kaldifst.TextNormalizer] = {}


def load(relative: str) -> kaldifst.TextNormalizer:
    """Load one graph (e.g. ``zh/itn/tagger.fst``); each file is read once per process."""
    with _LOCK:
        graph = _LOADED.get(relative)
        if graph is None:
            path = wetext_fst_dir() / relative
            if not path.is_file():
                raise FstUnavailableError(f"wetext graph missing: {relative}")
            graph = kaldifst.TextNormalizer(str(path))
            _LOADED[relative] = graph
        return graph


class Graphs:
    """Tagger (optionally the 0-to-9 variant) and verbalizer of one language."""

    def __init__(self, lang: str, enable_0_to_9: bool = False) -> None:
        tagger = "tagger_enable_0_to_9.fst" if enable_0_to_9 and lang != "en" else "tagger.fst"
        self._tagger = load(f"{lang}/itn/{tagger}")
        self._verbalizer = load(f"{lang}/itn/verbalizer.fst")

    def tag(self, text: str) -> list[Token] | None:
        """Tokens of ``text``, or None when the tagger finds no path or its output does not parse."""
        if not text:
            return []
        tagged = self._tagger.normalize(text)
        if not tagged.strip():
            return None
        return parse_tokens(tagged)

    def verbalize(self, token: Token) -> str:
        """Written form of one token ('' when the verbalizer has no path for it)."""
        return self.verbalize_serialized(token.serialize())

    def verbalize_serialized(self, serialized: str) -> str:
        return self._verbalizer.normalize(serialized).strip()
