"""Inverse text normalization of ASR utterances (callscribe.indexer.text): call-center Chinese, English as
Whisper writes it, regressions for the wetext errors callscribe fixes, and the never-raise contract.

The cases are written for callscribe; wetext's compiled graphs (a dependency) run underneath.
"""

from __future__ import annotations

import threading

import pytest

from callscribe.indexer.text import TextNormalizer, resolve_language
from callscribe.indexer.text.fst import Graphs
from callscribe.indexer.text.zh_numbers import parse_int, to_plain_numerals


@pytest.fixture(scope="module")
def tn() -> TextNormalizer:
    return TextNormalizer()


# -- Chinese: the call-center forms of the issue -------------------------------------------------------

CALL_CENTER_ZH = [
    ("一百五十八块五", "158.5元"),
    ("二零二五年", "2025年"),
    ("订单号是一二三四五", "订单号是12345"),
    ("幺三八一二三四五六七八", "13812345678"),
    ("我的手机号是幺三九零零零一二三四五", "我的手机号是13900012345"),
    ("下午三点半", "下午3:30"),
    ("百分之三点五", "3.5%"),
    ("一百一十九万零九", "1190009"),
    ("我们下午三点半给您回电话", "我们下午3:30给您回电话"),
    ("好的那我明天上午十点给您回电话", "好的那我明天上午10点给您回电话"),
    ("我昨天晚上八点打过电话", "我昨天晚上8点打过电话"),
    ("您的验证码是六七八九零幺", "您的验证码是678901"),
    ("是的尾号是幺二三四", "是的尾号是1234"),
    ("利率是百分之四点五", "利率是4.5%"),
    ("您的退款三到五个工作日到账", "您的退款3~5个工作日到账"),
    ("两千零二十四年", "2024年"),
]


@pytest.mark.parametrize(("spoken", "written"), CALL_CENTER_ZH)
def test_call_center_forms(tn: TextNormalizer, spoken: str, written: str) -> None:
    assert tn.itn(spoken, "zh") == written


AMOUNTS = [
    ("一百五十八块五", "158.5元"),  # 块 + a digit is jiao
    ("十二块五毛", "12.5元"),
    ("我的话费为什么是一百二十八块五毛八", "我的话费为什么是128.58元"),
    ("三块零五分", "3.05元"),
    ("月租三十九块九", "月租39.9元"),
    ("两块五毛钱", "2.5元"),
    ("这个月套餐费是五十八元流量费十二块八", "这个月套餐费是58元流量费12.8元"),  # RMB is written N元, never ¥N
    ("二十五元三毛", "25.3元"),
    ("价格是十三点五元", "价格是13.5元"),
    ("一共是三千二百五十块钱", "一共是3250块钱"),  # whole amounts keep the spoken unit
    ("三块五花肉", "3块五花肉"),  # pieces of pork belly, not 3.5元
    ("一块儿去吧", "一块儿去吧"),
    ("价格是十三点五美元", "价格是$13.5"),
]


@pytest.mark.parametrize(("spoken", "written"), AMOUNTS)
def test_amounts(tn: TextNormalizer, spoken: str, written: str) -> None:
    assert tn.itn(spoken, "zh") == written


TIMES = [
    ("下午三点半", "下午3:30"),  # convention: the time of day stays as a word before H:MM
    ("上午八点半准时开会", "上午8:30准时开会"),
    ("早上一点零二", "早上1:02"),
    ("下午三点四十一分", "下午3:41"),
    ("十三点十分三十六秒", "13:10:36"),
    ("零点十分登机", "00:10登机"),
    ("八点三十去吃早饭", "8:30去吃早饭"),
    ("三点一刻", "3:15"),
    ("十二点四十五分", "12:45"),
    ("三点钟", "3点钟"),
    ("明天九点", "明天9点"),
    ("一点零五", "1.05"),  # a decimal: 零X without 分 or a time of day
    ("十分感谢", "十分感谢"),  # "very", not ten points
    ("这两点十分重要", "这两点十分重要"),
]


