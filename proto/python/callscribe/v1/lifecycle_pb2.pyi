import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from callscribe.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EraseRecordingRequest(_message.Message):
    __slots__ = ("tenant", "recording_id", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseCustomerRequest(_message.Message):
    __slots__ = ("tenant", "customer_id", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer_id: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., customer_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseCustomerResponse(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[ErasureReceipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[ErasureReceipt, _Mapping]]] = ...) -> None: ...

class ErasureReceipt(_message.Message):
    __slots__ = ("tenant", "recording_id", "sha256", "stored_sha256", "key_ids", "requested_by", "erased_at", "reason", "documents_deleted", "receipt")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STORED_SHA256_FIELD_NUMBER: _ClassVar[int]
    KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    ERASED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    sha256: str
    stored_sha256: str
    key_ids: _containers.RepeatedScalarFieldContainer[str]
    requested_by: str
    erased_at: _timestamp_pb2.Timestamp
    reason: str
    documents_deleted: int
    receipt: str
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ..., sha256: _Optional[str] = ..., stored_sha256: _Optional[str] = ..., key_ids: _Optional[_Iterable[str]] = ..., requested_by: _Optional[str] = ..., erased_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., documents_deleted: _Optional[int] = ..., receipt: _Optional[str] = ...) -> None: ...

class RunTieringRequest(_message.Message):
    __slots__ = ("tenant", "older_than_days", "limit")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_DAYS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    older_than_days: float
    limit: int
    def __init__(self, tenant: _Optional[str] = ..., older_than_days: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class TieringEvent(_message.Message):
    __slots__ = ("recording_id", "tenant", "outcome", "detail", "object", "size_bytes", "retain_until")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[TieringEvent.Outcome]
        OUTCOME_MOVED: _ClassVar[TieringEvent.Outcome]
        OUTCOME_HOT_LOCK_EXTENDED: _ClassVar[TieringEvent.Outcome]
        OUTCOME_HOT_RELEASED: _ClassVar[TieringEvent.Outcome]
        OUTCOME_FAILED: _ClassVar[TieringEvent.Outcome]
        OUTCOME_BUSY: _ClassVar[TieringEvent.Outcome]
    OUTCOME_UNSPECIFIED: TieringEvent.Outcome
    OUTCOME_MOVED: TieringEvent.Outcome
    OUTCOME_HOT_LOCK_EXTENDED: TieringEvent.Outcome
    OUTCOME_HOT_RELEASED: TieringEvent.Outcome
    OUTCOME_FAILED: TieringEvent.Outcome
    OUTCOME_BUSY: TieringEvent.Outcome
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    outcome: TieringEvent.Outcome
    detail: str
    object: _common_pb2.ObjectRef
    size_bytes: int
    retain_until: _timestamp_pb2.Timestamp
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., outcome: _Optional[_Union[TieringEvent.Outcome, str]] = ..., detail: _Optional[str] = ..., object: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., size_bytes: _Optional[int] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunAuditRequest(_message.Message):
    __slots__ = ("tenant", "recording_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recording_id: str
    def __init__(self, tenant: _Optional[str] = ..., recording_id: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("recording_id", "tenant", "integrity", "detail", "bytes_hashed", "verified_at")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    BYTES_HASHED_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    integrity: _common_pb2.Integrity
    detail: str
    bytes_hashed: int
    verified_at: _timestamp_pb2.Timestamp
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., integrity: _Optional[_Union[_common_pb2.Integrity, str]] = ..., detail: _Optional[str] = ..., bytes_hashed: _Optional[int] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunExpiryRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ExpiryEvent(_message.Message):
    __slots__ = ("recording_id", "tenant", "tombstone", "detail")
    RECORDING_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    recording_id: str
    tenant: str
    tombstone: _common_pb2.Tombstone
    detail: str
    def __init__(self, recording_id: _Optional[str] = ..., tenant: _Optional[str] = ..., tombstone: _Optional[_Union[_common_pb2.Tombstone, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...
