"""Lexicon-based sentiment: labelled call-center sentences per language (accuracy with a floor), the rules
(negation, intensifiers, contrast, rituals), the thresholds and the lexicon files."""

from __future__ import annotations

from importlib import resources

import pytest

from callscribe.indexer.analytics import load_config, sentiment
from callscribe.indexer.analytics.sentiment import builtin_lexicon, label, lexicon_for, score

POS, NEU, NEG = "positive", "neutral", "negative"

# Written as customers and agents say them; labelled by what a QA lead would call the line.
LABELLED_EN = [
    ("Thank you so much, that was really helpful.", POS),
    ("Great, the refund is already on my card.", POS),
    ("Perfect, that solved my problem.", POS),
    ("You have been very patient with me, I appreciate it.", POS),
    ("I'm happy with the new plan, it works fine.", POS),
    ("Wonderful service, I will recommend you to my friends.", POS),
    ("No problem at all, it's sorted now.", POS),
    ("That's excellent news, thanks a lot.", POS),
    ("This is the third time I call and nobody helps me.", NEG),
    ("I am really angry about this charge.", NEG),
    ("Your service is terrible and the app keeps crashing.", NEG),
    ("The internet is not working again and I'm fed up.", NEG),
    ("I was charged twice, this is unacceptable.", NEG),
    ("I am not happy with how this was handled.", NEG),
    ("The package arrived damaged and late.", NEG),
    ("I want to make a complaint about your agent, he was rude.", NEG),
    ("My order number is one two three four five.", NEU),
    ("Thank you for calling Acme, how can I help you today?", NEU),
    ("Can you tell me when my contract ends?", NEU),
    ("I'd like to update the address on my account.", NEU),
    ("Please hold while I check the system.", NEU),
    ("It's not bad, but the delivery was very slow.", NEG),
    ("The agent was helpful, but the product is still broken.", NEG),
    ("I was worried at first, but you fixed it quickly, thank you.", POS),
]

LABELLED_ZH = [
    ("太好了，非常感谢您的帮助。", POS),
    ("问题已经解决了，谢谢你。", POS),
    ("你们的服务很专业，我很满意。", POS),
    ("好的，没问题，辛苦了。", POS),
    ("客服态度很好，很耐心。", POS),
    ("退款已经到账了，很快，不错。", POS),
    ("这个价格挺划算的，我很喜欢。", POS),
    ("谢谢，这下我放心了。", POS),
    ("我对你们的服务非常不满意。", NEG),
    ("网又断了，这已经是第三次了，太差了。", NEG),
    ("你们乱扣费，我要投诉。", NEG),
    ("等了半天也没人管，太过分了。", NEG),
    ("东西收到就坏了，质量太差。", NEG),
    ("客服态度恶劣，一直敷衍我。", NEG),
    ("我很生气，你们这是骗人。", NEG),
    ("手机卡顿得厉害，根本用不了。", NEG),
    ("我的订单号是一二三四五。", NEU),
    ("您好，欢迎致电客服中心，请问有什么可以帮您？", NEU),
    ("请问合同什么时候到期？", NEU),
    ("我想修改一下收货地址。", NEU),
    ("请您稍等，我帮您查询一下。", NEU),
    ("东西还可以，但是快递太慢了。", NEG),
    ("不太满意，处理得太慢了。", NEG),
    ("一开始很担心，不过你们很快就解决了，谢谢。", POS),
]

# Written after the lexicon was finished and never used to tune it: implicit complaints, sarcasm, negation
# out of reach. They show what a lexicon misses (first run: en 5/10, zh 7/10).
HARD_EN = [
    ("I have been on hold for forty minutes.", NEG),
    ("Oh great, another fee, just what I needed.", NEG),
    ("Could you not transfer me again please?", NEU),
    ("Brilliant, you are a lifesaver!", POS),
    ("The technician never showed up.", NEG),
    ("Everything is back to normal now, cheers.", POS),
    ("I don't think this is fair at all.", NEG),
    ("Sure, I can wait a moment.", NEU),
    ("My bill is higher than last month for no reason.", NEG),
    ("Your colleague yesterday was lovely.", POS),
]
HARD_ZH = [
    ("我已经等了四十分钟了。", NEG),
    ("又多收了一笔钱，真是服了。", NEG),
    ("能不能别再转接了？", NEU),
    ("你真是帮了大忙了！", POS),
    ("师傅一直没有上门。", NEG),
    ("现在都正常了，谢谢啊。", POS),
    ("我觉得这一点都不公平。", NEG),
    ("可以，我等一下。", NEU),
    ("这个月账单莫名其妙多了一百块。", NEG),
    ("昨天那位客服人特别好。", POS),
]

MIN_ACCURACY = 0.80  # over both sets of a language


