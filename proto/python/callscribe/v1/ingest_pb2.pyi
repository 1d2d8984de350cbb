import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from callscribe.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadRecordingRequest(_message.Message):
    __slots__ = ("metadata", "chunk", "sha256", "size_bytes")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    metadata: _common_pb2.RecordingMetadata
    chunk: bytes
    sha256: str
    size_bytes: int
    def __init__(self, metadata: _Optional[_Union[_common_pb2.RecordingMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class UploadRecordingResponse(_message.Message):
    __slots__ = ("recording_id", "sha256", "object", "lock", "duplicate", "audio", "enqueued")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    sha256: str
    object: _common_pb2.ObjectRef
    lock: _common_pb2.LockInfo
    duplicate: bool
    audio: _common_pb2.AudioFacts
    enqueued: bool
    def __init__(self, recording_id: _Optional[str] = ..., sha256: _Optional[str] = ..., object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., lock: _Optional[_Union[_common_pb2.LockInfo, _Mapping]] = ..., duplicate: _Optional[bool] = ..., audio: _Optional[_Union[_common_pb2.AudioFacts, _Mapping]] = ..., enqueued: _Optional[bool] = ...) -> None: ...

class GetRecordingRequest(_message.Message):
    __slots__ = ("tenant", "recording_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ...) -> None: ...

class Recording(_message.Message):
    __slots__ = ("recording_id", "tenant", "metadata", "audio", "object", "lock", "tier", "state", "state_detail", "archived_at", "progress", "moved_at", "integrity", "verified_at", "integrity_detail", "tombstone", "protection")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MOVED_AT_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_DETAIL_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_FIELD_NUMBER: _ClassVar[int]
    PROTECTION_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    metadata: _common_pb2.RecordingMetadata
    audio: _common_pb2.AudioFacts
    object: _common_pb2.ObjectRef
    lock: _common_pb2.LockInfo
    tier: _common_pb2.StorageTier
    state: _common_pb2.PipelineState
    state_detail: str
    archived_at: _timestamp_pb2.Timestamp
    progress: StageProgress
    moved_at: _timestamp_pb2.Timestamp
    integrity: _common_pb2.Integrity
    verified_at: _timestamp_pb2.Timestamp
    integrity_detail: str
    tombstone: _common_pb2.Tombstone
    protection: Protection
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.RecordingMetadata, _Mapping]] = ..., audio: _Optional[_Union[_common_pb2.AudioFacts, _Mapping]] = ..., object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., lock: _Optional[_Union[_common_pb2.LockInfo, _Mapping]] = ..., tier: _Optional[_Union[_common_pb2.StorageTier, str]] = ..., state: _Optional[_Union[_common_pb2.PipelineState, str]] = ..., state_detail: _Optional[str] = ..., archived_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[_Union[StageProgress, _Mapping]] = ..., moved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., integrity: _Optional[_Union[_common_pb2.Integrity, str]] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., integrity_detail: _Optional[str] = ..., tombstone: _Optional[_Union[_common_pb2.Tombstone, _Mapping]] = ..., protection: _Optional[_Union[Protection, _Mapping]] = ...) -> None: ...

class Protection(_message.Message):
    __slots__ = ("encrypted", "scheme", "stored_sha256", "stored_size_bytes", "erased", "metadata_unavailable")
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    STORED_SHA256_FIELD_NUMBER: _ClassVar[int]
    STORED_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    METADATA_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    encrypted: bool
    scheme: str
    stored_sha256: str
    stored_size_bytes: int
    erased: bool
    metadata_unavailable: bool
    def __init__(self, encrypted: _Optional[bool] = ..., scheme: _Optional[str] = ..., stored_sha256: _Optional[str] = ..., stored_size_bytes: _Optional[int] = ..., erased: _Optional[bool] = ..., metadata_unavailable: _Optional[bool] = ...) -> None: ...

class StageProgress(_message.Message):
    __slots__ = ("stage", "done_ms", "total_ms", "eta_seconds", "chunks_done", "chunks_total")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DONE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    stage: _common_pb2.PipelineState
    done_ms: int
    total_ms: int
    eta_seconds: float
    chunks_done: int
    chunks_total: int
    def __init__(self, stage: _Optional[_Union[_common_pb2.PipelineState, str]] = ..., done_ms: _Optional[int] = ..., total_ms: _Optional[int] = ..., eta_seconds: _Optional[float] = ..., chunks_done: _Optional[int] = ..., chunks_total: _Optional[int] = ...) -> None: ...

class ListRecordingsRequest(_message.Message):
    __slots__ = ("tenant", "archived_from", "archived_to", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FROM_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_TO_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    archived_from: _timestamp_pb2.Timestamp
    archived_to: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., archived_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., archived_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRecordingsResponse(_message.Message):
    __slots__ = ("recordings", "next_page_token")
    RECORDINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    recordings: _containers.RepeatedCompositeFieldContainer[Recording]
    next_page_token: str
    def __init__(self, recordings: _Optional[_Iterable[_Union[Recording, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetLegalHoldRequest(_message.Message):
    __slots__ = ("tenant", "recording_id", "legal_hold", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    legal_hold: bool
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ..., legal_hold: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class SetLegalHoldResponse(_message.Message):
    __slots__ = ("recording_id", "lock")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    lock: _common_pb2.LockInfo
    def __init__(self, recording_id: _Optional[str] = ..., lock: _Optional[_Union[_common_pb2.LockInfo, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("recording_id", "tenant", "reason", "stage", "attempts", "failed_at", "entry_id")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    reason: str
    stage: str
    attempts: int
    failed_at: _timestamp_pb2.Timestamp
    entry_id: str
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., reason: _Optional[str] = ..., stage: _Optional[str] = ..., attempts: _Optional[int] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entry_id: _Optional[str] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("tenant", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RequeueDeadLettersRequest(_message.Message):
    __slots__ = ("tenant", "recording_id", "all")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    all: bool
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class RequeueDeadLettersResponse(_message.Message):
    __slots__ = ("recording_ids",)
    RECORDING_IDS_FIELD_NUMBER: _ClassVar[int]
    recording_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recording_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class VerifyTrailRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class TrailBreak(_message.Message):
    __slots__ = ("seq", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reason: str
    def __init__(self, seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class VerifyTrailResponse(_message.Message):
    __slots__ = ("tenant", "entries", "verified", "head_seq", "head_sha256", "first_break")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    FIRST_BREAK_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    entries: int
    verified: int
    head_seq: int
    head_sha256: str
    first_break: TrailBreak
    def __init__(self, tenant: _Optional[str] = ..., entries: _Optional[int] = ..., verified: _Optional[int] = ..., head_seq: _Optional[int] = ..., head_sha256: _Optional[str] = ..., first_break: _Optional[_Union[TrailBreak, _Mapping]] = ...) -> None: ...

class ReadTrailRequest(_message.Message):
    __slots__ = ("tenant", "last")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    last: int
    def __init__(self, tenant: _Optional[str] = ..., last: _Optional[int] = ...) -> None: ...

class TrailActor(_message.Message):
    __slots__ = ("kind", "name", "role")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    role: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class TrailEntry(_message.Message):
    __slots__ = ("seq", "time", "tenant", "actor", "action", "targets", "details_json", "prev_sha256", "sha256")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    PREV_SHA256_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    tenant: str
    actor: TrailActor
    action: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    details_json: str
    prev_sha256: str
    sha256: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ..., actor: _Optional[_Union[TrailActor, _Mapping]] = ..., action: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., details_json: _Optional[str] = ..., prev_sha256: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...
