"""Words said just before a number that tell what it is (卡号, 验证码, account number, order number...).

The nearest cue before a number, within a window, decides: a *positive* cue makes a number PII that needs one
(a bank account, a verification code, a short local phone number) and a *negative* cue (order, tracking,
extension, amount...) keeps any number after it, even one whose checksum passes. Chinese and English cues are
looked for in both languages (英文 CVV in a Chinese sentence, 验证码 in an English one).
"""

from __future__ import annotations

import bisect
import re

CARD, ACCOUNT, ID, PHONE, CODE, CVV, NOT_PII = "card", "account", "id", "phone", "code", "cvv", "not_pii"

# kind: (Chinese cues, separated by spaces; English cues, separated by commas). An English cue is a whole word or
# words (any spacing or a hyphen between them); at one place the longest cue of the first kind listed wins.
_CUES: dict[str, tuple[str, str]] = {
    NOT_PII: (
        "订单 单号 运单 快递 物流 工单 编号 流水号 交易号 发票 分机 邮编 型号 批次 余额 金额 价格 合计 总共 房间 航班"
        " 车次 座位 积分 客服热线 热线",
        "order, tracking, reference, ref, case, ticket, invoice, extension, ext, zip, zip code, postal code, model,"
        " serial, batch, balance, amount, total, room, flight, confirmation, promo code, coupon, coupon code,"
        " discount code, error code, routing number, item, sku, part number, claim, toll free, hotline",
    ),
    CVV: ("安全码 背面的后三位 背面后三位 后三位", "cvv2, cvv, cvc, cvn, security code"),
    CODE: (
        "验证码 校验码 动态码 动态密码 短信码 交易密码 支付密码 取款密码 密码",
        "verification code, one time code, one time password, one time passcode, otp, passcode, pin, pin number,"
        " pin code, access code, auth code, authorization code, code",
    ),
    ACCOUNT: (
        "账号 帐号 账户 帐户 户头 收款账号 对公账户",
        "account number, account no, account, acct, bank account, iban",
    ),
    CARD: ("卡号 银行卡 信用卡 借记卡 储蓄卡 卡的号码", "card number, credit card, debit card, card"),
    ID: ("身份证 证件号 身份号码", "id number, id card, identity card, resident id, national id"),
    PHONE: (
        "电话 手机 座机 联系方式 打给我 回电 来电号码 新号码 旧号码",
        "phone, mobile, cell, landline, call me, call me back, reach me, callback number, contact number, text me,"
        " area code, my number, my old number, my new number, my other number, home number, work number",
    ),
}


def _english(cues: str) -> str:
    words = sorted((cue.strip() for cue in cues.split(",")), key=len, reverse=True)
    return "|".join(r"[\s-]+".join(map(re.escape, cue.split())) for cue in words)


def _pattern() -> re.Pattern[str]:
    alternatives = []
    for kind, (chinese, english) in _CUES.items():
        zh = "|".join(sorted(map(re.escape, chinese.split()), key=len, reverse=True))
        alternatives.append(f"(?P<{kind}>{zh}|(?<![A-Za-z])(?:{_english(english)})(?![A-Za-z]))")
    return re.compile("|".join(alternatives), re.IGNORECASE)


_CUE = _pattern()
WINDOWS = {"zh": 12, "en": 50}  # characters between the end of a cue and the number it is about


class Cues:
    """The cues of one text, to ask which one is nearest before a number."""

    def __init__(self, text: str, language: str) -> None:
        found = [(match.end(), match.lastgroup or "") for match in _CUE.finditer(text)]
        self._ends = [end for end, _ in found]
        self._kinds = [kind for _, kind in found]
        self._window = WINDOWS[language]

    def nearest(self, start: int) -> str | None:
        """The kind of the last cue that ends at or before `start`, at most the language's window before it."""
        index = bisect.bisect_right(self._ends, start)
        if index == 0 or start - self._ends[index - 1] > self._window:
            return None
        return self._kinds[index - 1]
