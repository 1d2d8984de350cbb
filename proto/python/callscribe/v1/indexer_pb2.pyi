import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from callscribe.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Utterance(_message.Message):
    __slots__ = ("channel", "role", "start_ms", "end_ms", "text", "normalized_text", "confidence", "language", "tokens", "engine", "sentiment", "speaker", "role_confidence")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    ROLE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    channel: int
    role: _common_pb2.SpeakerRole
    start_ms: int
    end_ms: int
    text: str
    normalized_text: str
    confidence: float
    language: _common_pb2.Language
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.Token]
    engine: str
    sentiment: float
    speaker: int
    role_confidence: float
    def __init__(self, channel: _Optional[int] = ..., role: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., text: _Optional[str] = ..., normalized_text: _Optional[str] = ..., confidence: _Optional[float] = ..., language: _Optional[_Union[_common_pb2.Language, str]] = ..., tokens: _Optional[_Iterable[_Union[_common_pb2.Token, _Mapping]]] = ..., engine: _Optional[str] = ..., sentiment: _Optional[float] = ..., speaker: _Optional[int] = ..., role_confidence: _Optional[float] = ...) -> None: ...

class KeywordHit(_message.Message):
    __slots__ = ("list", "phrase", "matched", "channel", "role", "start_ms", "end_ms")
    LIST_FIELD_NUMBER: _ClassVar[int]
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    list: str
    phrase: str
    matched: str
    channel: int
    role: _common_pb2.SpeakerRole
    start_ms: int
    end_ms: int
    def __init__(self, list: _Optional[str] = ..., phrase: _Optional[str] = ..., matched: _Optional[str] = ..., channel: _Optional[int] = ..., role: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class SideStats(_message.Message):
    __slots__ = ("talk_ms", "speaking_rate", "interruptions", "sentiment", "words")
    TALK_MS_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_RATE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    talk_ms: int
    speaking_rate: float
    interruptions: int
    sentiment: float
    words: int
    def __init__(self, talk_ms: _Optional[int] = ..., speaking_rate: _Optional[float] = ..., interruptions: _Optional[int] = ..., sentiment: _Optional[float] = ..., words: _Optional[int] = ...) -> None: ...

class Interruption(_message.Message):
    __slots__ = ("by", "at_ms", "overlap_ms")
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_MS_FIELD_NUMBER: _ClassVar[int]
    by: _common_pb2.SpeakerRole
    at_ms: int
    overlap_ms: int
    def __init__(self, by: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ..., at_ms: _Optional[int] = ..., overlap_ms: _Optional[int] = ...) -> None: ...

class QaDeduction(_message.Message):
    __slots__ = ("rule", "points", "reason")
    RULE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    rule: str
    points: float
    reason: str
    def __init__(self, rule: _Optional[str] = ..., points: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class QaResult(_message.Message):
    __slots__ = ("score", "max_score", "deductions")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_FIELD_NUMBER: _ClassVar[int]
    DEDUCTIONS_FIELD_NUMBER: _ClassVar[int]
    score: float
    max_score: float
    deductions: _containers.RepeatedCompositeFieldContainer[QaDeduction]
    def __init__(self, score: _Optional[float] = ..., max_score: _Optional[float] = ..., deductions: _Optional[_Iterable[_Union[QaDeduction, _Mapping]]] = ...) -> None: ...

class CallAnalytics(_message.Message):
    __slots__ = ("agent", "customer", "agent_talk_ratio", "silence_ms", "longest_silence_ms", "dead_air_count", "dead_air_threshold_ms", "overlap_ms", "interruption_count", "interruptions", "keyword_hits", "sentiment", "sentiment_label", "qa")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    AGENT_TALK_RATIO_FIELD_NUMBER: _ClassVar[int]
    SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    LONGEST_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    DEAD_AIR_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEAD_AIR_THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_HITS_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_LABEL_FIELD_NUMBER: _ClassVar[int]
    QA_FIELD_NUMBER: _ClassVar[int]
    agent: SideStats
    customer: SideStats
    agent_talk_ratio: float
    silence_ms: int
    longest_silence_ms: int
    dead_air_count: int
    dead_air_threshold_ms: int
    overlap_ms: int
    interruption_count: int
    interruptions: _containers.RepeatedCompositeFieldContainer[Interruption]
    keyword_hits: _containers.RepeatedCompositeFieldContainer[KeywordHit]
    sentiment: float
    sentiment_label: str
    qa: QaResult
    def __init__(self, agent: _Optional[_Union[SideStats, _Mapping]] = ..., customer: _Optional[_Union[SideStats, _Mapping]] = ..., agent_talk_ratio: _Optional[float] = ..., silence_ms: _Optional[int] = ..., longest_silence_ms: _Optional[int] = ..., dead_air_count: _Optional[int] = ..., dead_air_threshold_ms: _Optional[int] = ..., overlap_ms: _Optional[int] = ..., interruption_count: _Optional[int] = ..., interruptions: _Optional[_Iterable[_Union[Interruption, _Mapping]]] = ..., keyword_hits: _Optional[_Iterable[_Union[KeywordHit, _Mapping]]] = ..., sentiment: _Optional[float] = ..., sentiment_label: _Optional[str] = ..., qa: _Optional[_Union[QaResult, _Mapping]] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("recording_id", "tenant", "metadata", "audio", "object", "tier", "utterances", "indexed_at", "analytics", "diarization", "moved_at", "integrity", "verified_at")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    INDEXED_AT_FIELD_NUMBER: _ClassVar[int]
    ANALYTICS_FIELD_NUMBER: _ClassVar[int]
    DIARIZATION_FIELD_NUMBER: _ClassVar[int]
    MOVED_AT_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    metadata: _common_pb2.RecordingMetadata
    audio: _common_pb2.AudioFacts
    object: _common_pb2.ObjectRef
    tier: _common_pb2.StorageTier
    utterances: _containers.RepeatedCompositeFieldContainer[Utterance]
    indexed_at: _timestamp_pb2.Timestamp
    analytics: CallAnalytics
    diarization: _common_pb2.Diarization
    moved_at: _timestamp_pb2.Timestamp
    integrity: _common_pb2.Integrity
    verified_at: _timestamp_pb2.Timestamp
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.RecordingMetadata, _Mapping]] = ..., audio: _Optional[_Union[_common_pb2.AudioFacts, _Mapping]] = ..., object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., tier: _Optional[_Union[_common_pb2.StorageTier, str]] = ..., utterances: _Optional[_Iterable[_Union[Utterance, _Mapping]]] = ..., indexed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., analytics: _Optional[_Union[CallAnalytics, _Mapping]] = ..., diarization: _Optional[_Union[_common_pb2.Diarization, _Mapping]] = ..., moved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., integrity: _Optional[_Union[_common_pb2.Integrity, str]] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IndexCallRequest(_message.Message):
    __slots__ = ("call", "key_id")
    CALL_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    call: Call
    key_id: str
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ..., key_id: _Optional[str] = ...) -> None: ...

