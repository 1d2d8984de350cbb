"""Rule-based punctuation for ASR text that has none (Paraformer); text with any punctuation is left alone.

No model: a sentence-final mark (question or full stop) from the utterance's last clause, and commas only
where a rule is reliable (after an opening greeting or acknowledgement, before a clause-initial
conjunction, before 请问). It does not split run-on utterances into sentences, does not place commas
inside clauses, and does not produce exclamation marks.
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[，。？！、；：,.?!;:…—「」『』“”\"（）()《》]")
_WORDLIKE = re.compile(r"[A-Za-z0-9\u3400-\u4dbf\u4e00-\u9fff]")

# Opening words followed by a comma when more text follows (longest first).
_ZH_OPENERS = (
    "不好意思",
    "没问题",
    "对对对",
    "您好",
    "你好",
    "好的",
    "是的",
    "对的",
    "可以",
    "行吧",
    "对对",
    "喂",
    "嗯",
    "哦",
    "噢",
)
_ZH_CONJUNCTIONS = ("但是", "可是", "不过", "所以", "然后", "而且", "另外", "否则", "请问")
_ZH_QUESTION_END = re.compile(r"(?:吗|么|呢)[啊呀哈]?$")
_ZH_BA_QUESTION = re.compile(r"(?:是|对|应该|没错|可以|行|好)[^，]{0,8}吧$")
_ZH_QUESTION_WORDS = re.compile(
    r"(?<!没)(?<!不知道)(?<!不清楚)(?<!不管)(?<!无论)(?<!随便)"
    r"(?:什么|怎么|为什么|为啥|干嘛|哪|多少|几[个点号天次位年月岁钱块]|是不是|有没有|能不能|可不可以|会不会"
    r"|要不要|对不对|好不好|行不行|是否)"
)
_ZH_NOT_QUESTION = re.compile(r"(?:什么都|怎么都|哪儿都|哪里都|多少都|不知道|不清楚|不明白|没什么|不管|无论)")

_EN_WH = frozenset("what who whom whose which".split())
_EN_WH_ADVERB = frozenset("when where why how".split())
_EN_AUX = frozenset(
    "is are was were am do does did can could will would shall should may might must have has had "
    "isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't shouldn't haven't "
    "hasn't hadn't".split()
)
_EN_PRONOUNS = frozenset("i you we they he she it this that there".split())
_EN_HOW_QUESTION = frozenset("much many long old far often come about".split())
_EN_OPENERS = frozenset("yes yeah yep no nope okay ok well so hi hello hey sure alright right oh um uh".split())
_EN_NOT_OPENER = {
    "no": {"one", "problem", "worries", "longer", "matter", "more", "way", "idea", "doubt", "thanks", "need"},
    "well": {"done", "known", "then", "enough"},
    "right": {"now", "away", "here", "there", "after", "before", "side", "on"},
    "so": {"much", "many", "far", "that", "long", "what", "i", "we"},
    "sure": {"thing"},
    "okay": set(),
}
_EN_TAGS = ("isn't that right", "isn't it", "don't you", "aren't you", "or not", "right")
# ... right is a tag question only after a clause, not in that's right, turn right, all right.
_EN_NOT_BEFORE_RIGHT = frozenset("that's is it's all alright turn go the on exactly you're was are".split())
_EN_BUT_NOT_AFTER = frozenset("nothing all anything anyone everyone everything last".split())


def has_punctuation(text: str) -> bool:
    """Any Chinese or Western punctuation mark (an apostrophe or hyphen inside a word does not count)."""
    return _PUNCT.search(text) is not None


def _needs_punctuation(text: str) -> bool:
    return bool(text) and not has_punctuation(text) and _WORDLIKE.search(text) is not None


def punctuate_zh(text: str) -> str:
    """您好请问有什么可以帮您 -> 您好，请问有什么可以帮您？"""
    body = text.strip()
    if not _needs_punctuation(body):
        return text
    pos = 0
    for _ in range(2):  # 喂，你好，是客服吗
        opener = next((o for o in _ZH_OPENERS if body.startswith(o, pos) and len(body) - pos - len(o) >= 2), None)
        if opener is None:
            break
        pos += len(opener)
        body = f"{body[:pos]}，{body[pos:]}"
        pos += 1
    for word in _ZH_CONJUNCTIONS:
        body = re.sub(f"(?<=[^，]{{3}})(?<!是)(?<!就)(?<!也)(?<!都)(?<!，)({word})", r"，\1", body)
    last = body.rsplit("，", 1)[-1]
    if _ZH_QUESTION_END.search(last) or _ZH_BA_QUESTION.search(last):
        mark = "？"
    elif _ZH_QUESTION_WORDS.search(last) and not _ZH_NOT_QUESTION.search(last):
        mark = "？"
    else:
        mark = "。"
    return body + mark


def punctuate_en(text: str) -> str:
    """yes can you hear me -> yes, can you hear me?"""
    body = text.strip()
    if not _needs_punctuation(body):
        return text
    words = body.split()
    lower = [w.lower() for w in words]
    start = 0
    if len(words) > 1 and lower[0] in _EN_OPENERS and lower[1] not in _EN_NOT_OPENER.get(lower[0], set()):
        words[0] += ","
        start = 1
        while start < len(words) - 1 and lower[start] in _EN_OPENERS:
            start += 1  # okay, so what happens next?
    for k in range(start + 3, len(words)):
        if lower[k] == "but" and lower[k - 1] not in _EN_BUT_NOT_AFTER and not words[k - 1].endswith(","):
            words[k - 1] += ","
    question = _en_question(lower[start:])
    for tag in _EN_TAGS:
        size = len(tag.split())
        if len(words) > size + 1 and " ".join(lower[-size:]) == tag:
            if tag == "right" and lower[-2] in _EN_NOT_BEFORE_RIGHT:
                break
            question = True
            if not words[-size - 1].endswith(","):
                words[-size - 1] += ","  # that's correct, right?
            break
    return " ".join(words) + ("?" if question else ".")


def _en_question(lower: list[str]) -> bool:
    if not lower:
        return False
    first = lower[0]
    second = lower[1] if len(lower) > 1 else ""
    if first in _EN_AUX:
        return True
    if first in _EN_WH:
        return second not in _EN_PRONOUNS  # what I need is ... is a statement
    if first in _EN_WH_ADVERB:
        return (
            second in _EN_AUX or (first == "how" and second in _EN_HOW_QUESTION) or (first == "why" and second == "not")
        )
    return False