def accuracy(items: list[tuple[str, str]]) -> tuple[float, list[str]]:
    wrong = [f"{text!r}: {label(score(text))} ({score(text):+.2f}), labelled {want}" for text, want in items]
    wrong = [w for (text, want), w in zip(items, wrong, strict=True) if label(score(text)) != want]
    return 1 - len(wrong) / len(items), wrong


@pytest.mark.parametrize(("language", "items", "hard"), [("en", LABELLED_EN, HARD_EN), ("zh", LABELLED_ZH, HARD_ZH)])
def test_labelled_sentences(language: str, items: list[tuple[str, str]], hard: list[tuple[str, str]]) -> None:
    got, wrong = accuracy(items + hard)
    plain, _ = accuracy(items)
    tough, _ = accuracy(hard)
    print(
        f"sentiment accuracy {language}: {got:.0%} of {len(items) + len(hard)} "
        f"({plain:.0%} of {len(items)} plain, {tough:.0%} of {len(hard)} hard)" + "".join(f"\n  {w}" for w in wrong)
    )
    assert got >= MIN_ACCURACY, "\n".join(wrong)
    # every label is represented, so the floor cannot be met by always answering one label
    assert {want for _, want in items} == {want for _, want in hard} == {POS, NEU, NEG}
    assert max(sum(1 for _, w in items + hard if w == lab) for lab in (POS, NEU, NEG)) / len(items + hard) < 0.5


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("not good", "good"),
        ("bad", "not bad"),
        ("I don't like it", "I like it"),
        ("good", "very good"),
        ("very bad", "bad"),
        ("不满意", "满意"),
        ("不好", "好"),
        ("没帮助", "有帮助"),
        ("很差", "有点差"),
        ("满意", "非常满意"),
    ],
)
def test_negation_and_intensifiers_move_the_score(lower: str, higher: str) -> None:
    assert score(lower) < score(higher), (lower, score(lower), higher, score(higher))


def test_negation_flips_and_dampens() -> None:
    assert score("good") > 0 > score("not good") > -score("good")
    assert score("bad") < 0 < score("not bad") < -score("bad")
    assert score("不喜欢") < 0 < score("喜欢")
    assert score("没有问题") > 0  # "no problem"


def test_negation_does_not_cross_a_clause() -> None:
    assert score("no. great") == score("great")
    assert score("不，很好") == score("很好")


def test_contrast_weighs_what_follows() -> None:
    assert score("the agent was nice, but the product is awful") < 0
    assert score("the product is awful, but the agent was very nice") > 0
    assert score("质量不错，但是服务太差了") < 0


def test_rituals_are_neutral() -> None:
    for text in (
        "Thank you for calling, have a nice day.",
        "Good morning, how may I help?",
        "您好，感谢您的来电。",
        "好的，请您稍等。",
        "不好意思，让您久等了",
    ):
        assert label(score(text)) == NEU, (text, score(text))


def test_scores_are_bounded() -> None:
    text = "great excellent perfect wonderful fantastic amazing " * 20
    assert 0.99 < score(text) < 1.0
    assert -1.0 < score("terrible awful horrible " * 20) < -0.99
    assert score("") == score("12345") == score("。，！") == 0.0


def test_thresholds() -> None:
    assert label(0.2) == POS and label(0.19) == NEU and label(-0.19) == NEU and label(-0.2) == NEG
    assert label(0.3, positive_threshold=0.5) == NEU and label(-0.3, negative_threshold=-0.5) == NEU


def test_custom_terms_extend_the_lexicon() -> None:
    assert score("chargeback") == 0
    lex = lexicon_for((("chargeback", -2.0), ("五星好评", 3.0)))
    assert score("I will file a chargeback", lex) < -0.5
    assert score("给你们五星好评", lex) > 0.8
    assert score("chargeback") == 0  # the built-in lexicon is untouched


def test_lexicon_files_document_their_source_and_licence() -> None:
    package = resources.files("callscribe.indexer.analytics")
    for name in ("lexicon_en.tsv", "lexicon_zh.tsv", "modifiers.tsv"):
        text = package.joinpath(name).read_text(encoding="utf-8")
        header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert "Source:" in header and "licensed" in header, name
    lex = builtin_lexicon()
    terms_en = [e for e in lex.en.values() if e.kind == "term"]
    terms_zh = [e for e in lex.zh.values() if e.kind == "term"]
    assert len(terms_en) >= 250 and len(terms_zh) >= 250
    assert all(-3 <= e.value <= 3 for e in terms_en + terms_zh)
    assert (
        {e.kind for e in lex.en.values()}
        == {e.kind for e in lex.zh.values()}
        == {
            "term",
            "negator",
            "intensifier",
            "contrast",
        }
    )


def test_config_thresholds_are_used() -> None:
    config = load_config(None)
    assert config.sentiment.positive_threshold == 0.2 and config.sentiment.negative_threshold == -0.2
    assert sentiment.NEGATION_FACTOR == -0.5
