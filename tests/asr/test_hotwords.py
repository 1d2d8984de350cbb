"""Hotword correction: planted near-misses are restored, sentences without a term are left alone.

Recall is the fraction of planted terms present in the text (case-insensitive), measured on the raw
sentences and after correction; the false-positive set has no term at all and must come back unchanged.
The last test runs Whisper on espeak-ng sentences with domain terms and checks that correction never
lowers recall.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callscribe.asr.engines.base import AsrInput, Hotword, InferOptions
from callscribe.asr.hotwords import HotwordCorrector

log = logging.getLogger(__name__)

WPM = 150  # a call-center pace; espeak's default 175 wpm is faster than agents speak

ZH_TERMS = ("退费政策", "营业时间", "信用卡还款", "会员积分", "分期付款", "客服热线", "账户余额", "快递单号")
EN_TERMS = ("refund policy", "opening hours", "direct debit", "account number", "installment plan", "customer service")
HOTWORDS = tuple(Hotword(t) for t in ZH_TERMS + EN_TERMS)

# (sentence with a near-miss, the term that should be there)
PLANTED = (
    ("请问你们的退会政策是什么", "退费政策"),  # hui ~ fei
    ("我想了解一下退费正策", "退费政策"),  # homophone
    ("你们营业时奸是几点到几点", "营业时间"),  # homophone
    ("周末的应业时间有变化吗", "营业时间"),  # other tone
    ("信用卡换款日期是每月几号", "信用卡还款"),
    ("我的信用咖还款逾期了", "信用卡还款"),  # other tone
    ("会员基分可以兑换礼品吗", "会员积分"),
    ("我的会原积分怎么没了", "会员积分"),
    ("这个商品支持分期付宽吗", "分期付款"),
    ("分其付款需要手续费吗", "分期付款"),
    ("有问题请拨打客服热县", "客服热线"),
    ("刻服热线的电话是多少", "客服热线"),
    ("帮我查一下账户于额", "账户余额"),
    ("快递单好是多少", "快递单号"),
    ("麻烦告诉我快地单号", "快递单号"),
    ("I'd like to know your re fund policy.", "refund policy"),
    ("What is the refunds policy for sale items?", "refund policy"),
    ("What are your opening ours on Sunday?", "opening hours"),
    ("Can I pay by direct debet instead?", "direct debit"),
    ("Please read me your acount number.", "account number"),
    ("Is there an instalment plan for this laptop?", "installment plan"),
    ("Customer survice is closed on holidays.", "customer service"),
)

NEGATIVE = (
    "我的信用卡还没到",  # a prefix of 信用卡还款
    "请您稍等几分钟",
    "退款流程需要多久",
    "分期还款有什么要求",  # a different term, huan is not fu
    "营业执照在哪里办理",
    "会员等级怎么升级",
    "我想查一下快递到哪了",
    "客服电话一直打不通",
    "账户已经被冻结了",
    "I set up a direct deposit last week.",  # deposit is not a near-miss of debit
    "Our opening times changed in May.",
    "The refund policies are posted online.",
    "Please confirm the account numbers on file.",
    "My credit score went up this year.",
    "Is the store open on Sunday?",
    "I would like a full refund, please.",
    "We also offer direct billing for companies.",
    "The customer served herself at the kiosk.",
)

EXACT = ("营业时间是早上九点到下午五点", "Our refund policy is simple: thirty days, no questions.")


def recall(texts: Sequence[str], terms: Sequence[str]) -> float:
    return sum(term.lower() in text.lower() for text, term in zip(texts, terms, strict=True)) / len(terms)


@pytest.fixture(scope="module")
def corrector() -> HotwordCorrector:
    return HotwordCorrector(HOTWORDS, language="auto")


def test_recall_gain_on_planted_near_misses(corrector: HotwordCorrector) -> None:
    assert len(PLANTED) >= 20
    raw = [s for s, _ in PLANTED]
    fixed = [corrector.correct(s)[0] for s in raw]
    terms = [t for _, t in PLANTED]
    before, after = recall(raw, terms), recall(fixed, terms)
    log.info("hotword recall: %.0f%% without correction, %.0f%% with", before * 100, after * 100)
    for s, f in zip(raw, fixed, strict=True):
        log.info("%s -> %s", s, f)
    assert after - before >= 0.30
    assert after == 1.0


def test_no_false_positives(corrector: HotwordCorrector) -> None:
    assert len(NEGATIVE) >= 10
    changed = [(s, corrector.correct(s)) for s in NEGATIVE if corrector.correct(s)[0] != s]
    assert changed == [], f"false positives: {changed}"


def test_exact_terms_and_punctuation_untouched(corrector: HotwordCorrector) -> None:
    for sentence in EXACT:
        assert corrector.correct(sentence) == (sentence, [])
    text, reps = corrector.correct("您好，退会政策：七天内可以退。")
    assert text == "您好，退费政策：七天内可以退。"
    assert [(r.start, r.end, r.original, r.replacement) for r in reps] == [(3, 7, "退会政策", "退费政策")]


def test_english_case_and_offsets(corrector: HotwordCorrector) -> None:
    text, reps = corrector.correct("Refunds policy? Ask about the opening ours, please.")
    assert text == "Refund policy? Ask about the opening hours, please."
    assert [r.original for r in reps] == ["Refunds policy", "opening ours"]
    assert all(0.8 <= r.score <= 1.0 for r in reps)


def test_language_en_skips_chinese_terms() -> None:
    only_en = HotwordCorrector(HOTWORDS, language="en")
    assert only_en.correct("你们营业时奸是几点")[0] == "你们营业时奸是几点"
    assert only_en.correct("opening ours")[0] == "opening hours"


def test_short_terms_only_exact() -> None:
    short = HotwordCorrector([Hotword("积"), Hotword("VIP"), Hotword("积分")])
    assert short.correct("请等几分钟")[0] == "请等几分钟"  # ji3 is not ji1: two-character terms need exact tones
    assert short.correct("VIPs and VIB")[0] == "VIPs and VIB"


# (Traditional sentence with a near-miss, the Simplified term that should correct it, what it then reads)
TRADITIONAL_PLANTED = (
    ("請問你們的退會政策是什麼", "退费政策", "請問你們的退费政策是什麼"),
    ("你們營業時奸是幾點到幾點", "营业时间", "你們营业时间是幾點到幾點"),
    ("會員基分可以兌換禮品嗎", "会员积分", "会员积分可以兌換禮品嗎"),
    ("有問題請撥打客服熱縣", "客服热线", "有問題請撥打客服热线"),
)


def test_hotwords_correct_a_transcript_in_the_other_script(corrector: HotwordCorrector) -> None:
    """Whisper writes Mandarin in Traditional characters: Simplified hotwords still correct it (compared
    folded, written as configured; the indexer then writes the text in the tenant's script), and the
    other way round; a term already there in the other script is left as written."""
    for sentence, term, expected in TRADITIONAL_PLANTED:
        text, reps = corrector.correct(sentence)
        assert text == expected and [r.replacement for r in reps] == [term], (sentence, text)
    assert corrector.correct("你們的營業時間是幾點") == ("你們的營業時間是幾點", [])  # already the term
    assert corrector.correct("會員等級怎麼升級")[0] == "會員等級怎麼升級"  # no term: untouched
    # OpenCC folds 帳 to 帐, a variant of the term's 账: a homophone one character off, written as configured.
    assert corrector.correct("帳戶餘額還有多少")[0] == "账户余额還有多少"
    traditional_terms = HotwordCorrector([Hotword("營業時間"), Hotword("會員積分")])
    assert traditional_terms.correct("周末的应业时间有变化吗")[0] == "周末的營業時間有变化吗"
    assert traditional_terms.correct("会员积分怎么用") == ("会员积分怎么用", [])


def test_fast_with_many_terms() -> None:
    many = [Hotword(t) for t in ZH_TERMS + EN_TERMS] * 8  # ~100 terms (duplicates are folded)
    many += [Hotword(f"产品编号{i}") for i in range(50)] + [Hotword(f"product code {i}") for i in range(50)]
    corrector = HotwordCorrector(many)
    text = "请问你们的退会政策是什么，还有营业时奸和信用卡换款日期。Also the re fund policy and opening ours."
    start = time.perf_counter()
    for _ in range(20):
        out, _reps = corrector.correct(text)
    per_call_ms = (time.perf_counter() - start) / 20 * 1000
    log.info("correct(): %.1f ms for %d chars and %d terms", per_call_ms, len(text), len({h.text for h in many}))
    assert "退费政策" in out and "opening hours" in out
    assert per_call_ms < 50


# --------------------------------------------------------------------------- through Whisper

# product names and jargon Whisper base tends to spell its own way ("net zero", "charge back")
WHISPER_SENTENCES = (
    ("I want to dispute a chargeback on my card.", "chargeback"),
    ("Please log in to the Callscribe portal.", "Callscribe portal"),
    ("Can I pay my bill by direct debit?", "direct debit"),
    ("The Kwikfix warranty covers that.", "Kwikfix warranty"),
    ("Ask for the Netzero plan.", "Netzero plan"),
)


def _speak(text: str, out_dir: Path, name: str) -> np.ndarray:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    raw, wav = out_dir / f"{name}.raw.wav", out_dir / f"{name}.wav"
    speak = ["espeak-ng", "-v", "en-us", "-s", str(WPM), "-w", str(raw), text]
    subprocess.run(speak, check=True, capture_output=True)
    # -D: no dither, so the audio (and the transcript) is the same on every run
    subprocess.run(
        ["sox", str(raw), "-D", "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True
    )
    return sf.read(wav, dtype="float32")[0]


def test_whisper_with_corrector_never_lowers_recall(tmp_path_factory: pytest.TempPathFactory) -> None:
    from callscribe.asr.engines.registry import load_engine

    audio_dir = tmp_path_factory.mktemp("hotword-speech")
    engine = load_engine("whisper", "base", "cpu", 2, tmp_path_factory.mktemp("asr-cache"))
    batch = [AsrInput(_speak(s, audio_dir, f"h{i}")) for i, (s, _) in enumerate(WHISPER_SENTENCES)]
    raw = [o.text for o in engine.infer(batch, InferOptions(language="en"))]
    corrector = HotwordCorrector([Hotword(t) for _, t in WHISPER_SENTENCES], language="en")
    fixed = [corrector.correct(t)[0] for t in raw]
    terms = [t for _, t in WHISPER_SENTENCES]
    before, after = recall(raw, terms), recall(fixed, terms)
    log.info("whisper hotword recall: %.0f%% raw, %.0f%% corrected", before * 100, after * 100)
    for r, f in zip(raw, fixed, strict=True):
        log.info("%r -> %r", r, f)
    assert after >= before
    assert all(re.sub(r"\W", "", f) for f in fixed)
