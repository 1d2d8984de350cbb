"""Archived records <-> the shared protobuf messages (common.proto), for both ingest programs.

The upload API answers with them; the pipeline worker builds the indexer's Call from the same record.
Only this module and the two gRPC edges (the upload servicer, the worker's runner) touch protobuf types.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from callscribe.ingest.model import SEALED_ERASED, SEALED_LOCKED, ArchivedRecording, RecordingInfo, StoredObject
from callscribe.kit.errors import InvalidArgument
from callscribe.kit.names import INTEGRITIES, LANGUAGE_NAMES, LANGUAGES, LAYOUT_NAMES
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2

_LAYOUTS = {c.CHANNEL_LAYOUT_UNSPECIFIED: "", **LAYOUT_NAMES}  # unspecified: stored as "" (not said)
_LAYOUT_ENUM = {name: value for value, name in _LAYOUTS.items()}
_LANGUAGES = {c.LANGUAGE_UNSPECIFIED: "auto", **LANGUAGE_NAMES}  # unspecified: recognise the language
_MODES = {"COMPLIANCE": c.LOCK_MODE_COMPLIANCE, "GOVERNANCE": c.LOCK_MODE_GOVERNANCE}


def info_from_proto(meta: c.RecordingMetadata, tenant: str) -> RecordingInfo:
    if meta.channel_layout not in _LAYOUTS:
        raise InvalidArgument(f"channel_layout {meta.channel_layout} is not a known value")
    if meta.language not in _LANGUAGES:
        raise InvalidArgument(f"language {meta.language} is not a known value")
    return RecordingInfo(
        tenant=tenant,
        call_id=meta.call_id,
        agent_id=meta.agent_id,
        customer_id=meta.customer_id,
        started_at=meta.started_at.ToDatetime(UTC) if meta.HasField("started_at") else None,
        channel_layout=_LAYOUTS[meta.channel_layout],
        language=_LANGUAGES[meta.language],
        hotwords=tuple((h.text, h.weight) for h in meta.hotwords),
        labels=dict(meta.labels),
        filename=meta.filename,
        zh_script=meta.zh_script,
    )


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def metadata_pb(record: ArchivedRecording) -> c.RecordingMetadata:
    info = record.info
    return c.RecordingMetadata(
        tenant=record.tenant,
        call_id=info.call_id,
        agent_id=info.agent_id,
        customer_id=info.customer_id,
        started_at=timestamp(info.started_at),
        channel_layout=_LAYOUT_ENUM.get(record.channel_layout, c.CHANNEL_LAYOUT_UNSPECIFIED),
        language=LANGUAGES[info.language],
        hotwords=[c.Hotword(text=t, weight=w) for t, w in info.hotwords],
        labels=info.labels,
        filename=info.filename,
        zh_script=info.zh_script,
    )


def protection_pb(record: ArchivedRecording) -> ingest_pb2.Protection:
    sealed = record.sealed
    if sealed is None:
        return ingest_pb2.Protection()
    return ingest_pb2.Protection(
        encrypted=True,
        scheme=sealed.scheme,
        stored_sha256=sealed.stored_sha256,
        stored_size_bytes=sealed.stored_size,
        erased=sealed.state == SEALED_ERASED,
        metadata_unavailable=sealed.state == SEALED_LOCKED,
    )


def object_pb(record: ArchivedRecording) -> c.ObjectRef:
    return c.ObjectRef() if record.object is None else object_ref_pb(record.object)


def object_ref_pb(obj: StoredObject) -> c.ObjectRef:
    return c.ObjectRef(bucket=obj.bucket, key=obj.key, version_id=obj.version_id, sha256=obj.sha256)


def lock_pb(record: ArchivedRecording) -> c.LockInfo:
    lock = record.lock
    if lock is None:
        return c.LockInfo()
    return c.LockInfo(
        mode=_MODES.get(lock.mode, c.LOCK_MODE_UNSPECIFIED),
        retain_until=timestamp(lock.retain_until),
        legal_hold=lock.legal_hold,
    )


def audio_pb(record: ArchivedRecording) -> c.AudioFacts:
    a = record.audio
    return c.AudioFacts(
        container=a.container,
        codec=a.codec,
        sample_rate_hz=a.sample_rate_hz,
        channels=a.channels,
        duration_ms=a.duration_ms,
        size_bytes=record.size_bytes,
    )


def tombstone_pb(doc: dict) -> c.Tombstone:
    def when(name: str) -> Timestamp | None:
        return timestamp(datetime.fromisoformat(doc[name])) if doc.get(name) else None

    return c.Tombstone(
        recording_id=str(doc["recording_id"]),
        tenant=str(doc["tenant"]),
        sha256=str(doc.get("sha256", "")),
        archived_at=when("archived_at"),
        retain_until=when("retain_until"),
        deleted_at=when("deleted_at"),
        reason=str(doc.get("reason", "")),
        versions_deleted=int(doc.get("versions_deleted", 0)),
    )


def audit_finding(audit: Mapping[str, str] | None) -> tuple[int, datetime, str] | None:
    """(Integrity value, verified at, detail) of the integrity audit's last finding as the lifecycle keeps it
    in Redis (integrity, verified_at as epoch seconds, detail); None when there is none."""
    if not audit or audit.get("integrity") not in INTEGRITIES or not audit.get("verified_at"):
        return None
    verified_at = datetime.fromtimestamp(float(audit["verified_at"]), UTC)
    return INTEGRITIES[audit["integrity"]], verified_at, audit.get("detail", "")
