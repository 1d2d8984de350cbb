"""English ITN for text as ASR engines emit it: capitalised, punctuated (Whisper) or bare.

wetext's English grammar only reads lowercase words without attached punctuation, and re-spaces what it
writes ("$85 ."). So the text is cut into chunks at punctuation (kept verbatim), each chunk is tagged in
lowercase, the tagger's ``word`` tokens (which are the input words unchanged) are aligned back to the
original words, and only the spans between them are replaced by the verbalized tokens, whose letters get
the original casing back (July, Million, A.M.). Words that are not converted are never touched.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable

from callscribe.indexer.text.fst import Graphs, Token

log = logging.getLogger(__name__)

NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion trillion first second third fourth fifth sixth seventh eighth ninth tenth twentieth thirtieth "
    "fortieth fiftieth sixtieth seventieth eightieth ninetieth".split()
)
_DIGIT_WORDS = frozenset("zero oh o one two three four five six seven eight nine".split())
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc a.m p.m e.g i.e no approx dept est inc ltd co".split())
_EMAIL_SEPARATORS = frozenset("dot underscore dash hyphen slash colon at".split())
# Always delimiters; '.' and ':' only when followed by a space or the end (3.5, 3:30 and a.m. stay inside).
_ALWAYS = set(',;!?…"“”()[]{}«»—–')
_WORD = re.compile(r"(?<![0-9A-Za-z])[A-Za-z][A-Za-z'&]*(?:\.[A-Za-z]+)*\.?")


class EnglishItn:
    """English spoken-to-written conversion; thread-safe after construction."""

    def __init__(self) -> None:
        self._graphs = Graphs("en")
        self._verbalize: Callable[[str], str] = functools.lru_cache(maxsize=16384)(self._verbalize_serialized)

    def __call__(self, text: str) -> str:
        out: list[str] = []
        converted_dot = False  # the last chunk was converted and now ends with '.' (P M -> P.M.)
        for chunk, is_text in split_chunks(text):
            if not is_text:
                if not (chunk == "." and converted_dot):
                    out.append(chunk)
                converted_dot = False
                continue
            written = self._chunk(chunk) if chunk.strip() else chunk
            converted_dot = written != chunk and written.endswith(".")
            out.append(written)
        return "".join(out)

    # -- one chunk ---------------------------------------------------------------------------------

    def _chunk(self, chunk: str) -> str:
        lead = chunk[: len(chunk) - len(chunk.lstrip())]
        trail = chunk[len(chunk.rstrip()) :]
        words = _split_words(chunk.split())
        if not any(_maybe_semiotic(w) for w in words):
            return chunk
        written = []
        for group in _groups(words, _TAGGER_WORDS):
            converted = self._words(group)
            written.append(" ".join(group) if converted is None else converted)
        result = " ".join(written)
        if result == " ".join(words):
            return chunk  # nothing converted: keep the chunk byte for byte (spacing, twenty-five)
        return lead + result + trail

    def _words(self, words: list[str]) -> str | None:
        """The written form of a run of words, or None when the tagger output cannot be aligned."""
        words = _spell_protocols(words)
        lowered = [_lower(w) for w in words]
        try:
            tokens = self._graphs.tag(" ".join(lowered))
        except Exception:  # noqa: BLE001 - a graph failure must never lose the utterance
            log.debug("en tagger failed on %r", words, exc_info=True)
            return None
        if tokens is None:
            log.debug("en tagger found no path for %r", words)
            return None
        out: list[str] = []
        pending: list[Token] = []
        i = 0
        for token in tokens:
            if token.name != "word":
                pending.append(token)
                continue
            start = i + 1 if pending else i
            j = next((k for k in range(start, len(lowered)) if lowered[k] == token.value), None)
            if j is None or (not pending and j != i):
                log.debug("en alignment failed on %r", words)
                return None
            if pending:
                out.append(self._render(pending, words[i:j], out[-1] if out else "", words[j]))
                pending = []
            out.append(words[j])
            i = j + 1
        if pending:
            out.append(self._render(pending, words[i:], out[-1] if out else "", ""))
        elif i != len(words):
            return None
        return " ".join(p for p in out if p)

    def _render(self, tokens: list[Token], source: list[str], previous: str, following: str) -> str:
        """Written form of the semiotic tokens that cover the ``source`` words."""
        spoken = " ".join(source)
        if _keep_spoken(tokens, previous, following):
            return spoken
        tokens = _clock_not_year(tokens, previous)
        if len(source) > 1 and any(t.name == "electronic" for t in tokens):
            start = _address_start([_lower(w) for w in source])
            if start > 0:
                head = self._words(source[:start])
                tail = self._words(source[start:])
                if head is not None and tail is not None:
                    return f"{head} {tail}"
        written = []
        for token in tokens:
            text = self._verbalize(token.serialize())
            if not text:
                log.debug("en verbalizer found no path for %s", token.serialize())
                return spoken
            written.append(text)
        result = " ".join(written)
        if any(t.name == "electronic" for t in tokens):
            return _restore_address_case(result, source)
        return restore_case(result, source)

    def _verbalize_serialized(self, serialized: str) -> str:
        try:
            return self._graphs.verbalize_serialized(serialized)
        except Exception:  # noqa: BLE001
            log.debug("en verbalizer failed on %s", serialized, exc_info=True)
            return ""


def split_chunks(text: str) -> list[tuple[str, bool]]:
    """Cut text into (piece, is_text) at punctuation; joining the pieces gives the text back."""
    pieces: list[tuple[str, bool]] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        delimiter = ch in _ALWAYS
        if ch in ".:" and (i + 1 == n or text[i + 1].isspace()) and i > 0 and not text[i - 1].isspace():
            word = text[:i].split()[-1].lower() if text[:i].split() else ""
            delimiter = ch == ":" or word.rstrip(".") not in _ABBREVIATIONS
        elif ch == "-" and (i == 0 or text[i - 1].isspace()) and (i + 1 == n or text[i + 1].isspace()):
            delimiter = True
        if delimiter:
            if i > start:
                pieces.append((text[start:i], True))
            pieces.append((ch, False))
            start = i + 1
        i += 1
    if start < n:
        pieces.append((text[start:], True))
    return pieces


_TAGGER_WORDS = 24


def _groups(words: list[str], limit: int) -> list[list[str]]:
    """Runs of at most ``limit`` words, cut between two words that cannot be part of a number or address
    (the tagger's cost grows faster than the length of its input)."""
    groups = []
    start = 0
    while len(words) - start > limit:
        end = start + limit

        def safe(k: int) -> bool:
            return not (_maybe_semiotic(words[k - 1]) or _maybe_semiotic(words[k]))

        backward = (k for k in range(end, start + limit // 4, -1) if safe(k))
        forward = (k for k in range(end + 1, len(words)) if safe(k))
        cut = next(backward, None) or next(forward, None)
        if cut is None:
            break  # one long number or address: keep it whole
        groups.append(words[start:cut])
        start = cut
    groups.append(words[start:])
    return groups


def _split_words(words: list[str]) -> list[str]:
    """twenty-five -> twenty five (only number words are split at hyphens)."""
    out = []
    for word in words:
        parts = word.split("-")
        if len(parts) > 1 and all(p.lower() in NUMBER_WORDS for p in parts):
            out.extend(parts)
        else:
            out.append(word)
    return out


def _spell_protocols(words: list[str]) -> list[str]:
    """http colon slash slash -> h t t p colon ...: wetext's grammar only reads the spelled-out protocol."""
    if "colon" not in (w.lower() for w in words):
        return words
    out: list[str] = []
    for k, word in enumerate(words):
        if word.lower() in ("http", "https") and k + 1 < len(words) and words[k + 1].lower() == "colon":
            out.extend(word)
        else:
            out.append(word)
    return out


def _lower(word: str) -> str:
    return word.lower().replace("\u2019", "'")


def _maybe_semiotic(word: str) -> bool:
    """Cheap pre-check: chunks without any of these words cannot change (saves the tagger call)."""
    w = _lower(word)
    return (
        w in NUMBER_WORDS
        or len(w) == 1
        or w.rstrip("s") in NUMBER_WORDS
        or w in _EMAIL_SEPARATORS
        or w in _WHITELIST_HINTS
        or w in ("point", "minus", "percent", "dollar", "dollars", "cents", "half", "quarter", "double", "triple")
        or w.endswith(("th", "st", "nd", "rd", "ties"))
    )


_WHITELIST_HINTS = frozenset("mister misses doctor saint and".split())


def _keep_spoken(tokens: list[Token], previous: str, following: str) -> bool:
    """Conversational idioms that are not numbers: a second, one second, first of all."""
    if len(tokens) != 1:
        return False
    token = tokens[0]
    if token.name == "ordinal":
        ordinal = token.fields.get("integer")
        if ordinal == "second" and _lower(previous) in ("a", "just"):
            return True
        if ordinal in ("first", "second", "third") and _lower(following) == "of" and not previous:
            return True  # First of all, second of all
    return token.name == "measure" and token.fields.get("value") == "one" and token.fields.get("units") == "second"


_CLOCK_CUES = frozenset("at it's its is around about by until till before after from to".split())
_CLOCK_HOURS = frozenset(("ten", "eleven", "twelve"))


def _clock_not_year(tokens: list[Token], previous: str) -> list[Token]:
    """at twelve thirty is a time: wetext reads ten/eleven/twelve + minutes as a year (1230)."""
    if len(tokens) != 1 or tokens[0].name != "date" or _lower(previous) not in _CLOCK_CUES:
        return tokens
    year = tokens[0].fields.get("year", "").split()
    if set(tokens[0].fields) - {"year", "preserve_order"} or len(year) < 2 or year[0] not in _CLOCK_HOURS:
        return tokens
    return [Token("time", {"hour": year[0], "minute": " ".join(year[1:])})]


def _address_start(words: list[str]) -> int:
    """Where a spoken e-mail address or URL really starts among ``words`` (my email is john dot ...)."""
    end = words.index("at") if "at" in words else len(words)

    def kind(w: str) -> str:
        if w in _EMAIL_SEPARATORS:
            return "sep"
        if w in _DIGIT_WORDS or w.isdigit():
            return "digit"
        return "letter" if len(w) == 1 else "word"

    start = end - 1
    while start > 0:
        before, after = kind(words[start - 1]), kind(words[start])
        joined = (
            before == "sep"
            or after == "sep"
            or (before in ("letter", "digit") and after in ("letter", "digit"))
            or (before == "letter" and after == "word")
            or (before == "word" and after == "digit")
        )
        if not joined:
            break
        start -= 1
    return max(start, 0)


def restore_case(written: str, source: list[str]) -> str:
    """Give letters in ``written`` the casing they had in ``source`` (July, Million, A.M., Mr.)."""
    source_lower = [_lower(w) for w in source]

    def fix(m: re.Match[str]) -> str:
        word = m.group()
        letters = re.sub(r"[^a-z]", "", word.lower())
        for original, lower in zip(source, source_lower, strict=True):
            if re.sub(r"[^a-z]", "", lower) == letters and letters:
                return _case_like(word, original)
        for k in range(len(source)):
            run = source[k : k + len(letters)]
            if len(run) == len(letters) > 1 and all(len(w) == 1 for w in run) and not "".join(run).islower():
                if "".join(run).lower() == letters:
                    return _apply_letters(word, run)
        if m.start() == 0 and source and source[0][:1].isupper() and len(letters) > 1:
            return word[0].upper() + word[1:]
        return word

    return _WORD.sub(fix, written)


def _apply_letters(word: str, letters: list[str]) -> str:
    """a.m. with the letters A, M -> A.M."""
    cased = iter(letters)
    return re.sub(r"[A-Za-z]", lambda _: next(cased), word)


def _case_like(word: str, original: str) -> str:
    if len(original) > 1 and original.isupper():
        return word.upper()
    if original[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _restore_address_case(written: str, source: list[str]) -> str:
    """Addresses are written lowercase except for words said in capitals (COM) and a capital first letter
    (A at gmail dot com -> A@gmail.com); a protocol or www prefix is always lowercase."""
    for original in source:
        if len(original) > 1 and original.isupper() and original.isalpha():
            written = re.sub(rf"(?<![A-Za-z]){original.lower()}(?![A-Za-z])", original, written)
    if source and source[0][:1].isupper() and not written.lower().startswith(("http", "www")):
        written = written[:1].upper() + written[1:]
    return written
