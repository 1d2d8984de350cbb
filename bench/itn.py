"""ITN benchmark: callscribe's TextNormalizer vs wetext on public peer test suites, plus speed.

    python bench/itn.py --cases DIR [--show-misses 10] [--json OUT]

DIR holds spoken -> written TSV test cases, one file per suite, language and category, named
``<suite>_<lang>_<category>[_cased].tsv`` (columns: input, expected; e.g. WeTextProcessing's ``wetp_*`` and
NeMo's ``nemo_*``). Each case is run through callscribe (``TextNormalizer.itn``) and, in the same run,
through wetext 0.1.8 (``Normalizer(operator="itn")``, default settings) as the peer.

A case is *exact* (output == expected), *format-only* (equal after removing whitespace, folding full-width
to half-width and mapping the notation conventions listed in ``canonical``: digit-group commas, ¥N / N元,
Y/MM/DD / Y年M月D日, 3:30p.m. / 下午3:30, 10000 / 1万, 12块5 / 12.5元, ...) or *wrong*.

WeTextProcessing's zh files are run with the settings its own tests use for them (its main suite with
enable_0_to_9 on; the ``normalizer_*`` files with the settings in their names); wetext is measured both at
its defaults and with enable_0_to_9 where the suite uses it (it exposes no standalone-number setting).

Speed: ms per utterance of ``normalize`` (punctuation + ITN) and ``itn`` against wetext's ``normalize``, single
thread, best of 3 passes, over every peer input of a language and over 10 longer call-center utterances per
language (embedded below). Exit 0 on a MISS (it is a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from callscribe.indexer.text import TextNormalizer

# Targets from the issue: (suite, lang) -> minimum callscribe exact + format-only.
TARGETS = {("wetp", "zh"): 290, ("wetp", "en"): 487, ("nemo", "en_cased"): 700}
# Errors of wetext listed with the peer cases: (input, expected written form).
WETEXT_ERRORS = (
    ("一点五万美元", "US$1.5万"),
    ("五点五分", "05:05"),
    ("一百一十九万零九", "1,190,009"),
    ("伍拾壹点肆", "51.4"),
)
FILE_NAME = re.compile(r"^(?P<suite>[a-z]+)_(?P<lang>zh|en)_(?P<category>.+?)(?P<cased>_cased)?\.tsv$")


@dataclass
class Case:
    suite: str
    lang: str
    category: str
    cased: bool
    file: str
    spoken: str
    expected: str


@dataclass
class Tally:
    n: int = 0
    exact: int = 0
    fmt: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, verdict: str, case: Case, output: str) -> None:
        self.n += 1
        if verdict == "exact":
            self.exact += 1
        elif verdict == "format":
            self.fmt += 1
        else:
            self.misses.append((case.spoken, case.expected, output))

    @property
    def ok(self) -> int:
        return self.exact + self.fmt


# -- suite settings ----------------------------------------------------------------------------------


def settings_for(case_file: str, suite: str, lang: str) -> dict[str, bool]:
    """The settings a WeTextProcessing zh file was written for (its tests' InverseNormalizer arguments)."""
    if suite != "wetp" or lang != "zh":
        return {}
    standalone = "disable_standalone_number" not in case_file
    if "enable_0_to_9" in case_file:
        zero_to_nine = True
    elif "disable_0_to_9" in case_file:
        zero_to_nine = False
    else:
        zero_to_nine = True  # WeTextProcessing's main test class
    return {"enable_0_to_9": zero_to_nine, "enable_standalone_number": standalone}


def load_cases(directory: Path) -> list[Case]:
    cases = []
    for path in sorted(directory.glob("*.tsv")):
        m = FILE_NAME.match(path.name)
        if not m:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() and "\t" not in line:
                continue  # a blank line; a line of just a tab is a case (empty in, empty out)
            spoken, _, expected = line.partition("\t")
            cases.append(
                Case(
                    m["suite"],
                    m["lang"],
                    m["category"],
                    bool(m["cased"]),
                    path.name,
                    spoken.strip(),
                    expected.strip(),
                )
            )
    return cases


# -- format-only differences -------------------------------------------------------------------------

_AM = "凌晨|清晨|早上|早晨|上午|今早|明早"
_PM = "中午|下午|傍晚|晚上|夜里|夜间|半夜|深夜|今晚|明晚|昨晚"


def _expand_wan_yi(text: str) -> str:
    """1万 -> 10000, 119万9000 -> 1199000, 1亿2300 -> 100002300 (only unambiguous four-digit remainders)."""

    def yi(m: re.Match[str]) -> str:
        value = Decimal(m[1]) * 10**8 + Decimal(m[2] or 0) * 10**4 + Decimal(m[3] or 0)
        return _plain(value) if m[1].find(".") < 0 or not (m[2] or m[3]) else m[0]

    def wan(m: re.Match[str]) -> str:
        if "." in m[1] and m[2]:
            return m[0]
        return _plain(Decimal(m[1]) * 10**4 + Decimal(m[2] or 0))

    text = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)亿(?:(\d{1,4})万)?(\d{4})?(?![\d万])", yi, text)
    return re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)万(\d{4})?(?!\d)", wan, text)


