"""Checks of IndexCall's call and of UpdateStorage's request before anything is written: INVALID_ARGUMENT naming
what a person must fix."""

from __future__ import annotations

import math
import re

from google.protobuf.timestamp_pb2 import Timestamp

from callscribe.kit.errors import InvalidArgument
from callscribe.kit.ids import is_recording_id, not_a_recording_id
from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

MAX_ID_CHARS = 256  # call_id, agent_id, customer_id (as ingest)
MAX_LABELS = 64
MAX_TEXT_CHARS = 20_000  # one utterance (segments are at most 30 s of speech)
MAX_UTTERANCES = 20_000
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# What a Timestamp may hold (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z), as protobuf's JSON form.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def check_recording_id(value: str, name: str = "recording_id") -> None:
    """Ingest's recording ids (32 lowercase hex characters) and nothing else, with ingest's message: a malformed id
    is INVALID_ARGUMENT on both services, a well-formed unknown one NOT_FOUND. (They become document ids, and parts
    of utterance ids joined by ':'.)"""
    if not is_recording_id(value):
        raise InvalidArgument(not_a_recording_id(value, name))


def _check_enum(name: str, value: int, enum: object) -> None:
    if value not in enum.values():  # type: ignore[attr-defined]
        raise InvalidArgument(f"{name} {value} is not a known value")


def check_call(call: pb.Call) -> None:
    """The call as the pipeline sends it: ids, metadata, and utterances that make sense."""
    check_recording_id(call.recording_id, "call.recording_id")
    meta = call.metadata
    for name in ("call_id", "agent_id", "customer_id"):
        value = getattr(meta, name)
        if len(value) > MAX_ID_CHARS:
            raise InvalidArgument(f"metadata.{name} is {len(value)} characters; at most {MAX_ID_CHARS}")
    _check_enum("metadata.channel_layout", meta.channel_layout, c.ChannelLayout)
    _check_enum("metadata.language", meta.language, c.Language)
    _check_enum("tier", call.tier, c.StorageTier)
    _check_enum("integrity", call.integrity, c.Integrity)
    for name in ("moved_at", "verified_at"):
        if call.HasField(name):
            check_timestamp(name, getattr(call, name))
    if meta.zh_script and meta.zh_script not in ZH_SCRIPTS:
        raise InvalidArgument(f"metadata.zh_script {meta.zh_script!r} unknown; use one of {', '.join(ZH_SCRIPTS)}")
    if len(meta.labels) > MAX_LABELS:
        raise InvalidArgument(f"{len(meta.labels)} labels; at most {MAX_LABELS} per recording")
    if call.object.sha256 and not SHA256_RE.fullmatch(call.object.sha256):
        raise InvalidArgument("object.sha256 must be 64 lowercase hex characters")
    if len(call.utterances) > MAX_UTTERANCES:
        raise InvalidArgument(f"{len(call.utterances)} utterances; at most {MAX_UTTERANCES} per call")
    seen: set[tuple[int, int]] = set()
    channels = call.audio.channels
    duration = call.audio.duration_ms
    for i, u in enumerate(call.utterances):
        where = f"utterances[{i}] (channel {u.channel}, {u.start_ms}-{u.end_ms} ms)"
        if u.end_ms < u.start_ms:
            raise InvalidArgument(f"{where}: end_ms is before start_ms")
        if channels and u.channel >= channels:
            raise InvalidArgument(f"{where}: channel {u.channel} but the audio has {channels} channel(s)")
        if duration and u.start_ms > duration:
            raise InvalidArgument(f"{where}: starts after the end of the audio ({duration} ms)")
        _check_enum(f"{where}: role", u.role, c.SpeakerRole)
        _check_enum(f"{where}: language", u.language, c.Language)
        if (u.channel, u.start_ms) in seen:
            raise InvalidArgument(f"{where}: two utterances on channel {u.channel} start at {u.start_ms} ms")
        seen.add((u.channel, u.start_ms))
        if len(u.text) > MAX_TEXT_CHARS:
            raise InvalidArgument(f"{where}: text is {len(u.text)} characters; at most {MAX_TEXT_CHARS}")
        if not math.isfinite(u.confidence):
            raise InvalidArgument(f"{where}: confidence is not a number")


def check_timestamp(name: str, ts: Timestamp) -> None:
    """A time Elasticsearch and protobuf can both hold (years 1 to 9999, nanos 0 to 999,999,999)."""
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS or not 0 <= ts.nanos <= 999_999_999:
        raise InvalidArgument(f"{name} is not a valid time (seconds {ts.seconds}, nanos {ts.nanos})")


def check_update_storage(request: pb.UpdateStorageRequest) -> None:
    """UpdateStorage's request: a recording id, and one or both groups complete. A move: `object` (bucket, key,
    the SHA-256 it was stored with), `tier` (HOT or COLD) and `moved_at`; an audit: `integrity` and `verified_at`."""
    check_recording_id(request.recording_id)
    moved = request.HasField("object")
    audited = request.integrity != c.INTEGRITY_UNSPECIFIED
    if not moved and (request.tier != c.STORAGE_TIER_UNSPECIFIED or request.HasField("moved_at")):
        raise InvalidArgument("tier and moved_at come with object (where the audio is now): set all three")
    if not audited and request.HasField("verified_at"):
        raise InvalidArgument("verified_at comes with integrity (what the audit found): set both")
    if not moved and not audited:
        raise InvalidArgument(
            "nothing to update: set object, tier and moved_at (the audio moved) and/or integrity and verified_at "
            "(the integrity audit ran)"
        )
    if moved:
        obj = request.object
        if not obj.bucket or not obj.key:
            raise InvalidArgument("object.bucket and object.key are required: where the audio is now")
        if not SHA256_RE.fullmatch(obj.sha256):
            raise InvalidArgument(
                "object.sha256 must be the recording's SHA-256 (64 lowercase hex characters): a move keeps it"
            )
        _check_enum("tier", request.tier, c.StorageTier)
        if request.tier == c.STORAGE_TIER_UNSPECIFIED:
            raise InvalidArgument("tier is required with object: STORAGE_TIER_HOT or STORAGE_TIER_COLD")
        if not request.HasField("moved_at"):
            raise InvalidArgument("moved_at is required with object: when the audio moved")
        check_timestamp("moved_at", request.moved_at)
    if audited:
        _check_enum("integrity", request.integrity, c.Integrity)
        if not request.HasField("verified_at"):
            raise InvalidArgument("verified_at is required with integrity: when the audit re-hashed the copies")
        check_timestamp("verified_at", request.verified_at)


MAX_PREVIEW_CHARS = 10_000
_PREVIEW_LANGUAGES = {c.LANGUAGE_ZH: "zh", c.LANGUAGE_EN: "en"}


def check_preview(request: pb.PreviewRedactionRequest) -> str:
    """The language code ("zh" or "en") of a PreviewRedaction request whose text can be checked."""
    language = _PREVIEW_LANGUAGES.get(request.language)
    if language is None:
        name = c.Language.Name(request.language) if request.language in c.Language.values() else request.language
        raise InvalidArgument(
            f"language must be LANGUAGE_ZH or LANGUAGE_EN, got {name} "
            "(callscribe redact: --language zh or --language en; PII cues and spoken digits differ by language)"
        )
    if not request.text.strip():
        raise InvalidArgument("text is empty: give the text to check (callscribe redact --language zh|en TEXT)")
    if len(request.text) > MAX_PREVIEW_CHARS:
        raise InvalidArgument(f"text is {len(request.text)} characters; at most {MAX_PREVIEW_CHARS}")
    return language
