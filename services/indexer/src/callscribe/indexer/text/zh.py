"""Chinese ITN: wetext's WeTextProcessing tagger and verbalizer, plus callscribe's own rules.

Pipeline for one utterance:

1. financial/traditional numerals inside numeral runs become plain ones (伍拾壹点肆 -> 五十一点四);
2. fillers go (呃 everywhere; 啊 only where it is a filler, not a sentence-final particle);
3. callscribe's rules claim the spans wetext gets wrong or writes in another convention: clock times
   (下午三点半 -> 下午3:30, 五点五分 -> 5:05), amounts in 块/元 with jiao/fen (一百五十八块五 -> 158.5元),
   big numbers with 零 or an abbreviated digit after 万/亿 (一百一十九万零九 -> 1190009) and decimals
   before 万/亿 (一点五万美元 -> $1.5万);
4. the rest goes through wetext's tagger; each token is verbalized on its own (digit strings, signs and
   single digits by callscribe; single-digit measures, which wetext's verbalizer cannot read, by a probe);
5. RMB amounts are written N元 (wetext writes ¥N).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from callscribe.indexer.text.fst import Graphs, Token
from callscribe.indexer.text.zh_numbers import (
    DIGITS,
    format_decimal,
    parse_decimal,
    parse_digit_string,
    parse_int,
    to_plain_numerals,
)

log = logging.getLogger(__name__)

_D = "[一二两三四五六七八九]"
_NUMERAL = "零〇一二两三四五六七八九十百千万亿兆幺"
_NOT_AFTER_NUMERAL = f"(?<![{_NUMERAL}点第])"
# 这两点十分重要 (these two points are very important) is not a time.
_NOT_A_COUNT = "(?<![这那几哪每])"
_HOUR = "(?:二十[一二三四]?|十[一二三四五六七八九]?|[零一两二三四五六七八九])"
_MIN_TENS = "(?:[二三四五]十[一二三四五六七八九]?|十[一二三四五六七八九]?)"
_SEC = "(?:[二三四五]十[一二三四五六七八九]?|十[一二三四五六七八九]?|零?[一二三四五六七八九])秒"
_NOON = "(?:凌晨|清晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|夜间|半夜|深夜|今早|明早|今晚|明晚|昨晚)"
_DAY = "(?:大后天|今天|明天|后天|昨天|前天|(?:周|星期|礼拜)[一二三四五六日天])"
_PREFIX = f"(?:{_DAY}{_NOON}?|{_NOON})"  # kept as spoken before the clock time: 明天上午10:30

# 三点四十, 八点零五分, 早上一点零二, 五点五分, 十三点十分三十六秒; 零X without 分 needs a time of day
# (一点零五 alone is a decimal), a single-digit minute needs 分 (and is not 分钟 or 分之).
_TIME_MINUTES = re.compile(
    f"{_NOT_AFTER_NUMERAL}{_NOT_A_COUNT}(?P<noon>{_PREFIX})?(?P<hour>{_HOUR})点"
    f"(?:(?P<tens>{_MIN_TENS})分?|零(?P<zero>{_D})(?P<zero_fen>分)?|(?P<single>{_D})分(?![钟之]))"
    f"(?P<sec>{_SEC})?(?![万亿元块])"
)
_TIME_HALF = re.compile(
    f"{_NOT_AFTER_NUMERAL}{_NOT_A_COUNT}(?P<noon>{_PREFIX})?(?P<hour>{_HOUR})点(?:(?P<half>半)|(?P<quarter>[一两二三])刻(?!钟))"
)
# 十分 before a word is the adverb "very" (十分感谢, 十分的抱歉); 打十分, 十分钟, 十分之一 are numbers.
_VERY = re.compile(f"(?<![{_NUMERAL}第打考扣])十分(?=的?[\u4e00-\u9fff])(?!的?[吧啊呀呢了吗钟之])")
_COUNTED_POINTS = re.compile(f"[这那几哪每](?P<points>{_HOUR}点)")
# 下午三点, 明天九点, 三点钟: an hour alone is a time only with a time of day, a day or 钟.
_TIME_HOUR = re.compile(
    f"(?:(?P<prefix>{_PREFIX}){_NOT_AFTER_NUMERAL}(?P<hour>{_HOUR})点(?P<zhong>钟)?"
    f"|{_NOT_AFTER_NUMERAL}(?P<hour2>{_HOUR})点钟)"
)
# 一百五十八块五, 十二块五毛, 两块五毛八, 三块零五分, 二十五元三毛 (not 三块五花肉, 一块五角星).
_KUAI = re.compile(
    f"{_NOT_AFTER_NUMERAL}(?P<num>[零一二两三四五六七八九十百千万亿]+)[块元]"
    f"(?:零(?P<fen0>{_D})分|(?P<jiao>{_D})(?:[毛角](?P<fen1>{_D})?分?|(?P<fen2>{_D})分)?)"
    "(?P<qian>钱)?(?P<not_money>(?<![钱毛角分])[花彩星官颜味谷环湖])?"
)
# 三又五分之一 -> 3又1/5 (wetext writes the fraction but leaves the whole part spoken).
_MIXED_FRACTION = re.compile(f"{_NOT_AFTER_NUMERAL}(?P<num>[{_NUMERAL}]+)又(?=[{_NUMERAL}]+分之)")
# With 0-to-9 on, a lone digit before 千克/千米/千瓦 is a number of that unit (一千克 -> 1kg).
_KILO = re.compile(f"{_NOT_AFTER_NUMERAL}(?P<num>{_D})(?P<unit>千(?:克|米|瓦时|瓦))")
_TAGGER_PIECE = 64
_PIECE_BREAK = re.compile(r"[，。？！；：、,;!?\s]")
# Characters after which a cut cannot split a number or a number + unit (三块|五, 二零|二五年).
_NO_CUT_AFTER = set(_NUMERAL) | set("点负第块元角毛分年月号日时之")
_RUN = re.compile(f"负?[{_NUMERAL}]+(?:点[零一二三四五六七八九]+[万亿]?)?")
_RMB = re.compile(r"¥(\d+(?:\.\d+)?(?:[~-]\d+(?:\.\d+)?)?[万亿]?)")
_CURRENCY_WORDS = (
    "新台币",
    "人民币",
    "美元",
    "欧元",
    "英镑",
    "日元",
    "韩元",
    "港元",
    "港币",
    "澳元",
    "加元",
    "卢布",
    "台币",
    "元",
)
_FILLER_A = re.compile(r"^啊+|(?<=[\s，。？！、；：,.?!;:呃])啊+|啊+(?=呃)")
_LEADING_PUNCT = re.compile(r"^[\s，。、；：,.;:]+")
_DOUBLE_COMMA = re.compile(r"([，,、])\s*[，,、]+")
_ZERO_TO_NINE_LEFTOVER = re.compile(r"(?<=\d)([一二两三四五六七八九])(?=[^\d一二两三四五六七八九十百千万亿点])")


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    output: str


class ChineseItn:
    """Chinese spoken-to-written conversion; thread-safe after construction."""

    def __init__(
        self,
        *,
        enable_0_to_9: bool = False,
        enable_standalone_number: bool = True,
        remove_interjections: bool = True,
    ) -> None:
        self._graphs = Graphs("zh", enable_0_to_9)
        self._enable_0_to_9 = enable_0_to_9
        self._standalone = enable_standalone_number
        self._remove_interjections = remove_interjections
        self._verbalize: Callable[[str], str] = functools.lru_cache(maxsize=16384)(self._verbalize_serialized)
        self._idioms = _idiom_pattern()
        self._currency = self._currency_templates()
        self._currency_re = re.compile("|".join(sorted(self._currency, key=len, reverse=True)))

    # -- public ------------------------------------------------------------------------------------

    def __call__(self, text: str) -> str:
        traditional = [(simple, trad) for trad, simple in (("萬", "万"), ("億", "亿")) if trad in text]
        written = self._convert(to_plain_numerals(text))
        for simple, trad in traditional:
            written = re.sub(f"(?<=\\d){simple}", trad, written)  # 一億 -> 1億: keep the speaker's script
        return written

    def _convert(self, text: str) -> str:
        if self._remove_interjections:
            text = remove_fillers(text)
        pieces: list[str] = []
        pos = 0
        for span in self._claimed_spans(text):
            if span.start > pos:
                pieces.append(self._wetext(text[pos : span.start]))
            pieces.append(span.output)
            pos = span.end
        if pos < len(text):
            pieces.append(self._wetext(text[pos:]))
        return _join(pieces)

    # -- callscribe's rules ------------------------------------------------------------------------

    def _claimed_spans(self, text: str) -> list[_Span]:
        candidates: list[_Span] = []
        finders = [self._idiom_spans, self._times, self._kuai, self._big_numbers, self._mixed_fractions]
        if self._enable_0_to_9:
            finders.append(self._kilo)
        for finder in finders:
            candidates.extend(finder(text))
        candidates.sort(key=lambda s: (s.start, -(s.end - s.start)))
        chosen: list[_Span] = []
        end = 0
        for span in candidates:
            if span.start >= end:
                chosen.append(span)
                end = span.end
        return chosen

    def _times(self, text: str) -> list[_Span]:
        spans = []
        for m in _TIME_MINUTES.finditer(text):
            if m.group("zero") and not (m.group("zero_fen") or m.group("noon")):
                continue  # 一点零五: a decimal unless 分 or a time of day says otherwise
            hour = parse_int(m.group("hour"))
            if m.group("tens"):
                minute = parse_int(m.group("tens"))
            else:
                minute = DIGITS[m.group("zero") or m.group("single")]
            if hour is None or minute is None or hour > 24 or minute > 59:
                continue
            clock = f"{_hour(hour)}:{minute:02d}"
            if m.group("sec"):
                second = parse_int(m.group("sec")[:-1].lstrip("零")) or 0
                if second > 59:
                    continue
                clock += f":{second:02d}"
            spans.append(_Span(m.start(), m.end(), (m.group("noon") or "") + clock))
        for m in _VERY.finditer(text):
            spans.append(_Span(m.start(), m.end(), m.group()))  # 十分感谢: "very", not ten points
        for m in _COUNTED_POINTS.finditer(text):
            # 这两点: points of an argument; claimed as spoken so wetext does not read a time either.
            spans.append(_Span(m.start("points"), m.end("points"), m.group("points")))
        for m in _TIME_HALF.finditer(text):
            hour = parse_int(m.group("hour"))
            if hour is None or hour > 24:
                continue
            minute = 30 if m.group("half") else 15 * DIGITS[m.group("quarter")]
            if minute > 45:
                continue
            spans.append(_Span(m.start(), m.end(), f"{m.group('noon') or ''}{_hour(hour)}:{minute:02d}"))
        for m in _TIME_HOUR.finditer(text):
            hour = parse_int(m.group("hour") or m.group("hour2"))
            if hour is None or hour > 24:
                continue
            prefix = m.group("prefix") or ""
            zhong = "钟" if (m.group("zhong") or m.group("hour2")) else ""
            spans.append(_Span(m.start(), m.end(), f"{prefix}{hour}点{zhong}"))
        return spans

    def _idiom_spans(self, text: str) -> list[_Span]:
        return [_Span(m.start(), m.end(), m.group()) for m in self._idioms.finditer(text)]

    def _kuai(self, text: str) -> list[_Span]:
        spans = []
        for m in _KUAI.finditer(text):
            value = parse_int(m.group("num"))
            if value is None:
                continue
            if m.group("not_money"):
                # 三块五花肉: pieces, not money; claim 三块 so wetext does not read 三块五 as an amount.
                unit_end = m.start("num") + len(m.group("num")) + 1
                spans.append(_Span(m.start(), unit_end, f"{value}{text[unit_end - 1]}"))
                continue
            if m.group("fen0"):
                cents = f"0{DIGITS[m.group('fen0')]}"
            elif m.group("jiao"):
                fen = m.group("fen1") or m.group("fen2")
                cents = f"{DIGITS[m.group('jiao')]}{DIGITS[fen] if fen else ''}"
            else:
                continue  # whole amounts (一百块钱) stay with wetext
            spans.append(_Span(m.start(), m.end(), f"{value}.{cents}元"))
        return spans

    def _big_numbers(self, text: str) -> list[_Span]:
        """Numbers with 万/亿 that wetext writes ambiguously (119万9) or cannot tag (十一亿零九, 一点五万美元)."""
        spans = []
        for m in _RUN.finditer(text):
            run = m.group()
            sign = ""
            if run.startswith("负"):
                sign, run = "-", run[1:]
            written = _big_number(run)
            if written is None:
                continue
            end = m.end()
            currency = self._currency_re.match(text, end)
            if currency:
                written = self._currency[currency.group()].format(sign + written)
                end = currency.end()
            else:
                written = sign + written
            spans.append(_Span(m.start(), end, written))
        return spans

    def _mixed_fractions(self, text: str) -> list[_Span]:
        spans = []
        for m in _MIXED_FRACTION.finditer(text):
            value = parse_int(m.group("num"))
            if value is not None:
                spans.append(_Span(m.start(), m.end(), f"{value}又"))
        return spans

    def _kilo(self, text: str) -> list[_Span]:
        spans = []
        for m in _KILO.finditer(text):
            written = self._verbalize(Token("measure", {"value": "十" + m.group("unit")}).serialize())
            if written.count("10") == 1:
                spans.append(_Span(m.start(), m.end(), written.replace("10", str(DIGITS[m.group("num")]))))
        return spans

    # -- wetext ------------------------------------------------------------------------------------

    def _wetext(self, text: str) -> str:
        if len(text) > _TAGGER_PIECE:
            # The tagger's cost grows faster than the length: long runs are tagged in bounded pieces.
            return "".join(self._wetext_piece(piece) for piece in split_for_tagger(text, _TAGGER_PIECE))
        return self._wetext_piece(text)

    def _wetext_piece(self, text: str) -> str:
        try:
            tokens = self._graphs.tag(text)
        except Exception:  # noqa: BLE001 - a graph failure must never lose the utterance
            log.debug("zh tagger failed on %r", text, exc_info=True)
            return text
        if tokens is None:
            log.debug("zh tagger found no path for %r", text)
            return text
        out = []
        for i, token in enumerate(tokens):
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            preceding = tokens[i - 1] if i else None
            if token.name in ("cardinal", "measure") and "几" in (
                preceding.value[-1:] if preceding else "",
                following.value[:1] if following else "",
            ):
                out.append(token.value)  # 十几个, 几十个: approximate numbers stay as spoken
                continue
            out.append(self._token(token, following))
        return "".join(out)

    def _token(self, token: Token, following: Token | None) -> str:
        if token.name == "char":
            return token.value
        if token.name == "cardinal":
            return self._cardinal(token, following)
        written = self._verbalize(token.serialize())
        if not written:
            written = self._probe(token)
        if not written:
            log.debug("zh verbalizer found no path for %s", token.serialize())
            return "".join(v for k, v in token.fields.items() if k != "preserve_order")
        written = _RMB.sub(r"\1元", written)
        if self._enable_0_to_9 and token.name == "measure":
            written = _ZERO_TO_NINE_LEFTOVER.sub(lambda m: f" {DIGITS[m.group(1)]}", written)
        return written

    def _cardinal(self, token: Token, following: Token | None) -> str:
        spoken = token.value
        if not self._standalone and "点" not in spoken:
            return spoken  # integers said on their own stay as spoken; decimals are still written
        sign = ""
        body = spoken
        for prefix, symbol in (("正负", "±"), ("负", "-")):
            if body.startswith(prefix):
                sign, body = symbol, body[len(prefix) :]
                break
        if len(body) == 1 and body in DIGITS:
            if not self._enable_0_to_9 or (following is not None and following.value[:1] in "十百千万亿"):
                return spoken
            return sign + str(DIGITS[body])
        digits = parse_digit_string(body)
        if digits is not None and len(body) >= 2:
            return sign + digits
        written = self._verbalize(token.serialize())
        if written:
            return written
        value = parse_decimal(body)
        return spoken if value is None else sign + format_decimal(value)

    def _probe(self, token: Token) -> str:
        """Verbalize a measure/money whose number the verbalizer cannot read (e.g. 九天 with 0-to-9 on).

        The number is swapped for 十, verbalized, and 10 in the result swapped back for the number.
        """
        key = "value" if "value" in token.fields else None
        if key is None:
            return ""
        spoken = token.fields[key]
        m = re.match(f"[{_NUMERAL}点]+", spoken)
        if not m:
            return ""
        end = m.end()
        value = parse_decimal(spoken[:end])
        while value is None and end > 1:  # 二两: the number is 二, 两 is the unit
            end -= 1
            value = parse_decimal(spoken[:end])
        if value is None:
            return ""
        probe = Token(token.name, dict(token.fields))
        probe.fields[key] = "十" + spoken[end:]
        written = self._verbalize(probe.serialize())
        if written.count("10") != 1:
            return ""
        return written.replace("10", format_decimal(value))

    def _verbalize_serialized(self, serialized: str) -> str:
        try:
            return self._graphs.verbalize_serialized(serialized)
        except Exception:  # noqa: BLE001
            log.debug("zh verbalizer failed on %s", serialized, exc_info=True)
            return ""

    def _currency_templates(self) -> dict[str, str]:
        """How wetext writes each currency (a ``str.format`` template), learned by verbalizing 十<currency>."""
        templates = {}
        for word in _CURRENCY_WORDS:
            written = self._verbalize(Token("money", {"value": "十", "currency": word, "decimal": ""}).serialize())
            written = _RMB.sub(r"\1元", written)
            if written.count("10") == 1:
                templates[word] = written.replace("{", "{{").replace("}", "}}").replace("10", "{}")
        return templates


@functools.lru_cache(maxsize=1)
def _idiom_pattern() -> re.Pattern[str]:
    lines = resources.files("callscribe.indexer.text").joinpath("zh_idioms.txt").read_text(encoding="utf-8")
    idioms = sorted({ln.strip() for ln in lines.splitlines() if ln.strip() and not ln.startswith("#")}, key=len)
    alternatives = "|".join(re.escape(i) for i in reversed(idioms))
    return re.compile(f"{_NOT_AFTER_NUMERAL}(?:{alternatives})(?![{_NUMERAL}之钟])")


def _hour(hour: int) -> str:
    return "00" if hour == 0 else str(hour)


def _big_number(run: str) -> str | None:
    """Written form of a numeral run when callscribe, not wetext, should write it; else None."""
    if "点" in run:
        head, _, tail = run.partition("点")
        if not tail or tail[-1] not in "万亿" or not any(u in tail for u in "万亿"):
            return None
        value = parse_decimal(f"{head}点{tail[:-1]}")
        return None if value is None else f"{format_decimal(value)}{tail[-1]}"
    if not any(u in run for u in "万亿"):
        return None
    if run.endswith("亿") and run.count("亿") == 1 and not any(u in run for u in "万兆"):
        head = parse_int(run[:-1])  # 一亿, 三亿: wetext's tagger leaves N亿 alone
        return None if head is None or head == 0 else f"{head}亿"
    value = parse_int(run)
    if value is None:
        return None
    last = max(run.rfind("万"), run.rfind("亿"))
    tail = run[last + 1 :]
    gap = tail.startswith("零") and tail[1:] and (parse_int(tail[1:]) or 0) < 1000
    # 一百一十九万九: wetext writes 119万9; below 百万 (两万五, 一万三天) it is already unambiguous.
    head_value = parse_int(run[:last]) if run[last] == "万" else None
    abbreviated = len(tail) == 1 and tail in DIGITS and tail != "零" and (head_value is None or head_value >= 100)
    yi_gap = re.search("亿零[^万]*万", run) is not None
    if gap or abbreviated or yi_gap:
        return str(value)
    return None


def remove_fillers(text: str) -> str:
    """Drop 呃 and filler 啊 (utterance- or clause-initial, or next to 呃); keep 好啊, 是啊."""
    if "呃" not in text and "啊" not in text:
        return text
    text = _FILLER_A.sub("", text)
    text = text.replace("呃", "")
    text = _LEADING_PUNCT.sub("", text)
    return _DOUBLE_COMMA.sub(r"\1", text)


def split_for_tagger(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters at punctuation, else between words."""
    pieces = []
    start = 0
    while len(text) - start > limit:
        window_end = start + limit
        breaks = [m.end() for m in _PIECE_BREAK.finditer(text, start + 1, window_end)]
        cut = breaks[-1] if breaks else None
        if cut is None:
            backward = (k for k in range(window_end, start + limit // 4, -1) if text[k - 1] not in _NO_CUT_AFTER)
            forward = (k for k in range(window_end + 1, len(text)) if text[k - 1] not in _NO_CUT_AFTER)
            cut = next(backward, None) or next(forward, None)
            if cut is None:
                break  # one long number: keep it whole
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _join(pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        if out and piece and out[-1].isdigit() and piece[0].isdigit():
            out += " "
        out += piece
    return out
