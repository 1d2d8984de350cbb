"""redact_call(call, policy): mask PII in everything of a call that is indexed or returned.

IndexCall runs it after the enricher (ITN and analytics see the unredacted text) and before the documents are
built, so the utterance ``text`` and ``normalized_text``, the call transcripts made of them (`documents.py`), the
search highlights Elasticsearch cuts from them, the keyword hits' ``matched`` text and the QA reasons that quote
it only ever hold the masks.

Each utterance is read with its neighbours in call order (`find_pii`'s ``before``/``after``): the code the agent
asks for in one utterance and the customer says in the next is found, and so is a number cut in two by an
utterance boundary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from callscribe.indexer.documents import ordered_utterances
from callscribe.indexer.enrich import utterance_language
from callscribe.indexer.pii.redact import Masked, redact, render
from callscribe.kit.redaction import RedactionPolicy
from callscribe.kit.tenants import Tenant
from callscribe.v1 import indexer_pb2 as pb

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class UnredactedSink(Protocol):
    """Where IndexCall hands the unredacted call of a tenant whose policy keeps it (``keep_unredacted``): stored
    encrypted with the recording's data key (`indexer.unredacted.SealedTranscripts`), readable by supervisors and
    admins (GetCall unredacted), erased with the recording. An indexer without encryption at rest has none and
    logs that the unredacted transcript is not kept."""

    def put(self, tenant: Tenant, unredacted: pb.Call, key_id: str) -> None: ...
    def get(self, tenant: str, rec_id: str) -> pb.Call | None: ...


@dataclass
class CallRedaction:
    masked: Counter[str] = field(default_factory=Counter)  # category -> spans masked (text and normalized text)
    unredacted: pb.Call | None = None  # the call before masking, when the policy keeps it


def redact_call(call: pb.Call, policy: RedactionPolicy) -> CallRedaction:
    """Mask `call` in place under `policy`; the unredacted call comes back when the policy keeps it."""
    result = CallRedaction()
    if policy.keep_unredacted:
        result.unredacted = pb.Call()
        result.unredacted.CopyFrom(call)
    if not policy.categories:
        return result
    utterances = ordered_utterances(call)
    languages = [_language(u, call) for u in utterances]
    for name in ("text", "normalized_text"):
        shown = [getattr(u, name) for u in utterances]
        for index, utterance in enumerate(utterances):
            if not shown[index]:
                continue
            before = shown[index - 1] if index else ""
            after = shown[index + 1] if index + 1 < len(shown) else ""
            redacted = redact(shown[index], languages[index], policy, before=before, after=after)
            setattr(utterance, name, redacted.text)
            result.masked.update(span.category for span in redacted.masked)
            if name == "normalized_text" or not utterance.normalized_text:
                _redact_hits(call, utterance, shown[index], redacted.masked)
    return result


def _language(utterance: pb.Utterance, call: pb.Call) -> str:
    language = utterance_language(utterance, call)
    if language == "auto":
        return "zh" if _CJK.search(utterance.normalized_text or utterance.text) else "en"
    return language


def _redact_hits(call: pb.Call, utterance: pb.Utterance, text: str, masked: Sequence[Masked]) -> None:
    """Keyword hits of `utterance` whose matched text reaches into a masked span show the mask instead (and so
    do the QA reasons that quote them). `text` is the utterance's text before masking, as analytics read it."""
    if not masked:
        return
    for hit in call.analytics.keyword_hits:
        if hit.channel != utterance.channel or not _overlaps(hit, utterance) or not hit.matched:
            continue
        shown = _shown(hit.matched, text, masked)
        if shown == hit.matched:
            continue
        quoted, hit.matched = f'"{hit.matched}"', shown
        for deduction in call.analytics.qa.deductions:
            deduction.reason = deduction.reason.replace(quoted, f'"{shown}"')


def _overlaps(hit: pb.KeywordHit, utterance: pb.Utterance) -> bool:
    return hit.start_ms <= utterance.end_ms and utterance.start_ms <= max(hit.end_ms, hit.start_ms)


def _shown(matched: str, text: str, masked: Sequence[Masked]) -> str:
    """`matched` as the redacted text shows it where one of its places in `text` overlaps a masked span."""
    at = text.find(matched)
    while at >= 0:
        end = at + len(matched)
        if any(span.start < end and at < span.end for span in masked):
            return render(text, masked, at, end)
        at = text.find(matched, at + 1)
    return matched
