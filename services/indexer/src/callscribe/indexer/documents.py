"""Call <-> Elasticsearch documents (shapes in `mappings.py`), both ways.

Pure functions, no I/O. Enums are stored by name, times as ISO-8601 UTC with milliseconds, float32
values by their shortest decimal form (0.1, not 0.10000000149011612). Absent values (empty strings,
unset times) are left out of the document rather than stored empty.

Not stored, so not returned by the way back: utterance tokens (word times) and hotwords.

Each text field that search matches has its Simplified form beside it (`<name>_simplified`,
`callscribe.indexer.script.fold`) where that differs from the text, for script-insensitive search.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from callscribe.indexer.mappings import CALL_TEXT_FIELDS, UTTERANCE_TEXT_FIELDS, folded
from callscribe.indexer.script import fold
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- values


def float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (proto `float` fields)."""
    if value != value or value in (float("inf"), float("-inf")):
        return value
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return float(value)


def iso(ts: Timestamp) -> str:
    """A Timestamp as ISO-8601 UTC with milliseconds (Elasticsearch `date` keeps milliseconds)."""
    moment = _EPOCH + timedelta(seconds=ts.seconds, milliseconds=ts.nanos // 1_000_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_plus_ms(ts: Timestamp, offset_ms: int) -> str:
    moment = _EPOCH + timedelta(seconds=ts.seconds, milliseconds=ts.nanos // 1_000_000 + offset_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timestamp(value: Any) -> Timestamp | None:
    """An Elasticsearch date (ISO string or epoch milliseconds) as a Timestamp."""
    if value is None or value == "":
        return None
    ts = Timestamp()
    if isinstance(value, int | float):
        ts.FromMilliseconds(int(value))
    else:
        ts.FromJsonString(str(value))
    return ts


def _enum_name(enum_type: Any, value: int) -> str:
    return str(enum_type.Name(value))


def _enum_value(enum_type: Any, name: Any) -> int:
    if not name:
        return 0
    try:
        return int(enum_type.Value(str(name)))
    except ValueError:
        return 0  # a name this version does not know reads as UNSPECIFIED


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` without None and "" values (nested dicts too; an emptied dict goes as well)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and key != "labels":
            value = _compact(value)
            if not value:
                continue
        if value is None or value == "":
            continue
        out[key] = value
    return out


# --------------------------------------------------------------------------- proto <-> JSON, field for field


def message_to_doc(message: Message) -> dict[str, Any]:
    """Every field of `message` under its proto name: enums by name, float32 shortest, nested messages as objects.

    Unlike json_format, 64-bit integers stay numbers and scalars at their default value are kept
    (0 interruptions is a fact, not an absence); unset nested messages are left out.
    """
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated and not message.HasField(field.name):
            continue  # an unset part (e.g. no QA result) stays absent
        value = getattr(message, field.name)
        if field.is_repeated:
            out[field.name] = [_field_value(field, item) for item in value]
        else:
            out[field.name] = _field_value(field, value)
    return out


def _field_value(field: Any, value: Any) -> Any:  # a FieldDescriptor (python or upb)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_doc(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name if value in field.enum_type.values_by_number else ""
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return float32(value)
    return value


def doc_to_message(doc: Mapping[str, Any], message: Message) -> Message:
    """Fill `message` from a document written by `message_to_doc`; unknown keys are ignored."""
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in doc.items():
        field = fields.get(key)
        if field is None or value is None:
            continue
        if field.is_repeated:
            target = getattr(message, key)
            items = value if isinstance(value, list) else [value]
            for item in items:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    doc_to_message(item, target.add())
                else:
                    target.append(_scalar(field, item))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            doc_to_message(value, getattr(message, key))
        else:
            setattr(message, key, _scalar(field, value))
    return message


def _scalar(field: Any, value: Any) -> Any:  # a FieldDescriptor (python or upb)
    if field.type == FieldDescriptor.TYPE_ENUM:
        number = field.enum_type.values_by_name.get(str(value))
        return number.number if number is not None else 0
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return float(value)
    if field.type == FieldDescriptor.TYPE_STRING:
        return str(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return bool(value)
    return int(value)


# --------------------------------------------------------------------------- the call document


def utterance_id(recording_id: str, channel: int, start_ms: int) -> str:
    return f"{recording_id}:{channel}:{start_ms}"


def ordered_utterances(call: pb.Call) -> list[pb.Utterance]:
    return sorted(call.utterances, key=lambda u: (u.start_ms, u.channel))


def shown_text(utterance: pb.Utterance) -> str:
    """What a person reads: the normalized text where there is one, else the recognized text."""
    return utterance.normalized_text or utterance.text


def call_language(call: pb.Call) -> int:
    """The declared language; where it was left to detection (auto/unset), the utterances' most common one."""
    declared = call.metadata.language
    if declared in (c.LANGUAGE_ZH, c.LANGUAGE_EN):
        return declared
    detected = Counter(u.language for u in call.utterances if u.language in (c.LANGUAGE_ZH, c.LANGUAGE_EN))
    return detected.most_common(1)[0][0] if detected else declared


def _joined(texts: Iterable[str]) -> str:
    return "\n".join(t for t in texts if t)


def _add_folded(doc: dict[str, Any], fields: Iterable[str]) -> None:
    """`<field>_simplified` for each of `fields` whose Simplified form differs from its text (None otherwise)."""
    for name in fields:
        text = doc.get(name)
        simplified = fold(text) if isinstance(text, str) else None
        doc[folded(name)] = simplified if simplified != text else None


def call_document(call: pb.Call) -> dict[str, Any]:
    """The call document (id = recording_id). Analytics fields come from `call.analytics`."""
    meta, audio, obj = call.metadata, call.audio, call.object
    utterances = ordered_utterances(call)
    hits = call.analytics.keyword_hits
    doc: dict[str, Any] = {
        "recording_id": call.recording_id,
        "tenant": call.tenant,
        "call_id": meta.call_id,
        "agent_id": meta.agent_id,
        "customer_id": meta.customer_id,
        "started_at": iso(meta.started_at) if meta.HasField("started_at") else None,
        "language": _enum_name(c.Language, call_language(call)),
        "channel_layout": _enum_name(c.ChannelLayout, meta.channel_layout),
        "labels": dict(meta.labels) or None,
        "filename": meta.filename,
        "sha256": obj.sha256,
        "object": {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id},
        "tier": _enum_name(c.StorageTier, call.tier),
        "moved_at": iso(call.moved_at) if call.HasField("moved_at") else None,
        "integrity": _enum_name(c.Integrity, call.integrity) if call.integrity else None,
        "verified_at": iso(call.verified_at) if call.HasField("verified_at") else None,
        "audio": {
            "container": audio.container,
            "codec": audio.codec,
            "sample_rate_hz": audio.sample_rate_hz,
            "channels": audio.channels,
            "duration_ms": audio.duration_ms,
            "size_bytes": audio.size_bytes,
        },
        "duration_ms": audio.duration_ms,
        "transcript": _joined(u.text for u in utterances),
        "transcript_agent": _joined(shown_text(u) for u in utterances if u.role == c.SPEAKER_ROLE_AGENT),
        "transcript_customer": _joined(shown_text(u) for u in utterances if u.role == c.SPEAKER_ROLE_CUSTOMER),
        "transcript_normalized": _joined(shown_text(u) for u in utterances),
        "utterance_count": len(utterances),
        "indexed_at": iso(call.indexed_at) if call.HasField("indexed_at") else None,
        "analytics": message_to_doc(call.analytics) if call.HasField("analytics") else None,
        "keywords": sorted({h.phrase for h in hits if h.phrase}) or None,
        "keyword_lists": sorted({h.list for h in hits if h.list}) or None,
        "diarization": message_to_doc(call.diarization) if call.HasField("diarization") else None,
    }
    _add_folded(doc, CALL_TEXT_FIELDS)
    return _compact(doc)


def utterance_documents(call: pb.Call) -> list[dict[str, Any]]:
    """One document per utterance, in call order; each has `_id` (`<recording_id>:<channel>:<start_ms>`)
    next to its fields (`split_id` takes it out)."""
    meta = call.metadata
    started = meta.started_at if meta.HasField("started_at") else None
    docs = []
    for u in ordered_utterances(call):
        doc = {
            "_id": utterance_id(call.recording_id, u.channel, u.start_ms),
            "recording_id": call.recording_id,
            "tenant": call.tenant,
            "call_id": meta.call_id,
            "agent_id": meta.agent_id,
            "started_at": iso(started) if started is not None else None,
            "at": iso_plus_ms(started, u.start_ms) if started is not None else None,
            "channel": u.channel,
            "role": _enum_name(c.SpeakerRole, u.role),
            "start_ms": u.start_ms,
            "end_ms": u.end_ms,
            "text": u.text,
            "normalized_text": u.normalized_text,
            "language": _enum_name(c.Language, u.language),
            "engine": u.engine,
            "confidence": float32(u.confidence),
            "sentiment": float32(u.sentiment),
            "speaker": u.speaker or None,  # diarized mono calls only
            "role_confidence": float32(u.role_confidence) if u.speaker else None,
        }
        _add_folded(doc, UTTERANCE_TEXT_FIELDS)
        docs.append(_compact(doc))
    return docs


def storage_fields(request: pb.UpdateStorageRequest) -> dict[str, Any]:
    """The call document's fields an UpdateStorage request changes (the `doc` of a partial update): the audio's new
    location (`object`, `tier`, `moved_at`) and/or the integrity audit's finding (`integrity`, `verified_at`).

    `sha256` is not among them: a move keeps the fingerprint (the servicer checks it is the stored one). A new
    location without a version id writes `object.version_id` as null, so the old location's does not survive the
    merge of the partial update."""
    fields: dict[str, Any] = {}
    if request.HasField("object"):
        obj = request.object
        fields["object"] = {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id or None}
        fields["tier"] = _enum_name(c.StorageTier, request.tier)
        fields["moved_at"] = iso(request.moved_at)
    if request.integrity:
        fields["integrity"] = _enum_name(c.Integrity, request.integrity)
        fields["verified_at"] = iso(request.verified_at)
    return fields


def split_id(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body = dict(doc)
    return str(body.pop("_id")), body


def bulk_actions(call: pb.Call, calls_index: str, utterances_index: str) -> list[dict[str, Any]]:
    """The call's documents as `elasticsearch.helpers.bulk` actions (utterances first, the call last)."""
    actions: list[dict[str, Any]] = []
    for doc in utterance_documents(call):
        doc_id, body = split_id(doc)
        actions.append({"_op_type": "index", "_index": utterances_index, "_id": doc_id, "_source": body})
    actions.append(
        {"_op_type": "index", "_index": calls_index, "_id": call.recording_id, "_source": call_document(call)}
    )
    return actions


# --------------------------------------------------------------------------- the way back


def utterance_from_doc(doc: Mapping[str, Any]) -> pb.Utterance:
    return pb.Utterance(
        channel=int(doc.get("channel", 0)),
        role=_enum_value(c.SpeakerRole, doc.get("role")),
        start_ms=int(doc.get("start_ms", 0)),
        end_ms=int(doc.get("end_ms", 0)),
        text=str(doc.get("text", "")),
        normalized_text=str(doc.get("normalized_text", "")),
        confidence=float(doc.get("confidence", 0.0)),
        language=_enum_value(c.Language, doc.get("language")),
        engine=str(doc.get("engine", "")),
        sentiment=float(doc.get("sentiment", 0.0)),
        speaker=int(doc.get("speaker", 0)),
        role_confidence=float(doc.get("role_confidence", 0.0)),
    )


def analytics_from_doc(doc: Mapping[str, Any]) -> pb.CallAnalytics:
    analytics = pb.CallAnalytics()
    if doc.get("analytics"):
        doc_to_message(doc["analytics"], analytics)
    return analytics


def call_from_docs(doc: Mapping[str, Any], utterance_docs: Iterable[Mapping[str, Any]]) -> pb.Call:
    """The Call of a call document and its utterance documents (any order)."""
    obj = doc.get("object") or {}
    audio = doc.get("audio") or {}
    call = pb.Call(
        recording_id=str(doc.get("recording_id", "")),
        tenant=str(doc.get("tenant", "")),
        metadata=c.RecordingMetadata(
            tenant=str(doc.get("tenant", "")),
            call_id=str(doc.get("call_id", "")),
            agent_id=str(doc.get("agent_id", "")),
            customer_id=str(doc.get("customer_id", "")),
            started_at=timestamp(doc.get("started_at")),
            channel_layout=_enum_value(c.ChannelLayout, doc.get("channel_layout")),
            language=_enum_value(c.Language, doc.get("language")),
            labels={str(k): str(v) for k, v in (doc.get("labels") or {}).items()},
            filename=str(doc.get("filename", "")),
        ),
        audio=c.AudioFacts(
            container=str(audio.get("container", "")),
            codec=str(audio.get("codec", "")),
            sample_rate_hz=int(audio.get("sample_rate_hz", 0)),
            channels=int(audio.get("channels", 0)),
            duration_ms=int(audio.get("duration_ms", doc.get("duration_ms", 0))),
            size_bytes=int(audio.get("size_bytes", 0)),
        ),
        object=c.ObjectRef(  # null: cleared by a move to a location without it (`storage_fields`)
            bucket=str(obj.get("bucket") or ""),
            key=str(obj.get("key") or ""),
            version_id=str(obj.get("version_id") or ""),
            sha256=str(doc.get("sha256", "")),
        ),
        tier=_enum_value(c.StorageTier, doc.get("tier")),
        indexed_at=timestamp(doc.get("indexed_at")),
        moved_at=timestamp(doc.get("moved_at")),
        integrity=_enum_value(c.Integrity, doc.get("integrity")),
        verified_at=timestamp(doc.get("verified_at")),
    )
    if doc.get("analytics"):
        call.analytics.CopyFrom(analytics_from_doc(doc))
    if doc.get("diarization"):
        doc_to_message(doc["diarization"], call.diarization)
    utterances = sorted(utterance_docs, key=lambda u: (int(u.get("start_ms", 0)), int(u.get("channel", 0))))
    call.utterances.extend(utterance_from_doc(u) for u in utterances)
    return call


def call_hit_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The CallHit fields a call document gives (not score or utterances)."""
    fields: dict[str, Any] = {
        "recording_id": str(doc.get("recording_id", "")),
        "call_id": str(doc.get("call_id", "")),
        "agent_id": str(doc.get("agent_id", "")),
        "duration_ms": int(doc.get("duration_ms", 0)),
    }
    started = timestamp(doc.get("started_at"))
    if started is not None:
        fields["started_at"] = started
    if doc.get("analytics"):
        fields["analytics"] = analytics_from_doc(doc)
    return fields