def _plain(value: Decimal) -> str:
    try:
        return str(value.quantize(Decimal(1))) if value == value.to_integral_value() else format(value.normalize(), "f")
    except InvalidOperation:
        return str(value)


def canonical(text: str, lang: str) -> str:
    """A notation-neutral form: two outputs with the same canonical form differ in format only."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    if lang == "en":
        return text
    text = text.replace("億", "亿").replace("萬", "万")
    # currencies: ¥N and N元, US$ and $, KRW and ₩, JPY¥ and JPY
    text = text.replace("US$", "$").replace("JPY¥", "JPY").replace("KRW", "₩")
    text = re.sub(r"¥(-?\d+(?:\.\d+)?(?:[~-]\d+(?:\.\d+)?)?[万亿]?)", r"\1元", text)
    # amounts in 块: 12块5毛 / 12块5 / 12.5元
    text = re.sub(r"(\d+)块(\d)[毛角]?(?:(\d)分?)?(?![\d块])", lambda m: f"{m[1]}.{m[2]}{m[3] or ''}元", text)
    # dates: 1798/05/30 / 1798年5月30日
    text = re.sub(r"(\d{2,4})/(\d{1,2})/(\d{1,2})", lambda m: f"{m[1]}年{int(m[2])}月{int(m[3])}日", text)
    text = re.sub(r"(\d{4})/(\d{1,2})(?![\d/])", lambda m: f"{m[1]}年{int(m[2])}月", text)
    text = re.sub(r"(?<![\d/年])(\d{1,2})/(\d{1,2})(?![\d/])", lambda m: f"{int(m[1])}月{int(m[2])}日", text)
    text = re.sub(r"(?<=\d)号", "日", text)
    # times: 3:30p.m. / 下午3:30, 05:05 / 5:05, 5点半 / 5:30, 5点1刻 / 5:15
    text = re.sub(r"(\d+)点半", r"\1:30", text)
    text = re.sub(r"(\d+)点(\d)刻", lambda m: f"{m[1]}:{15 * int(m[2]):02d}", text)
    text = re.sub(rf"(?:{_AM})(\d{{1,2}}:\d{{2}}(?::\d{{2}})?)", r"\1a.m.", text)
    text = re.sub(rf"(?:{_PM})(\d{{1,2}}:\d{{2}}(?::\d{{2}})?)", r"\1p.m.", text)
    text = re.sub(r"(?<![\d:])0(\d):", r"\1:", text)
    return _expand_wan_yi(text)


def verdict(expected: str, output: str, lang: str) -> str:
    if output == expected:
        return "exact"
    if canonical(output, lang) == canonical(expected, lang):
        return "format"
    return "wrong"


# -- systems -----------------------------------------------------------------------------------------


class Systems:
    def __init__(self) -> None:
        t0 = time.perf_counter()
        self.callscribe: dict[tuple[bool, bool], TextNormalizer] = {(False, True): TextNormalizer()}
        self.callscribe_init_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        from wetext import Normalizer  # the peer; importing it loads all of its graphs

        self._wetext = {lang: Normalizer(lang=lang, operator="itn") for lang in ("zh", "en")}
        self.wetext_init_s = time.perf_counter() - t0

    def ours(self, settings: dict[str, bool]) -> TextNormalizer:
        key = (settings.get("enable_0_to_9", False), settings.get("enable_standalone_number", True))
        if key not in self.callscribe:
            self.callscribe[key] = TextNormalizer(enable_0_to_9=key[0], enable_standalone_number=key[1])
        return self.callscribe[key]

    def wetext(self, text: str, lang: str, enable_0_to_9: bool = False) -> str:
        try:
            if enable_0_to_9:
                return self._wetext[lang].normalize(text, enable_0_to_9=True)
            return self._wetext[lang].normalize(text)
        except Exception as exc:  # noqa: BLE001 - a peer failure is a wrong answer, not a bench error
            return f"<error {type(exc).__name__}>"


# -- runs --------------------------------------------------------------------------------------------


def group_key(case: Case) -> tuple[str, str]:
    return case.suite, case.lang + ("_cased" if case.cased else "")


def run_accuracy(cases: list[Case], systems: Systems) -> dict[str, Any]:
    by_file: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    by_group: dict[tuple[str, str], dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    for case in cases:
        settings = settings_for(case.file, case.suite, case.lang)
        outputs = {
            "callscribe": systems.ours(settings).itn(case.spoken, case.lang),
            "wetext": systems.wetext(case.spoken, case.lang),
            "wetext_suite": systems.wetext(case.spoken, case.lang, settings.get("enable_0_to_9", False)),
        }
        for system, output in outputs.items():
            v = verdict(case.expected, output, case.lang)
            by_file[case.file][system].add(v, case, output)
            by_group[group_key(case)][system].add(v, case, output)
    return {"by_file": by_file, "by_group": by_group}


# Call-center utterances (longer than the peer cases) for the speed figures, as the ASR emits them.
CALL_CENTER = {
    "zh": [
        "您好请问有什么可以帮您",
        "呃我想问一下我的话费为什么是一百二十八块五毛八",
        "好的那我明天上午十点给您回电话您看可以吗",
        "您的订单号是幺三八一二三四五六七八请您记一下",
        "这个月套餐费是五十八元流量费十二块八一共七十块零八毛",
        "您的退款三到五个工作日到账如果有问题可以再打过来",
        "我二零二三年十二月办的卡当时说的是每个月三十九块九",
        "利率是百分之四点五一共是一百一十九万零九元",
        "不好意思让您久等了我这边查到您是下午三点半下的单",
        "那我先帮您登记一下然后让专员在二十四小时内联系您",
    ],
    "en": [
        "Hello, how can I help you today?",
        "It costs eighty five dollars a month, plus tax.",
        "Your total is one hundred twenty-three dollars and forty-five cents.",
        "My phone number is five five five, one two three, four five six seven.",
        "Your appointment is on March third at two thirty in the afternoon.",
        "I was charged twice on the twenty first of January.",
        "Can I get a refund of two hundred and fifty dollars?",
        "My email is john dot smith at gmail dot com.",
        "Hold on, just a second, I'm pulling up your account.",
        "We're open from nine A M to five P M, Monday through Friday.",
    ],
}


def run_speed(cases: list[Case], systems: Systems, rounds: int = 3) -> dict[str, dict[str, float]]:
    """ms per utterance, single thread, best of ``rounds`` passes (the machine is shared)."""
    ours = systems.ours({})
    result = {}
    for lang in ("zh", "en"):
        corpora = {
            "peer cases": [c.spoken for c in cases if c.lang == lang],
            "call-center": CALL_CENTER[lang] * 20,
        }
        runs: dict[str, Callable[[str, str], str]] = {
            "callscribe normalize": ours.normalize,
            "callscribe itn": ours.itn,
            "wetext normalize": systems.wetext,
        }
        for corpus, texts in corpora.items():
            if not texts:
                continue
            for name, fn in runs.items():
                for t in texts[:50]:
                    fn(t, lang)  # warm-up (fills callscribe's verbalizer cache as a running indexer would)
                best: list[float] | None = None
                for _ in range(rounds):
                    times = []
                    for t in texts:
                        t0 = time.perf_counter()
                        fn(t, lang)
                        times.append((time.perf_counter() - t0) * 1000)
                    if best is None or statistics.fmean(times) < statistics.fmean(best):
                        best = times
                assert best is not None
                best.sort()
                result[f"{lang} {corpus}: {name}"] = {
                    "n": len(best),
                    "mean_ms": statistics.fmean(best),
                    "p50_ms": best[len(best) // 2],
                    "p95_ms": best[int(len(best) * 0.95)],
                    "mean_chars": statistics.fmean(len(t) for t in texts),
                }
    return result


def wetext_error_checks(systems: Systems, cases: list[Case]) -> list[dict[str, Any]]:
    ours = systems.ours({})
    checks = []
    for spoken, expected in WETEXT_ERRORS:
        got = ours.itn(spoken, "zh")
        peer = systems.wetext(spoken, "zh")
        checks.append(
            {
                "error": f"{spoken} -> {peer}",
                "callscribe": got,
                "fixed": verdict(expected, got, "zh") != "wrong",
            }
        )
    # enable_0_to_9: wetext returns '' for inputs with a lone digit; callscribe must never return ''.
    zero_to_nine = systems.ours({"enable_0_to_9": True, "enable_standalone_number": True})
    zh = [c for c in cases if c.lang == "zh" and c.expected]
    empty_ours = sum(1 for c in zh if not zero_to_nine.itn(c.spoken, "zh"))
    empty_peer = sum(1 for c in zh if not systems.wetext(c.spoken, "zh", enable_0_to_9=True))
    checks.append(
        {
            "error": f"enable_0_to_9=True returns '' ({empty_peer} of {len(zh)} zh inputs)",
            "callscribe": f"'' for {empty_ours} of {len(zh)}",
            "fixed": empty_ours == 0,
        }
    )
    return checks


# -- report ------------------------------------------------------------------------------------------


def _cell(t: Tally) -> str:
    return f"{t.exact:>4} +{t.fmt:<3} {t.ok:>4}/{t.n:<4} {100 * t.ok / t.n:5.1f}%"


def report(acc: dict[str, Any], speed: dict[str, dict[str, float]], checks: list[dict[str, Any]], show: int) -> bool:
    header = f"{'':58} {'callscribe':^24}  {'wetext (default)':^24}  {'wetext (suite 0-9)':^24}"
    sub = f"{'suite / language / category':58} " + "  ".join([f"{'exact +fmt    ok/n':^24}"] * 3)
    print(header)
    print(sub)
    for name in sorted(acc["by_file"]):
        t = acc["by_file"][name]
        print(f"{name[:-4]:58} {_cell(t['callscribe'])}  {_cell(t['wetext'])}  {_cell(t['wetext_suite'])}")
    print()
    print(f"{'TOTAL (suite, language)':58} " + "  ".join([f"{'exact +fmt    ok/n':^24}"] * 3))
    all_met = True
    for key in sorted(acc["by_group"]):
        t = acc["by_group"][key]
        target = TARGETS.get(key)
        verdict_text = ""
        if target is not None:
            met = t["callscribe"].ok >= target
            all_met &= met
            verdict_text = f"  target >= {target}: {'OK' if met else 'MISS'}"
        label = f"{key[0]} {key[1]}"
        print(f"{label:58} {_cell(t['callscribe'])}  {_cell(t['wetext'])}  {_cell(t['wetext_suite'])}{verdict_text}")
    print("\nexact = identical output; +fmt = format-only difference (see canonical()); ok = exact + fmt")
    print("\nwetext errors listed with the peer cases:")
    for check in checks:
        all_met &= check["fixed"]
        print(f"  {'FIXED' if check['fixed'] else 'OPEN '}  {check['error']}   callscribe: {check['callscribe']}")
    print("\nspeed (single thread, ms per utterance):")
    for name, s in speed.items():
        print(
            f"  {name:44} n={s['n']:<5} mean {s['mean_ms']:6.2f}  p50 {s['p50_ms']:6.2f}  p95 {s['p95_ms']:6.2f}"
            f"  (mean {s['mean_chars']:.0f} chars)"
        )
    if show:
        print(f"\ncallscribe misses (up to {show} per suite/language):")
        for key in sorted(acc["by_group"]):
            misses = acc["by_group"][key]["callscribe"].misses
            for spoken, expected, got in misses[:show]:
                print(f"  {key[0]} {key[1]}: {spoken!r} expected {expected!r} got {got!r}")
    return all_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=Path, required=True, help="directory of <suite>_<lang>_<category>.tsv files")
    parser.add_argument("--show-misses", type=int, default=0, help="list up to N callscribe misses per group")
    parser.add_argument("--json", type=Path, help="write the figures (and every miss) here")
    args = parser.parse_args()
    if not args.cases.is_dir():
        print(f"--cases {args.cases}: not a directory", file=sys.stderr)
        return 1
    cases = load_cases(args.cases)
    if not cases:
        print(f"--cases {args.cases}: no <suite>_<lang>_<category>.tsv files", file=sys.stderr)
        return 1
    try:
        systems = Systems()
        print(
            f"{len(cases)} cases from {args.cases}; init: callscribe {systems.callscribe_init_s:.2f} s, "
            f"wetext {systems.wetext_init_s:.2f} s\n"
        )
        acc = run_accuracy(cases, systems)
        checks = wetext_error_checks(systems, cases)
        speed = run_speed(cases, systems)
    except Exception as exc:  # noqa: BLE001 - report and exit 1
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    met = report(acc, speed, checks, args.show_misses)
    print(f"\nall targets met: {'yes' if met else 'no (MISS)'}")
    if args.json:
        out = {
            "groups": {
                f"{k[0]} {k[1]}": {s: vars(t) for s, t in v.items()} for k, v in sorted(acc["by_group"].items())
            },
            "files": {
                k: {s: {kk: vv for kk, vv in vars(t).items() if kk != "misses"} for s, t in v.items()}
                for k, v in sorted(acc["by_file"].items())
            },
            "wetext_errors": checks,
            "speed": speed,
        }
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
