"""The indexer's text normalization entry point: ITN and punctuation for zh and en ASR utterances."""

from __future__ import annotations

import logging
import re

from callscribe.indexer import script as scripts
from callscribe.indexer.text.en import EnglishItn
from callscribe.indexer.text.punctuation import punctuate_en, punctuate_zh
from callscribe.indexer.text.zh import ChineseItn

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")


def resolve_language(text: str, language: str) -> str | None:
    """'zh', 'en', or None (a language callscribe has no ITN for). 'auto' decides by CJK characters."""
    lang = (language or "auto").strip().lower().replace("_", "-")
    if lang in ("auto", "", "und"):
        if _KANA.search(text):
            return None
        return "zh" if _CJK.search(text) else "en"
    if lang in ("zh", "cmn", "yue") or lang.startswith(("zh-", "cmn-", "yue-")):
        return "zh"
    if lang == "en" or lang.startswith("en-"):
        return "en"
    return None


class TextNormalizer:
    """Written forms of ASR utterances: ``normalize`` = ``punctuate`` (when the text has none) then ``itn``.

    Construction loads wetext's ITN graphs (once per process); afterwards every method is safe to call from
    many threads. Methods never raise on text: an empty string gives an empty string, and a failure inside
    the graphs or rules is logged at debug and returns the input unchanged.

    The keyword settings exist to run peer test suites under the settings they were written for; the
    indexer uses the defaults. ``enable_0_to_9`` also writes lone digits (一个 -> 1个);
    ``enable_standalone_number=False`` leaves integers said on their own as spoken;
    ``remove_interjections`` drops Chinese fillers (呃, filler 啊).
    """

    def __init__(
        self,
        *,
        enable_0_to_9: bool = False,
        enable_standalone_number: bool = True,
        remove_interjections: bool = True,
    ) -> None:
        self._zh = ChineseItn(
            enable_0_to_9=enable_0_to_9,
            enable_standalone_number=enable_standalone_number,
            remove_interjections=remove_interjections,
        )
        self._en = EnglishItn()

    def itn(self, text: str, language: str) -> str:
        """Spoken forms to written ones (一百五十八块五 -> 158.5元, eighty five dollars -> $85)."""
        if not text or not text.strip():
            return text or ""
        lang = resolve_language(text, language)
        if lang is None:
            log.debug("no ITN for language %r; text left as is", language)
            return text
        try:
            return self._zh(text) if lang == "zh" else self._en(text)
        except Exception:  # noqa: BLE001 - odd text must never fail indexing
            log.debug("ITN failed (%s) on %r; text left as is", lang, text, exc_info=True)
            return text

    def punctuate(self, text: str, language: str) -> str:
        """Sentence-final mark and reliable commas, only when the text has no punctuation at all."""
        if not text or not text.strip():
            return text or ""
        lang = resolve_language(text, language)
        if lang is None:
            return text
        try:
            return punctuate_zh(text) if lang == "zh" else punctuate_en(text)
        except Exception:  # noqa: BLE001
            log.debug("punctuation failed (%s) on %r; text left as is", lang, text, exc_info=True)
            return text

    def normalize(self, text: str, language: str, script: str = scripts.AS_RECOGNIZED) -> str:
        """What the indexer stores as normalized_text: the text in `script`, then ``punctuate`` (if needed) and
        ``itn``, with ITN's output in `script` too.

        `script` (`callscribe.indexer.script.SCRIPTS`): ``simplified``, ``traditional`` (OpenCC's standard
        forms), ``traditional_tw``, ``traditional_hk``, or ``as_recognized`` (each utterance stays in the
        script it was recognized in). ITN always reads Simplified characters (its grammars are written in
        them: 五點 is read as 五点, 5点); what it wrote is then put in the utterance's script, so one sentence
        never mixes the two (到下午五點 -> 到下午5點 in Traditional, 到下午5点 in Simplified). Characters ITN
        left alone are kept as the conversion to `script` gave them. Text in a language callscribe has no ITN
        for (Japanese kana, other languages) is neither converted nor normalized.
        """
        scripts.check_script(script)
        if not text or not text.strip():
            return text or ""
        if resolve_language(text, language) is None:
            return text
        shown = scripts.to_script(text, script)
        read = scripts.itn_form(shown)
        written = self.itn(self.punctuate(read, language), language)
        if read == shown:
            return written
        return scripts.restore(shown, read, written, scripts.back_config(script, shown))