@pytest.mark.parametrize(("spoken", "written"), TIMES)
def test_times(tn: TextNormalizer, spoken: str, written: str) -> None:
    assert tn.itn(spoken, "zh") == written


# Each of these is an error of wetext 0.1.8 (its output in the comment).
WETEXT_REGRESSIONS = [
    ("一点五万美元", "$1.5万"),  # 一点$50000
    ("五点五分", "5:05"),  # 5.5分
    ("八点五分下飞机", "8:05下飞机"),  # 8.5分下飞机
    ("一百一十九万零九", "1190009"),  # 119万9 (drops 零)
    ("一千一百一十一万零一", "11110001"),  # 1111万1
    ("一百一十九万九", "1199000"),  # 119万9 (万九 is 9000)
    ("十一亿零九", "1100000009"),  # 11亿零九
    ("伍拾壹点肆", "51.4"),  # 伍拾1.4 (financial numerals)
    ("负壹佰点叁肆", "-100.34"),  # unchanged
    ("負五萬點三", "-50000.3"),  # traditional characters: unchanged
    ("幺三八一二三四五六七八", "13812345678"),  # 1381 234 5678 (spaces inside a phone number)
    ("一亿", "1亿"),  # unchanged
    ("十一億零九百", "1100000900"),  # 11億零900; the speaker's 億 is kept where it is written
    ("一億", "1億"),  # unchanged
    ("三又五分之一", "3又1/5"),  # 三又1/5
    ("十几个人", "十几个人"),  # 10几个人
    ("几十个", "几十个"),  # 几10个
    ("十万火急", "十万火急"),  # 100000火急
    ("三三两两", "三三两两"),  # 3322
    ("服务十分周到", "服务十分周到"),  # 服务10分周到
]


@pytest.mark.parametrize(("spoken", "written"), WETEXT_REGRESSIONS)
def test_wetext_errors_fixed(tn: TextNormalizer, spoken: str, written: str) -> None:
    assert tn.itn(spoken, "zh") == written


def test_peer_conventions_kept_where_not_call_center(tn: TextNormalizer) -> None:
    # WeTextProcessing's written forms where the issue asks for nothing else.
    assert tn.itn("二零零八年八月八日", "zh") == "2008/08/08"
    assert tn.itn("一百万一千一百一十一", "zh") == "100万1111"
    assert tn.itn("一亿零两千三百人", "zh") == "1亿2300人"
    assert tn.itn("两万五", "zh") == "25000"
    assert tn.itn("二点五平方电线", "zh") == "2.5平方电线"
    assert tn.itn("现场有十七分之七的观众", "zh") == "现场有7/17的观众"
    assert tn.itn("最高气温三十八摄氏度", "zh") == "最高气温38°C"


def test_zero_to_nine_never_empty() -> None:
    # wetext with enable_0_to_9=True returns '' whenever a lone digit is tagged (its verbalizer has no path).
    tn = TextNormalizer(enable_0_to_9=True)
    assert tn.itn("一年后", "zh") == "1年后"
    assert tn.itn("疑是银河落九天", "zh") == "疑是银河落9天"
    assert tn.itn("计算负二的绝对值是二", "zh") == "计算-2的绝对值是2"
    assert tn.itn("正负二的平方都是四", "zh") == "±2的平方都是4"
    assert tn.itn("这是零百", "zh") == "这是零百"
    for text in ("二两", "一", "我一直在等", "三百九十九三盒", "十毫秒一帧"):
        assert tn.itn(text, "zh"), text


def test_standalone_numbers_can_stay_spoken() -> None:
    tn = TextNormalizer(enable_standalone_number=False)
    assert tn.itn("五十五", "zh") == "五十五"
    assert tn.itn("二点五平方电线", "zh") == "2.5平方电线"
    assert tn.itn("一百五十八块五", "zh") == "158.5元"