class IndexCallResponse(_message.Message):
    __slots__ = ("recording_id", "utterances_indexed")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    UTTERANCES_INDEXED_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    utterances_indexed: int
    def __init__(self, recording_id: _Optional[str] = ..., utterances_indexed: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("tenant", "query", "agent_id", "started_from", "started_to", "language", "min_duration_ms", "max_duration_ms", "page_size", "page_token", "role", "keyword", "missing_keyword", "min_longest_silence_ms", "min_interruptions", "sentiment_label", "min_qa_score", "max_qa_score", "tier", "integrity", "not_verified_since")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FROM_FIELD_NUMBER: _ClassVar[int]
    STARTED_TO_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    MISSING_KEYWORD_FIELD_NUMBER: _ClassVar[int]
    MIN_LONGEST_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_LABEL_FIELD_NUMBER: _ClassVar[int]
    MIN_QA_SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_QA_SCORE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    NOT_VERIFIED_SINCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    query: str
    agent_id: str
    started_from: _timestamp_pb2.Timestamp
    started_to: _timestamp_pb2.Timestamp
    language: _common_pb2.Language
    min_duration_ms: int
    max_duration_ms: int
    page_size: int
    page_token: str
    role: _common_pb2.SpeakerRole
    keyword: str
    missing_keyword: str
    min_longest_silence_ms: int
    min_interruptions: int
    sentiment_label: str
    min_qa_score: float
    max_qa_score: float
    tier: _common_pb2.StorageTier
    integrity: _common_pb2.Integrity
    not_verified_since: _timestamp_pb2.Timestamp
    def __init__(self, tenant: _Optional[str] = ..., query: _Optional[str] = ..., agent_id: _Optional[str] = ..., started_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., language: _Optional[_Union[_common_pb2.Language, str]] = ..., min_duration_ms: _Optional[int] = ..., max_duration_ms: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ..., keyword: _Optional[str] = ..., missing_keyword: _Optional[str] = ..., min_longest_silence_ms: _Optional[int] = ..., min_interruptions: _Optional[int] = ..., sentiment_label: _Optional[str] = ..., min_qa_score: _Optional[float] = ..., max_qa_score: _Optional[float] = ..., tier: _Optional[_Union[_common_pb2.StorageTier, str]] = ..., integrity: _Optional[_Union[_common_pb2.Integrity, str]] = ..., not_verified_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UtteranceHit(_message.Message):
    __slots__ = ("channel", "role", "start_ms", "end_ms", "text", "highlight")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHT_FIELD_NUMBER: _ClassVar[int]
    channel: int
    role: _common_pb2.SpeakerRole
    start_ms: int
    end_ms: int
    text: str
    highlight: str
    def __init__(self, channel: _Optional[int] = ..., role: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., text: _Optional[str] = ..., highlight: _Optional[str] = ...) -> None: ...

class CallHit(_message.Message):
    __slots__ = ("recording_id", "call_id", "agent_id", "started_at", "duration_ms", "score", "utterances", "analytics")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    ANALYTICS_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    call_id: str
    agent_id: str
    started_at: _timestamp_pb2.Timestamp
    duration_ms: int
    score: float
    utterances: _containers.RepeatedCompositeFieldContainer[UtteranceHit]
    analytics: CallAnalytics
    def __init__(self, recording_id: _Optional[str] = ..., call_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_ms: _Optional[int] = ..., score: _Optional[float] = ..., utterances: _Optional[_Iterable[_Union[UtteranceHit, _Mapping]]] = ..., analytics: _Optional[_Union[CallAnalytics, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "total", "next_page_token")
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[CallHit]
    total: int
    next_page_token: str
    def __init__(self, hits: _Optional[_Iterable[_Union[CallHit, _Mapping]]] = ..., total: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCallRequest(_message.Message):
    __slots__ = ("tenant", "recording_id", "unredacted")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    UNREDACTED_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    unredacted: bool
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ..., unredacted: _Optional[bool] = ...) -> None: ...

class ExportCallsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: SearchRequest
    def __init__(self, filter: _Optional[_Union[SearchRequest, _Mapping]] = ...) -> None: ...

class FindIndexedRequest(_message.Message):
    __slots__ = ("tenant", "recording_ids")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_IDS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., recording_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FindIndexedResponse(_message.Message):
    __slots__ = ("recording_ids",)
    RECORDING_IDS_FIELD_NUMBER: _ClassVar[int]
    recording_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recording_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateStorageRequest(_message.Message):
    __slots__ = ("tenant", "recording_id", "object", "tier", "moved_at", "integrity", "verified_at")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    MOVED_AT_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    object: _common_pb2.ObjectRef
    tier: _common_pb2.StorageTier
    moved_at: _timestamp_pb2.Timestamp
    integrity: _common_pb2.Integrity
    verified_at: _timestamp_pb2.Timestamp
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ..., object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., tier: _Optional[_Union[_common_pb2.StorageTier, str]] = ..., moved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., integrity: _Optional[_Union[_common_pb2.Integrity, str]] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateStorageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteCallRequest(_message.Message):
    __slots__ = ("tenant", "recording_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ...) -> None: ...

class DeleteCallResponse(_message.Message):
    __slots__ = ("deleted", "documents")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    documents: int
    def __init__(self, deleted: _Optional[bool] = ..., documents: _Optional[int] = ...) -> None: ...

class PreviewRedactionRequest(_message.Message):
    __slots__ = ("tenant", "language", "text")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    language: _common_pb2.Language
    text: str
    def __init__(self, tenant: _Optional[str] = ..., language: _Optional[_Union[_common_pb2.Language, str]] = ..., text: _Optional[str] = ...) -> None: ...

class RedactedSpan(_message.Message):
    __slots__ = ("category", "start", "end", "mask")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    category: str
    start: int
    end: int
    mask: str
    def __init__(self, category: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., mask: _Optional[str] = ...) -> None: ...

class PreviewRedactionResponse(_message.Message):
    __slots__ = ("text", "masked", "kept", "categories", "keep_unredacted", "keep_last")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    KEEP_UNREDACTED_FIELD_NUMBER: _ClassVar[int]
    KEEP_LAST_FIELD_NUMBER: _ClassVar[int]
    text: str
    masked: _containers.RepeatedCompositeFieldContainer[RedactedSpan]
    kept: _containers.RepeatedCompositeFieldContainer[RedactedSpan]
    categories: _containers.RepeatedScalarFieldContainer[str]
    keep_unredacted: bool
    keep_last: int
    def __init__(self, text: _Optional[str] = ..., masked: _Optional[_Iterable[_Union[RedactedSpan, _Mapping]]] = ..., kept: _Optional[_Iterable[_Union[RedactedSpan, _Mapping]]] = ..., categories: _Optional[_Iterable[str]] = ..., keep_unredacted: _Optional[bool] = ..., keep_last: _Optional[int] = ...) -> None: ...
