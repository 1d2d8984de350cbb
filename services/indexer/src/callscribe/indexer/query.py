"""Search requests -> Elasticsearch queries, and the opaque page token. Pure, no I/O.

Free text is matched against the call document's transcripts (all words, in any of the call's
utterances), so results are calls; the page's matching utterances are then fetched from the
utterance index with highlights. A query with Chinese characters is matched with the `cjk` analysis
(bigrams); other text also with the `english` sub-field (stems: refund matches refunds).

Search does not care which script Chinese is written in: the query is folded to Simplified characters
(`callscribe.indexer.script.fold`) and matched against the texts and their folded forms (`<field>_simplified`,
written where a text has Traditional characters), so 谢谢 finds a call transcribed 謝謝 and 謝謝 one transcribed
谢谢. The query as typed is matched too (calls indexed before the folded fields existed). Highlights are on
the stored text: a highlight of a folded field is put back on the text it was folded from, character for
character.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Any

from callscribe.indexer.documents import iso
from callscribe.indexer.mappings import folded
from callscribe.indexer.script import TRADITIONAL, TRADITIONAL_HK, TRADITIONAL_TW, fold, has_han, to_script
from callscribe.indexer.validation import check_timestamp
from callscribe.kit.errors import InvalidArgument
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

MAX_QUERY_CHARS = 1000
SENTIMENT_LABELS = ("negative", "neutral", "positive")
HIGHLIGHT_TAGS = (["<em>"], ["</em>"])
_TOKEN_VERSION = 2  # 2: offsets for ranked searches
# CJK Unified Ideographs (+ extension A, compatibility), Hiragana/Katakana, Hangul.
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_ROLE_FIELDS = {
    c.SPEAKER_ROLE_AGENT: ("transcript_agent",),
    c.SPEAKER_ROLE_CUSTOMER: ("transcript_customer",),
}
_ALL_TRANSCRIPTS = ("transcript", "transcript_normalized")
_UTTERANCE_TEXTS = ("normalized_text", "text")
_HIGHLIGHT_MARK_RE = re.compile("(" + re.escape(HIGHLIGHT_TAGS[0][0]) + "|" + re.escape(HIGHLIGHT_TAGS[1][0]) + ")")


@dataclass(frozen=True)
class SearchQuery:
    """A validated SearchRequest (the tenant already resolved from the caller's token)."""

    tenant: str
    text: str = ""
    agent_id: str = ""
    started_from: str | None = None  # inclusive, ISO
    started_to: str | None = None  # exclusive, ISO
    language: str | None = None  # enum name
    min_duration_ms: int = 0
    max_duration_ms: int = 0  # 0: no upper bound
    role: int = c.SPEAKER_ROLE_UNSPECIFIED
    keyword: str = ""
    missing_keyword: str = ""
    min_longest_silence_ms: int = 0
    min_interruptions: int = 0
    sentiment_label: str = ""
    min_qa_score: float | None = None
    max_qa_score: float | None = None
    tier: str | None = None  # enum name
    integrity: str | None = None  # enum name
    not_verified_since: str | None = None  # exclusive, ISO: verified before it, or never

    @property
    def cjk(self) -> bool:
        return bool(_CJK_RE.search(self.text))

    @property
    def folded(self) -> str:
        """The text in the Simplified form the `*_simplified` fields hold."""
        return fold(self.text)

    def fingerprint(self) -> str:
        """Identifies the search (not the page): a page token only continues the search that made it."""
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def parse_search(request: pb.SearchRequest, tenant: str) -> SearchQuery:
    """Check a SearchRequest's filters; INVALID_ARGUMENT names what is wrong."""
    text = request.query.strip()
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"query is {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    started_from = iso(request.started_from) if request.HasField("started_from") else None
    started_to = iso(request.started_to) if request.HasField("started_to") else None
    if request.HasField("started_from") and request.HasField("started_to"):
        if request.started_from.ToDatetime(UTC) >= request.started_to.ToDatetime(UTC):
            raise InvalidArgument("started_from must be before started_to (from is inclusive, to exclusive)")
    if request.language not in c.Language.values():
        raise InvalidArgument(f"language {request.language} is not a known value")
    language = None
    if request.language in (c.LANGUAGE_ZH, c.LANGUAGE_EN):
        language = c.Language.Name(request.language)
    if request.max_duration_ms and request.min_duration_ms > request.max_duration_ms:
        raise InvalidArgument(
            f"min_duration_ms ({request.min_duration_ms}) is above max_duration_ms ({request.max_duration_ms})"
        )
    if request.role not in c.SpeakerRole.values():
        raise InvalidArgument(f"role {request.role} is not a known value")
    label = request.sentiment_label.strip().lower()
    if label and label not in SENTIMENT_LABELS:
        raise InvalidArgument(f"sentiment_label must be one of {', '.join(SENTIMENT_LABELS)}, got {label!r}")
    min_qa = request.min_qa_score if request.HasField("min_qa_score") else None
    max_qa = request.max_qa_score if request.HasField("max_qa_score") else None
    for name, value in (("min_qa_score", min_qa), ("max_qa_score", max_qa)):
        if value is not None and not math.isfinite(value):
            raise InvalidArgument(f"{name} must be a number, got {value}")
    if min_qa is not None and max_qa is not None and min_qa > max_qa:
        raise InvalidArgument(f"min_qa_score ({min_qa:g}) is above max_qa_score ({max_qa:g})")
    if request.tier not in c.StorageTier.values():
        raise InvalidArgument(f"tier {request.tier} is not a known value")
    if request.integrity not in c.Integrity.values():
        raise InvalidArgument(f"integrity {request.integrity} is not a known value")
    not_verified_since = None
    if request.HasField("not_verified_since"):
        check_timestamp("not_verified_since", request.not_verified_since)
        not_verified_since = iso(request.not_verified_since)
    return SearchQuery(
        tenant=tenant,
        text=text,
        agent_id=request.agent_id.strip(),
        started_from=started_from,
        started_to=started_to,
        language=language,
        min_duration_ms=request.min_duration_ms,
        max_duration_ms=request.max_duration_ms,
        role=request.role,
        keyword=request.keyword.strip(),
        missing_keyword=request.missing_keyword.strip(),
        min_longest_silence_ms=request.min_longest_silence_ms,
        min_interruptions=request.min_interruptions,
        sentiment_label=label,
        min_qa_score=min_qa,
        max_qa_score=max_qa,
        tier=c.StorageTier.Name(request.tier) if request.tier else None,
        integrity=c.Integrity.Name(request.integrity) if request.integrity else None,
        not_verified_since=not_verified_since,
    )


def page_size(requested: int, default: int, maximum: int) -> int:
    """0 -> the default; above the maximum -> the maximum."""
    return default if requested == 0 else min(requested, maximum)


# --------------------------------------------------------------------------- queries


def script_variants(value: str) -> list[str]:
    """`value`, and where it has Chinese characters, the same in Simplified and the Traditional forms (the
    phrases of keyword lists are stored as the analytics file writes them, in either script)."""
    if not has_han(value):
        return [value]
    forms = [value, fold(value)] + [to_script(value, s) for s in (TRADITIONAL, TRADITIONAL_TW, TRADITIONAL_HK)]
    return list(dict.fromkeys(forms))


def _keyword_clause(value: str) -> dict[str, Any]:
    """A hit of this phrase or of this list (case-insensitive; a phrase in either script)."""
    should = [
        {"term": {field: {"value": form, "case_insensitive": True}}}
        for form in script_variants(value)
        for field in ("keywords", "keyword_lists")
    ]
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _text_clause(fields: tuple[str, ...], q: SearchQuery, operator: str) -> dict[str, Any]:
    """Any of `fields` has the words (all of them with operator "and"): the query folded to Simplified or as
    typed; with Chinese characters also the fields' folded forms, else the `english` sub-fields."""
    should: list[dict[str, Any]] = []
    for name in fields:
        for text in dict.fromkeys((q.folded, q.text)):
            should.append({"match": {name: {"query": text, "operator": operator}}})
        if q.cjk:
            should.append({"match": {folded(name): {"query": q.folded, "operator": operator}}})
        else:
            should.append({"match": {f"{name}.english": {"query": q.text, "operator": operator}}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def call_filters(q: SearchQuery) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"term": {"tenant": q.tenant}}]
    if q.agent_id:
        filters.append({"term": {"agent_id": q.agent_id}})
    if q.started_from or q.started_to:
        bounds: dict[str, str] = {}
        if q.started_from:
            bounds["gte"] = q.started_from
        if q.started_to:
            bounds["lt"] = q.started_to
        filters.append({"range": {"started_at": bounds}})
    if q.language:
        filters.append({"term": {"language": q.language}})
    if q.min_duration_ms or q.max_duration_ms:
        duration: dict[str, int] = {"gte": q.min_duration_ms}
        if q.max_duration_ms:
            duration["lte"] = q.max_duration_ms
        filters.append({"range": {"duration_ms": duration}})
    if q.keyword:
        filters.append(_keyword_clause(q.keyword))
    if q.min_longest_silence_ms:
        filters.append({"range": {"analytics.longest_silence_ms": {"gte": q.min_longest_silence_ms}}})
    if q.min_interruptions:
        filters.append({"range": {"analytics.interruption_count": {"gte": q.min_interruptions}}})
    if q.sentiment_label:
        filters.append({"term": {"analytics.sentiment_label": q.sentiment_label}})
    if q.min_qa_score is not None or q.max_qa_score is not None:
        score: dict[str, float] = {}
        if q.min_qa_score is not None:
            score["gte"] = q.min_qa_score
        if q.max_qa_score is not None:
            score["lte"] = q.max_qa_score
        filters.append({"range": {"analytics.qa.score": score}})
    if q.tier:
        filters.append({"term": {"tier": q.tier}})
    if q.integrity:
        filters.append({"term": {"integrity": q.integrity}})
    if q.not_verified_since:  # never audited, or last re-hashed before the time
        never = {"bool": {"must_not": [{"exists": {"field": "verified_at"}}]}}
        before = {"range": {"verified_at": {"lt": q.not_verified_since}}}
        filters.append({"bool": {"should": [never, before], "minimum_should_match": 1}})
    if q.role == c.SPEAKER_ROLE_MIXED:  # both speakers on one channel: any call not recorded in stereo
        stereo = ["CHANNEL_LAYOUT_STEREO_AGENT_LEFT", "CHANNEL_LAYOUT_STEREO_AGENT_RIGHT"]
        filters.append({"bool": {"must_not": [{"terms": {"channel_layout": stereo}}]}})
    return filters


def call_query(q: SearchQuery) -> dict[str, Any]:
    """The bool query over call documents: every word of the text, and every filter."""
    clause: dict[str, Any] = {"filter": call_filters(q)}
    if q.text:
        fields = _ROLE_FIELDS.get(q.role, _ALL_TRANSCRIPTS)
        clause["must"] = [_text_clause(fields, q, "and")]
    if q.missing_keyword:
        clause["must_not"] = [_keyword_clause(q.missing_keyword)]
    return {"bool": clause}


def call_sort(q: SearchQuery, by_score: bool) -> list[Any]:
    """Best match first (free text), else newest first; the recording id breaks ties (stable pages)."""
    sort: list[Any] = [{"started_at": {"order": "desc", "missing": "_last"}}, {"recording_id": "asc"}]
    if by_score and q.text:
        sort.insert(0, {"_score": "desc"})
    return sort


def utterance_query(q: SearchQuery, recording_ids: list[str]) -> dict[str, Any]:
    """The utterances of these calls that match any word of the text (the calls already matched all)."""
    filters: list[dict[str, Any]] = [{"term": {"tenant": q.tenant}}, {"terms": {"recording_id": recording_ids}}]
    if q.role != c.SPEAKER_ROLE_UNSPECIFIED:
        filters.append({"term": {"role": c.SpeakerRole.Name(q.role)}})
    return {"bool": {"filter": filters, "must": [_text_clause(_UTTERANCE_TEXTS, q, "or")]}}


def utterance_highlight() -> dict[str, Any]:
    fields = {}
    for name in _UTTERANCE_TEXTS:
        for field in (name, f"{name}.english", folded(name)):
            fields[field] = {"number_of_fragments": 0}
    return {"pre_tags": HIGHLIGHT_TAGS[0], "post_tags": HIGHLIGHT_TAGS[1], "fields": fields}


def pick_highlight(source: dict[str, Any], highlight: dict[str, list[str]], cjk: bool) -> tuple[str, str]:
    """(text, highlighted text) of an utterance hit: the normalized text where it matched, else the raw one.

    A match in a text's Simplified form (`<name>_simplified`) is preferred for a Chinese query (it has every
    word the query matched in either script) and shown on the stored text itself (`transplant`)."""
    for name in _UTTERANCE_TEXTS:
        text = str(source.get(name, ""))
        order = (folded(name), name, f"{name}.english") if cjk else (f"{name}.english", name)
        for field in order:
            fragments = highlight.get(field)
            if not fragments:
                continue
            if field != folded(name):
                return text, fragments[0]
            marked = transplant(fragments[0], text)
            if marked is not None:
                return text, marked
    text = str(source.get("normalized_text") or source.get("text") or "")
    return text, text


def transplant(fragment: str, text: str) -> str | None:
    """The `<em></em>` marks of `fragment` (the whole of `fold(text)`, highlighted) put on `text` at the same
    character positions; None when `fragment` is not `text`'s folded form character for character."""
    parts = _HIGHLIGHT_MARK_RE.split(fragment)
    plain = "".join(part for part in parts if part not in (HIGHLIGHT_TAGS[0][0], HIGHLIGHT_TAGS[1][0]))
    if len(plain) != len(text) or plain != fold(text):
        return None
    out: list[str] = []
    at = 0
    for part in parts:
        if part in (HIGHLIGHT_TAGS[0][0], HIGHLIGHT_TAGS[1][0]):
            out.append(part)
        else:
            out.append(text[at : at + len(part)])
            at += len(part)
    return "".join(out)


# --------------------------------------------------------------------------- page tokens


# Free-text searches rank by score and page by offset: search_after on a float `_score` needs the engine to
# compare the score it sent back exactly, and noida-db (the local stack's Elasticsearch API) rounds the score it
# reports, so a search_after page there repeated itself forever. Elasticsearch itself answers `from` + `size`
# up to `index.max_result_window` (10,000 by default), which is as deep as a relevance ranking is read.
# Date-sorted searches (no text) keep search_after on exact keys (time, recording id): no depth limit.
MAX_RANKED_RESULTS = 10_000


@dataclass(frozen=True)
class PagePosition:
    """Where a page starts: after a sort key (date-sorted) or at an offset (ranked by score)."""

    after: list[Any] | None = None
    offset: int = 0


def encode_token(q: SearchQuery, *, after: list[Any] | None = None, offset: int | None = None) -> str:
    body: dict[str, Any] = {"v": _TOKEN_VERSION, "f": q.fingerprint()}
    if offset is not None:
        body["o"] = offset
    else:
        body["a"] = after
    raw = json.dumps(body, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(q: SearchQuery, token: str, sort_len: int) -> PagePosition:
    """Where the page of `token` starts (the first page for ""). INVALID_ARGUMENT when it does not fit.

    A ranked search (free text) takes offset tokens only, a date-sorted one sort-key tokens of `sort_len` values.
    """
    if not token:
        return PagePosition()
    bad = InvalidArgument(
        "page_token is not a token of this search (a token only continues the search, with the same query and "
        "filters, that returned it); start again without page_token"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") != _TOKEN_VERSION or data.get("f") != q.fingerprint():
        raise bad
    if q.text:
        offset = data.get("o")
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 < offset < MAX_RANKED_RESULTS:
            raise bad
        return PagePosition(offset=offset)
    after = data.get("a")
    if not isinstance(after, list) or len(after) != sort_len:
        raise bad
    if any(not isinstance(v, str | int | float) or isinstance(v, bool) for v in after):
        raise bad
    return PagePosition(after=after)
