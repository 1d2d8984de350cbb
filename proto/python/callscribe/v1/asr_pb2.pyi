from callscribe.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AsrEngine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASR_ENGINE_UNSPECIFIED: _ClassVar[AsrEngine]
    ASR_ENGINE_FUNASR: _ClassVar[AsrEngine]
    ASR_ENGINE_WHISPER: _ClassVar[AsrEngine]
ASR_ENGINE_UNSPECIFIED: AsrEngine
ASR_ENGINE_FUNASR: AsrEngine
ASR_ENGINE_WHISPER: AsrEngine

class Pcm16(_message.Message):
    __slots__ = ("data", "sample_rate_hz")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sample_rate_hz: int
    def __init__(self, data: _Optional[bytes] = ..., sample_rate_hz: _Optional[int] = ...) -> None: ...

class AsrSegment(_message.Message):
    __slots__ = ("segment_id", "object", "pcm", "start_ms", "end_ms", "channel", "role")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    object: _common_pb2.ObjectRef
    pcm: Pcm16
    start_ms: int
    end_ms: int
    channel: int
    role: _common_pb2.SpeakerRole
    def __init__(self, segment_id: _Optional[str] = ..., object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., pcm: _Optional[_Union[Pcm16, _Mapping]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., channel: _Optional[int] = ..., role: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("segments", "language", "hotwords", "engine", "model", "word_timestamps")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[AsrSegment]
    language: _common_pb2.Language
    hotwords: _containers.RepeatedCompositeFieldContainer[_common_pb2.Hotword]
    engine: AsrEngine
    model: str
    word_timestamps: bool
    def __init__(self, segments: _Optional[_Iterable[_Union[AsrSegment, _Mapping]]] = ..., language: _Optional[_Union[_common_pb2.Language, str]] = ..., hotwords: _Optional[_Iterable[_Union[_common_pb2.Hotword, _Mapping]]] = ..., engine: _Optional[_Union[AsrEngine, str]] = ..., model: _Optional[str] = ..., word_timestamps: _Optional[bool] = ...) -> None: ...

class SegmentResult(_message.Message):
    __slots__ = ("segment_id", "index", "text", "language", "confidence", "avg_logprob", "tokens", "engine", "model")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    index: int
    text: str
    language: _common_pb2.Language
    confidence: float
    avg_logprob: float
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.Token]
    engine: str
    model: str
    def __init__(self, segment_id: _Optional[str] = ..., index: _Optional[int] = ..., text: _Optional[str] = ..., language: _Optional[_Union[_common_pb2.Language, str]] = ..., confidence: _Optional[float] = ..., avg_logprob: _Optional[float] = ..., tokens: _Optional[_Iterable[_Union[_common_pb2.Token, _Mapping]]] = ..., engine: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SegmentResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SegmentResult, _Mapping]]] = ...) -> None: ...
