from callscribe.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VadEngine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VAD_ENGINE_UNSPECIFIED: _ClassVar[VadEngine]
    VAD_ENGINE_FSMN: _ClassVar[VadEngine]
    VAD_ENGINE_SILERO: _ClassVar[VadEngine]
VAD_ENGINE_UNSPECIFIED: VadEngine
VAD_ENGINE_FSMN: VadEngine
VAD_ENGINE_SILERO: VadEngine

class VadOptions(_message.Message):
    __slots__ = ("engine", "max_single_segment_ms", "max_end_silence_ms", "speech_noise_threshold", "diarize")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    MAX_SINGLE_SEGMENT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_END_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_NOISE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DIARIZE_FIELD_NUMBER: _ClassVar[int]
    engine: VadEngine
    max_single_segment_ms: int
    max_end_silence_ms: int
    speech_noise_threshold: float
    diarize: bool
    def __init__(self, engine: _Optional[_Union[VadEngine, str]] = ..., max_single_segment_ms: _Optional[int] = ..., max_end_silence_ms: _Optional[int] = ..., speech_noise_threshold: _Optional[float] = ..., diarize: _Optional[bool] = ...) -> None: ...

class DetectSpeechRequest(_message.Message):
    __slots__ = ("object", "inline_audio", "channel_layout", "options")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    INLINE_AUDIO_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    object: _common_pb2.ObjectRef
    inline_audio: bytes
    channel_layout: _common_pb2.ChannelLayout
    options: VadOptions
    def __init__(self, object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., inline_audio: _Optional[bytes] = ..., channel_layout: _Optional[_Union[_common_pb2.ChannelLayout, str]] = ..., options: _Optional[_Union[VadOptions, _Mapping]] = ...) -> None: ...

class ChannelSpeech(_message.Message):
    __slots__ = ("channel", "role", "speech_ms", "segment_count")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SPEECH_MS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    channel: int
    role: _common_pb2.SpeakerRole
    speech_ms: int
    segment_count: int
    def __init__(self, channel: _Optional[int] = ..., role: _Optional[_Union[_common_pb2.SpeakerRole, str]] = ..., speech_ms: _Optional[int] = ..., segment_count: _Optional[int] = ...) -> None: ...

class DetectSpeechResponse(_message.Message):
    __slots__ = ("segments", "duration_ms", "channels", "audio", "diarization")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    DIARIZATION_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[_common_pb2.Segment]
    duration_ms: int
    channels: _containers.RepeatedCompositeFieldContainer[ChannelSpeech]
    audio: _common_pb2.AudioFacts
    diarization: _common_pb2.Diarization
    def __init__(self, segments: _Optional[_Iterable[_Union[_common_pb2.Segment, _Mapping]]] = ..., duration_ms: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[ChannelSpeech, _Mapping]]] = ..., audio: _Optional[_Union[_common_pb2.AudioFacts, _Mapping]] = ..., diarization: _Optional[_Union[_common_pb2.Diarization, _Mapping]] = ...) -> None: ...
