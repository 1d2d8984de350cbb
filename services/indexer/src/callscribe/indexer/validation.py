"""Checks of IndexCall's call before anything is written: INVALID_ARGUMENT naming what a person must fix."""

from __future__ import annotations

import math
import re

from callscribe.kit.errors import InvalidArgument
from callscribe.kit.ids import is_recording_id, not_a_recording_id
from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as pb

MAX_ID_CHARS = 256  # call_id, agent_id, customer_id (as ingest)
MAX_LABELS = 64
MAX_TEXT_CHARS = 20_000  # one utterance (segments are at most 30 s of speech)
MAX_UTTERANCES = 20_000


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
    if meta.zh_script and meta.zh_script not in ZH_SCRIPTS:
        raise InvalidArgument(f"metadata.zh_script {meta.zh_script!r} unknown; use one of {', '.join(ZH_SCRIPTS)}")
    if len(meta.labels) > MAX_LABELS:
        raise InvalidArgument(f"{len(meta.labels)} labels; at most {MAX_LABELS} per recording")
    if call.object.sha256 and not re.fullmatch(r"[0-9a-f]{64}", call.object.sha256):
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