def test_fillers(tn: TextNormalizer) -> None:
    assert tn.itn("呃我想问一下", "zh") == "我想问一下"
    assert tn.itn("呃这个呃啊我不知道", "zh") == "这个我不知道"
    assert tn.itn("呃，这个我不清楚", "zh") == "这个我不清楚"
    assert tn.itn("啊对对对", "zh") == "对对对"
    assert tn.itn("好啊", "zh") == "好啊"  # a sentence-final particle, not a filler
    assert tn.itn("是啊我知道", "zh") == "是啊我知道"
    assert TextNormalizer(remove_interjections=False).itn("呃我想问一下", "zh") == "呃我想问一下"


def test_words_that_only_look_like_numbers(tn: TextNormalizer) -> None:
    for text in ("一直", "一样", "统一", "万一", "一会儿", "一点点", "千万不要", "队伍", "收拾", "大陆", "陆续"):
        assert tn.itn(text, "zh") == text


# -- English -----------------------------------------------------------------------------------------

ENGLISH = [
    ("It costs eighty five dollars.", "It costs $85."),
    ("it costs eighty five dollars", "it costs $85"),
    ("Nine hundred ninety three dollars", "$993"),
    ("Your total is one hundred twenty-three dollars and forty-five cents.", "Your total is $123.45."),
    ("Can I get a refund of two hundred and fifty dollars?", "Can I get a refund of $250?"),
    ('"Twenty dollars," she said.', '"$20," she said.'),
    ("The fifteenth of January", "15 January"),
    ("Your appointment is on March third at two thirty.", "Your appointment is on March 3 at 02:30."),
    ("We're open from nine A M to five P M.", "We're open from 09:00 A.M. to 05:00 P.M."),
    ("We're open from nine a.m. to five p.m.", "We're open from 09:00 a.m. to 05:00 p.m."),
    ("See you at twelve thirty.", "See you at 12:30."),
    ("I was born in nineteen ninety.", "I was born in 1990."),
    ("Twenty first", "21st"),
    ("That's the second time this happened!", "That's the 2nd time this happened!"),
    ("Is that twenty-five or thirty-five?", "Is that 25 or 35?"),
    ("zero point two Million Dollars", "$0.2 Million"),
    ("Your order number is one two three four five six seven.", "Your order number is 1234567."),
    ("My email is john dot smith at gmail dot com.", "My email is john.smith@gmail.com."),
    ("Go to w w w dot example dot com for more.", "Go to www.example.com for more."),
    ("I'd like to speak to Doctor Jones.", "I'd like to speak to Dr. Jones."),
    ("It's about forty percent off — really.", "It's about 40 % off — really."),
]


@pytest.mark.parametrize(("spoken", "written"), ENGLISH)
def test_english(tn: TextNormalizer, spoken: str, written: str) -> None:
    assert tn.itn(spoken, "en") == written


UNCHANGED_EN = [
    "It costs $85.",  # already written: ITN twice is ITN once
    "Hold on, just a second.",
    "Give me one second, please.",
    "First of all, thank you for calling.",
    "Press one for English, two for Spanish.",
    "No one answered.",
    "I have a question about my bill.",
    "May I have your account number?",
    "Okay. Thank you. Bye.",
    "Mr. Smith will call you back.",
]


@pytest.mark.parametrize("text", UNCHANGED_EN)
def test_english_left_alone(tn: TextNormalizer, text: str) -> None:
    assert tn.itn(text, "en") == text


def test_itn_is_idempotent(tn: TextNormalizer) -> None:
    for spoken, _ in CALL_CENTER_ZH + AMOUNTS + TIMES:
        once = tn.itn(spoken, "zh")
        assert tn.itn(once, "zh") == once, spoken
    for spoken, _ in ENGLISH:
        once = tn.itn(spoken, "en")
        assert tn.itn(once, "en") == once, spoken


# -- language selection and the never-raise contract ---------------------------------------------------


