"""Analytics settings: thresholds, keyword lists, QA rules, sentiment thresholds.

The built-in defaults are ``defaults.json`` next to this module. A file given to :func:`load_config`
(``INDEXER_ANALYTICS_FILE``) has the same shape and overrides the defaults key by key:

* a scalar, array or object key (``dead_air_threshold_ms``, ``backchannels``, ``segment_padding_ms``)
  replaces the default;
* ``keywords``: each list named in the file replaces the default list of that name, the other default
  lists stay (``"refund": []`` drops one);
* ``qa``: each key given replaces the default rule (``"dead_air": null`` turns the rule off);
* ``sentiment``: each key given replaces the default; ``terms`` adds to / overrides the lexicon.

Every mistake is a :class:`ValueError` naming the file and the key, and saying what is allowed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULTS_RESOURCE = "defaults.json"

_TOP_KEYS = (
    "dead_air_threshold_ms",
    "min_interruption_overlap_ms",
    "segment_padding_ms",
    "word_time_slack_ms",
    "backchannels",
    "keywords",
    "qa",
    "sentiment",
    "diarized_agent",
)
_QA_KEYS = ("max_score", "required", "dead_air", "agent_interruptions", "forbidden")
_SENTIMENT_KEYS = ("positive_threshold", "negative_threshold", "terms")
_DIARIZED_AGENT_KEYS = ("rule", "lists", "within_first_ms")
MAX_PHRASE_CHARS = 200


@dataclass(frozen=True)
class KeywordList:
    """A named list of phrases. English phrases match whole words (``cancel*`` also matches cancelled,
    cancellation); phrases with Chinese characters match as substrings. Case never matters."""

    name: str
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class RequiredRule:
    """The agent must say a phrase of `list`; if set, starting within the first `within_first_ms` of the recording,
    or ending within the last `within_last_ms` before the last speech ends."""

    list: str
    points: float
    within_first_ms: int | None = None
    within_last_ms: int | None = None


@dataclass(frozen=True)
class PerEventRule:
    """`points` lost per occurrence, at most `max_points` in all (None: no cap)."""

    points: float
    max_points: float | None = None


@dataclass(frozen=True)
class DeadAirRule(PerEventRule):
    """Per silence of at least `min_ms` (None: the analytics dead-air threshold)."""

    min_ms: int | None = None


@dataclass(frozen=True)
class ForbiddenRule(PerEventRule):
    """Per phrase of `list` said by the agent."""

    list: str = "forbidden"


@dataclass(frozen=True)
class QaRules:
    max_score: float = 100.0
    required: tuple[RequiredRule, ...] = ()
    dead_air: DeadAirRule | None = None
    agent_interruptions: PerEventRule | None = None
    forbidden: tuple[ForbiddenRule, ...] = ()


@dataclass(frozen=True)
class SentimentConfig:
    """Labels: positive at or above `positive_threshold`, negative at or below `negative_threshold`.

    `terms` adds lexicon entries (or overrides built-in ones): (term, weight from -3 to 3)."""

    positive_threshold: float = 0.2
    negative_threshold: float = -0.2
    terms: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class DiarizedAgentRule:
    """Which voice of a diarized mono call is the agent. `rule` "greeting": the voice that says more phrases
    of `lists` starting within the first `within_first_ms` (a tie, or none said: the VAD's choice stands);
    "vad": always the VAD's choice (the first voice heard, or VAD_DIARIZE_AGENT)."""

    rule: str = "greeting"
    lists: tuple[str, ...] = ("greeting",)
    within_first_ms: int = 60000


_AGENT_RULES = ("greeting", "vad")


@dataclass(frozen=True)
class AnalyticsConfig:
    """Everything :func:`callscribe.indexer.analytics.analyze` needs besides the call.

    `segment_padding_start_ms` / `_end_ms`: how far the VAD's segments reach before and after the
    speech. Utterances without word times are trimmed by that much (never below half their length);
    the defaults are what the project's default VAD (FSMN, default settings) measured on synthetic
    calls (starts 200-300 ms early, ends 140-310 ms late); set them to 0 when the segments are not
    padded (Silero measured about 0 / 70). `word_time_slack_ms`: how far the speech may reach before the
    first word's start and after the last word's end (word times are that inexact); see timeline.speech_span.

    `min_interruption_overlap_ms`: the overlap, as measured on the trimmed spans, from which a barge-in is
    an interruption. 350 ms: with the default VAD, planted overlaps of 0.1-0.2 s measured 170-250 ms and of
    0.4-0.5 s 400-480 ms (services/indexer/README.md, "Interruptions: the threshold").

    `backchannels`: utterances made only of these ("ok", "uh-huh", "嗯", "对") never count as an
    interruption, however long they overlap the other side (they still count as talk and overlap).
    """

    dead_air_threshold_ms: int = 5000
    min_interruption_overlap_ms: int = 350
    segment_padding_start_ms: int = 260
    segment_padding_end_ms: int = 220
    word_time_slack_ms: int = 200
    backchannels: tuple[str, ...] = ()
    keyword_lists: tuple[KeywordList, ...] = ()
    qa: QaRules = QaRules()
    sentiment: SentimentConfig = SentimentConfig()
    diarized_agent: DiarizedAgentRule = DiarizedAgentRule()

    def keyword_list(self, name: str) -> KeywordList | None:
        return next((kl for kl in self.keyword_lists if kl.name == name), None)


def load_config(path: Path | None) -> AnalyticsConfig:
    """The built-in defaults (None), or the defaults overridden by the JSON file at `path`."""
    raw = json.loads(resources.files(__package__).joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8"))
    if path is None:
        return _parse(raw, "the built-in analytics defaults")
    where = f"analytics file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"{where} does not exist: fix INDEXER_ANALYTICS_FILE or unset it to use the defaults"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} cannot be read ({exc}): it must be a UTF-8 JSON file") from exc
    try:
        override = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(override, dict):
        raise ValueError(f"{where} must hold a JSON object with some of the keys {', '.join(_TOP_KEYS)}")
    return _parse(_merge(raw, override, where), where)


# --------------------------------------------------------------------------- merging


def _merge(defaults: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    _no_unknown(override, _TOP_KEYS, "", where)
    merged = dict(defaults)
    for key, value in override.items():
        if key == "keywords":
            _expect(value, dict, "keywords", where, "an object of list name -> array of phrases")
            merged["keywords"] = {**defaults["keywords"], **value}
        elif key in ("qa", "sentiment", "diarized_agent"):
            allowed = {"qa": _QA_KEYS, "sentiment": _SENTIMENT_KEYS, "diarized_agent": _DIARIZED_AGENT_KEYS}[key]
            _expect(value, dict, key, where, f"an object with some of the keys {', '.join(allowed)}")
            _no_unknown(value, allowed, f"{key}.", where)
            merged[key] = {**defaults[key], **value}
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- parsing


def _parse(raw: dict[str, Any], where: str) -> AnalyticsConfig:
    _no_unknown(raw, _TOP_KEYS, "", where)
    padding = raw.get("segment_padding_ms", {"start": 0, "end": 0})
    _expect(padding, dict, "segment_padding_ms", where, 'an object {"start": ms, "end": ms}')
    _no_unknown(padding, ("start", "end"), "segment_padding_ms.", where)
    backchannels = raw.get("backchannels", [])
    _expect(backchannels, list, "backchannels", where, "an array of short phrases (strings)")
    for i, phrase in enumerate(backchannels):
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"{where}: backchannels[{i}] must be a non-empty phrase (a string), got {phrase!r}")
    lists = _keyword_lists(raw.get("keywords", {}), where)
    names = {kl.name for kl in lists}
    return AnalyticsConfig(
        dead_air_threshold_ms=_int(raw, "dead_air_threshold_ms", "", where, minimum=1),
        min_interruption_overlap_ms=_int(raw, "min_interruption_overlap_ms", "", where, minimum=0),
        segment_padding_start_ms=_int(padding, "start", "segment_padding_ms.", where, minimum=0),
        segment_padding_end_ms=_int(padding, "end", "segment_padding_ms.", where, minimum=0),
        word_time_slack_ms=_int(raw, "word_time_slack_ms", "", where, minimum=0),
        backchannels=tuple(p.strip() for p in backchannels),
        keyword_lists=lists,
        qa=_qa(raw.get("qa", {}), names, where),
        sentiment=_sentiment(raw.get("sentiment", {}), where),
        diarized_agent=_diarized_agent(raw.get("diarized_agent", {}), names, where),
    )


def _diarized_agent(value: Any, names: set[str], where: str) -> DiarizedAgentRule:
    _expect(value, dict, "diarized_agent", where, f"an object with some of the keys {', '.join(_DIARIZED_AGENT_KEYS)}")
    _no_unknown(value, _DIARIZED_AGENT_KEYS, "diarized_agent.", where)
    rule = value.get("rule", "greeting")
    if rule not in _AGENT_RULES:
        raise ValueError(f"{where}: diarized_agent.rule must be one of {', '.join(_AGENT_RULES)}, got {rule!r}")
    lists = value.get("lists", ["greeting"])
    _expect(lists, list, "diarized_agent.lists", where, "an array of keyword list names")
    for i, name in enumerate(lists):
        if name not in names:
            raise ValueError(
                f"{where}: diarized_agent.lists[{i}] must name a keyword list "
                f"({', '.join(sorted(names)) or 'none defined'}), got {name!r}"
            )
    within = (
        _int(value, "within_first_ms", "diarized_agent.", where, minimum=1) if "within_first_ms" in value else 60000
    )
    return DiarizedAgentRule(rule, tuple(lists), within)


def _keyword_lists(value: Any, where: str) -> tuple[KeywordList, ...]:
    _expect(value, dict, "keywords", where, "an object of list name -> array of phrases")
    lists = []
    for name, phrases in value.items():
        if not name.strip():
            raise ValueError(f"{where}: keywords has a list with an empty name: give every list a name")
        key = f"keywords.{name}"
        _expect(phrases, list, key, where, "an array of phrases (strings)")
        cleaned: list[str] = []
        for i, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not phrase.strip() or phrase.strip() == "*":
                raise ValueError(f"{where}: {key}[{i}] must be a non-empty phrase (a string), got {phrase!r}")
            if len(phrase) > MAX_PHRASE_CHARS:
                raise ValueError(f"{where}: {key}[{i}] is longer than {MAX_PHRASE_CHARS} characters")
            if "*" in phrase.strip()[:-1]:
                raise ValueError(
                    f"{where}: {key}[{i}] {phrase!r}: '*' is only allowed at the end of a word (e.g. 'cancel*')"
                )
            if phrase.strip() not in cleaned:
                cleaned.append(phrase.strip())
        lists.append(KeywordList(name, tuple(cleaned)))
    return tuple(lists)


def _qa(value: Any, names: set[str], where: str) -> QaRules:
    _expect(value, dict, "qa", where, f"an object with some of the keys {', '.join(_QA_KEYS)}")
    _no_unknown(value, _QA_KEYS, "qa.", where)
    max_score = _number(value, "max_score", "qa.", where, minimum=0.0, default=100.0)
    required = []
    req = value.get("required") or []
    _expect(req, list, "qa.required", where, 'an array of {"list": name, "points": n}')
    for i, item in enumerate(req):
        prefix = f"qa.required[{i}]."
        _expect(item, dict, prefix[:-1], where, 'an object {"list": name, "points": n}')
        _no_unknown(item, ("list", "points", "within_first_ms", "within_last_ms"), prefix, where)
        required.append(
            RequiredRule(
                list=_list_name(item, prefix, names, where),
                points=_number(item, "points", prefix, where, minimum=0.0),
                within_first_ms=_optional_int(item, "within_first_ms", prefix, where),
                within_last_ms=_optional_int(item, "within_last_ms", prefix, where),
            )
        )
    dead_air = None
    if value.get("dead_air") is not None:
        item = value["dead_air"]
        _expect(item, dict, "qa.dead_air", where, 'an object {"points": n, "max_points": n, "min_ms": ms} or null')
        _no_unknown(item, ("points", "max_points", "min_ms"), "qa.dead_air.", where)
        dead_air = DeadAirRule(
            points=_number(item, "points", "qa.dead_air.", where, minimum=0.0),
            max_points=_optional_number(item, "max_points", "qa.dead_air.", where),
            min_ms=_optional_int(item, "min_ms", "qa.dead_air.", where),
        )
    interruptions = None
    if value.get("agent_interruptions") is not None:
        item = value["agent_interruptions"]
        prefix = "qa.agent_interruptions."
        _expect(item, dict, prefix[:-1], where, 'an object {"points": n, "max_points": n} or null')
        _no_unknown(item, ("points", "max_points"), prefix, where)
        interruptions = PerEventRule(
            points=_number(item, "points", prefix, where, minimum=0.0),
            max_points=_optional_number(item, "max_points", prefix, where),
        )
    forbidden = []
    forb = value.get("forbidden") or []
    _expect(forb, list, "qa.forbidden", where, 'an array of {"list": name, "points": n, "max_points": n}')
    for i, item in enumerate(forb):
        prefix = f"qa.forbidden[{i}]."
        _expect(item, dict, prefix[:-1], where, 'an object {"list": name, "points": n, "max_points": n}')
        _no_unknown(item, ("list", "points", "max_points"), prefix, where)
        forbidden.append(
            ForbiddenRule(
                list=_list_name(item, prefix, names, where),
                points=_number(item, "points", prefix, where, minimum=0.0),
                max_points=_optional_number(item, "max_points", prefix, where),
            )
        )
    return QaRules(max_score, tuple(required), dead_air, interruptions, tuple(forbidden))


def _sentiment(value: Any, where: str) -> SentimentConfig:
    _expect(value, dict, "sentiment", where, f"an object with some of the keys {', '.join(_SENTIMENT_KEYS)}")
    _no_unknown(value, _SENTIMENT_KEYS, "sentiment.", where)
    pos = _number(value, "positive_threshold", "sentiment.", where, minimum=0.0, default=0.2)
    neg = _number(value, "negative_threshold", "sentiment.", where, minimum=-1.0, default=-0.2)
    if pos > 1.0 or neg > 0.0:
        raise ValueError(
            f"{where}: sentiment thresholds must satisfy -1 <= negative_threshold <= 0 <= positive_threshold <= 1, "
            f"got {neg} and {pos}"
        )
    terms = value.get("terms") or {}
    _expect(terms, dict, "sentiment.terms", where, "an object of term -> weight (-3 to 3)")
    parsed = []
    for term, weight in terms.items():
        ok = isinstance(weight, int | float) and not isinstance(weight, bool) and math.isfinite(weight)
        if not term.strip() or not ok or not -3.0 <= weight <= 3.0:
            raise ValueError(
                f"{where}: sentiment.terms[{term!r}] must be a non-empty term with a weight from -3 to 3, "
                f"got {weight!r}"
            )
        parsed.append((term.strip(), float(weight)))
    return SentimentConfig(pos, neg, tuple(parsed))


# --------------------------------------------------------------------------- helpers


def _no_unknown(obj: dict[str, Any], allowed: tuple[str, ...], prefix: str, where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; allowed: "
            f"{', '.join(prefix + k for k in allowed)}"
        )


def _expect(value: Any, kind: type, key: str, where: str, what: str) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"{where}: {key} must be {what}, got {json.dumps(value, ensure_ascii=False)[:80]}")


def _list_name(item: dict[str, Any], prefix: str, names: set[str], where: str) -> str:
    name = item.get("list")
    if not isinstance(name, str) or name not in names:
        raise ValueError(
            f"{where}: {prefix}list must name a keyword list ({', '.join(sorted(names)) or 'none defined'}), "
            f"got {name!r}"
        )
    return name


def _number(
    obj: dict[str, Any], key: str, prefix: str, where: str, *, minimum: float, default: float | None = None
) -> float:
    if key not in obj and default is not None:
        return default
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{where}: {prefix}{key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _optional_number(obj: dict[str, Any], key: str, prefix: str, where: str) -> float | None:
    return None if obj.get(key) is None else _number(obj, key, prefix, where, minimum=0.0)


def _int(obj: dict[str, Any], key: str, prefix: str, where: str, *, minimum: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value > 2**31:
        raise ValueError(f"{where}: {prefix}{key} must be a whole number of milliseconds >= {minimum}, got {value!r}")
    return value


def _optional_int(obj: dict[str, Any], key: str, prefix: str, where: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, prefix, where, minimum=1)
