import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_LAYOUT_UNSPECIFIED: _ClassVar[ChannelLayout]
    CHANNEL_LAYOUT_MONO: _ClassVar[ChannelLayout]
    CHANNEL_LAYOUT_STEREO_AGENT_LEFT: _ClassVar[ChannelLayout]
    CHANNEL_LAYOUT_STEREO_AGENT_RIGHT: _ClassVar[ChannelLayout]

class SpeakerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_ROLE_UNSPECIFIED: _ClassVar[SpeakerRole]
    SPEAKER_ROLE_AGENT: _ClassVar[SpeakerRole]
    SPEAKER_ROLE_CUSTOMER: _ClassVar[SpeakerRole]
    SPEAKER_ROLE_MIXED: _ClassVar[SpeakerRole]

class Language(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANGUAGE_UNSPECIFIED: _ClassVar[Language]
    LANGUAGE_AUTO: _ClassVar[Language]
    LANGUAGE_ZH: _ClassVar[Language]
    LANGUAGE_EN: _ClassVar[Language]

class LockMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCK_MODE_UNSPECIFIED: _ClassVar[LockMode]
    LOCK_MODE_COMPLIANCE: _ClassVar[LockMode]
    LOCK_MODE_GOVERNANCE: _ClassVar[LockMode]

class StorageTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORAGE_TIER_UNSPECIFIED: _ClassVar[StorageTier]
    STORAGE_TIER_HOT: _ClassVar[StorageTier]
    STORAGE_TIER_COLD: _ClassVar[StorageTier]

class Integrity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTEGRITY_UNSPECIFIED: _ClassVar[Integrity]
    INTEGRITY_OK: _ClassVar[Integrity]
    INTEGRITY_MISMATCH: _ClassVar[Integrity]
    INTEGRITY_MISSING: _ClassVar[Integrity]

class PipelineState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STATE_UNSPECIFIED: _ClassVar[PipelineState]
    PIPELINE_STATE_ARCHIVED: _ClassVar[PipelineState]
    PIPELINE_STATE_QUEUED: _ClassVar[PipelineState]
    PIPELINE_STATE_VAD: _ClassVar[PipelineState]
    PIPELINE_STATE_ASR: _ClassVar[PipelineState]
    PIPELINE_STATE_INDEXING: _ClassVar[PipelineState]
    PIPELINE_STATE_DONE: _ClassVar[PipelineState]
    PIPELINE_STATE_FAILED: _ClassVar[PipelineState]
    PIPELINE_STATE_NOT_ANALYSABLE: _ClassVar[PipelineState]

class DiarizationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIARIZATION_STATUS_UNSPECIFIED: _ClassVar[DiarizationStatus]
    DIARIZATION_STATUS_OFF: _ClassVar[DiarizationStatus]
    DIARIZATION_STATUS_DIARIZED: _ClassVar[DiarizationStatus]
    DIARIZATION_STATUS_MIXED: _ClassVar[DiarizationStatus]
CHANNEL_LAYOUT_UNSPECIFIED: ChannelLayout
CHANNEL_LAYOUT_MONO: ChannelLayout
CHANNEL_LAYOUT_STEREO_AGENT_LEFT: ChannelLayout
CHANNEL_LAYOUT_STEREO_AGENT_RIGHT: ChannelLayout
SPEAKER_ROLE_UNSPECIFIED: SpeakerRole
SPEAKER_ROLE_AGENT: SpeakerRole
SPEAKER_ROLE_CUSTOMER: SpeakerRole
SPEAKER_ROLE_MIXED: SpeakerRole
LANGUAGE_UNSPECIFIED: Language
LANGUAGE_AUTO: Language
LANGUAGE_ZH: Language
LANGUAGE_EN: Language
LOCK_MODE_UNSPECIFIED: LockMode
LOCK_MODE_COMPLIANCE: LockMode
LOCK_MODE_GOVERNANCE: LockMode
STORAGE_TIER_UNSPECIFIED: StorageTier
STORAGE_TIER_HOT: StorageTier
STORAGE_TIER_COLD: StorageTier
INTEGRITY_UNSPECIFIED: Integrity
INTEGRITY_OK: Integrity
INTEGRITY_MISMATCH: Integrity
INTEGRITY_MISSING: Integrity
PIPELINE_STATE_UNSPECIFIED: PipelineState
PIPELINE_STATE_ARCHIVED: PipelineState
PIPELINE_STATE_QUEUED: PipelineState
PIPELINE_STATE_VAD: PipelineState
PIPELINE_STATE_ASR: PipelineState
PIPELINE_STATE_INDEXING: PipelineState
PIPELINE_STATE_DONE: PipelineState
PIPELINE_STATE_FAILED: PipelineState
PIPELINE_STATE_NOT_ANALYSABLE: PipelineState
DIARIZATION_STATUS_UNSPECIFIED: DiarizationStatus
DIARIZATION_STATUS_OFF: DiarizationStatus
DIARIZATION_STATUS_DIARIZED: DiarizationStatus
DIARIZATION_STATUS_MIXED: DiarizationStatus

class Hotword(_message.Message):
    __slots__ = ("text", "weight")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    text: str
    weight: float
    def __init__(self, text: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ObjectRef(_message.Message):
    __slots__ = ("bucket", "key", "version_id", "sha256", "raw_format")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RAW_FORMAT_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    key: str
    version_id: str
    sha256: str
    raw_format: str
    def __init__(self, bucket: _Optional[str] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., sha256: _Optional[str] = ..., raw_format: _Optional[str] = ...) -> None: ...

class AudioFacts(_message.Message):
    __slots__ = ("container", "codec", "sample_rate_hz", "channels", "duration_ms", "size_bytes")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    container: str
    codec: str
    sample_rate_hz: int
    channels: int
    duration_ms: int
    size_bytes: int
    def __init__(self, container: _Optional[str] = ..., codec: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ..., duration_ms: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class RecordingMetadata(_message.Message):
    __slots__ = ("tenant", "call_id", "agent_id", "customer_id", "started_at", "channel_layout", "language", "hotwords", "labels", "filename", "zh_script")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    ZH_SCRIPT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    call_id: str
    agent_id: str
    customer_id: str
    started_at: _timestamp_pb2.Timestamp
    channel_layout: ChannelLayout
    language: Language
    hotwords: _containers.RepeatedCompositeFieldContainer[Hotword]
    labels: _containers.ScalarMap[str, str]
    filename: str
    zh_script: str
    def __init__(self, tenant: _Optional[str] = ..., call_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel_layout: _Optional[_Union[ChannelLayout, str]] = ..., language: _Optional[_Union[Language, str]] = ..., hotwords: _Optional[_Iterable[_Union[Hotword, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., filename: _Optional[str] = ..., zh_script: _Optional[str] = ...) -> None: ...

class LockInfo(_message.Message):
    __slots__ = ("mode", "retain_until", "legal_hold")
    MODE_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    mode: LockMode
    retain_until: _timestamp_pb2.Timestamp
    legal_hold: bool
    def __init__(self, mode: _Optional[_Union[LockMode, str]] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., legal_hold: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("channel", "role", "start_ms", "end_ms", "speaker", "role_confidence")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    ROLE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    channel: int
    role: SpeakerRole
    start_ms: int
    end_ms: int
    speaker: int
    role_confidence: float
    def __init__(self, channel: _Optional[int] = ..., role: _Optional[_Union[SpeakerRole, str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., speaker: _Optional[int] = ..., role_confidence: _Optional[float] = ...) -> None: ...

class SpeakerSpeech(_message.Message):
    __slots__ = ("speaker", "role", "speech_ms", "segment_count")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SPEECH_MS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    speaker: int
    role: SpeakerRole
    speech_ms: int
    segment_count: int
    def __init__(self, speaker: _Optional[int] = ..., role: _Optional[_Union[SpeakerRole, str]] = ..., speech_ms: _Optional[int] = ..., segment_count: _Optional[int] = ...) -> None: ...

class Diarization(_message.Message):
    __slots__ = ("status", "reason", "agent_rule", "voice_similarity", "speakers", "model")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AGENT_RULE_FIELD_NUMBER: _ClassVar[int]
    VOICE_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    status: DiarizationStatus
    reason: str
    agent_rule: str
    voice_similarity: float
    speakers: _containers.RepeatedCompositeFieldContainer[SpeakerSpeech]
    model: str
    def __init__(self, status: _Optional[_Union[DiarizationStatus, str]] = ..., reason: _Optional[str] = ..., agent_rule: _Optional[str] = ..., voice_similarity: _Optional[float] = ..., speakers: _Optional[_Iterable[_Union[SpeakerSpeech, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("text", "start_ms", "end_ms", "confidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    start_ms: int
    end_ms: int
    confidence: float
    def __init__(self, text: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class Tombstone(_message.Message):
    __slots__ = ("recording_id", "tenant", "sha256", "archived_at", "retain_until", "deleted_at", "reason", "versions_deleted")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_AT_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    sha256: str
    archived_at: _timestamp_pb2.Timestamp
    retain_until: _timestamp_pb2.Timestamp
    deleted_at: _timestamp_pb2.Timestamp
    reason: str
    versions_deleted: int
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., sha256: _Optional[str] = ..., archived_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., versions_deleted: _Optional[int] = ...) -> None: ...