def test_language_resolution(tn: TextNormalizer) -> None:
    assert resolve_language("一百块", "auto") == "zh"
    assert resolve_language("one hundred", "auto") == "en"
    assert resolve_language("x", "zh-CN") == "zh"
    assert resolve_language("x", "en-US") == "en"
    assert resolve_language("x", "fr") is None
    assert resolve_language("これは", "auto") is None
    assert tn.itn("一百五十八块五", "auto") == "158.5元"
    assert tn.itn("eighty five dollars", "auto") == "$85"
    assert tn.itn("eighty five dollars", "fr") == "eighty five dollars"  # no ITN for that language


ODD = [
    "",
    "   ",
    "\t\n",
    "😀😀",
    "\x00\x01",
    "。。。",
    '"""',
    "¥5",
    "点点点",
    "负负一",
    "一万万",
    "我的email是john dot smith at gmail dot com",
    "twenty--five",
    "-twenty",
    "一百五十八块五" * 40,
    "eighty five dollars and " * 60,
    "a" * 3000,
]


@pytest.mark.parametrize("text", ODD)
@pytest.mark.parametrize("language", ["zh", "en", "auto"])
def test_odd_text_never_raises(tn: TextNormalizer, text: str, language: str) -> None:
    for method in (tn.itn, tn.punctuate, tn.normalize):
        out = method(text, language)
        assert isinstance(out, str)
        assert (out == "") == (text == "")


def test_long_input_keeps_every_number(tn: TextNormalizer) -> None:
    # Long utterances are tagged in bounded pieces; no number may be cut in two.
    text = "我的电话是幺三八一二三四五六七八" * 20
    assert tn.itn(text, "zh") == "我的电话是13812345678" * 20
    text = " ".join(["it costs eighty five dollars"] * 30)
    assert tn.itn(text, "en") == " ".join(["it costs $85"] * 30)


def test_graph_failure_returns_input(tn: TextNormalizer, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Graphs, text: str) -> None:
        raise RuntimeError("graph failure")

    monkeypatch.setattr(Graphs, "tag", boom)
    assert tn.itn("eighty five dollars", "en") == "eighty five dollars"
    assert tn.itn("订单号是一二三四五", "zh") == "订单号是一二三四五"
    # callscribe's own rules still apply around a failing graph
    assert tn.itn("下午三点半", "zh") == "下午3:30"


def test_rule_failure_returns_input(tn: TextNormalizer, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(text: str) -> str:
        raise ValueError("rule failure")

    monkeypatch.setattr(tn, "_zh", boom)
    assert tn.itn("一百五十八块五", "zh") == "一百五十八块五"
    assert tn.normalize("一百五十八块五", "zh") == "一百五十八块五。"


def test_concurrent_calls_match_sequential(tn: TextNormalizer) -> None:
    texts = [(s, "zh") for s, _ in CALL_CENTER_ZH + AMOUNTS + TIMES] + [(s, "en") for s, _ in ENGLISH]
    expected = [tn.normalize(t, lang) for t, lang in texts]
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            results[k] = [tn.normalize(t, lang) for t, lang in texts]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(results[k] == expected for k in range(6))


# -- the numeral parser under the rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spoken", "value"),
    [
        ("十五", 15),
        ("一百十", 110),
        ("一千零五十", 1050),
        ("一千二", 1200),
        ("两千零十", 2010),
        ("一百一十九万零九", 1190009),
        ("一百一十九万九", 1199000),
        ("一百零一亿零九万零一百", 10100090100),
        ("三五百", None),  # a range, left to wetext
        ("九九", None),  # a digit string, not a number
        ("千万", None),
        ("万一", None),
    ],
)
def test_parse_int(spoken: str, value: int | None) -> None:
    assert parse_int(spoken) == value


def test_plain_numerals_only_inside_numeral_runs() -> None:
    assert to_plain_numerals("伍拾壹点肆") == "五十一点四"
    assert to_plain_numerals("一億零一萬") == "一亿零一万"
    assert to_plain_numerals("队伍收拾大陆陆续") == "队伍收拾大陆陆续"
