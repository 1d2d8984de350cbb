"""The VAD core: decoded audio + channel layout -> speech segments per channel. No gRPC, no S3.

Each channel is fed block by block to its own detector (streaming, so memory stays bounded),
segments longer than the limit are split, and everything is sorted by start time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from callscribe.kit.errors import InvalidArgument

MONO = "MONO"
STEREO_AGENT_LEFT = "STEREO_AGENT_LEFT"
STEREO_AGENT_RIGHT = "STEREO_AGENT_RIGHT"
UNSPECIFIED = ""
LAYOUTS = (UNSPECIFIED, MONO, STEREO_AGENT_LEFT, STEREO_AGENT_RIGHT)

AGENT = "AGENT"
CUSTOMER = "CUSTOMER"
MIXED = "MIXED"


class SpeechDetector(Protocol):
    def accept(self, samples: np.ndarray) -> list[tuple[int, int]]: ...

    def finish(self) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class Segment:
    channel: int
    role: str
    start_ms: int
    end_ms: int
    speaker: int = 0  # diarized mono: the voice (1 heard first, 2 the other); 0 otherwise
    confidence: float = 0.0  # diarized mono: how sure the voice assignment is (0.5 to 1)


@dataclass(frozen=True)
class ChannelSpeech:
    channel: int
    role: str
    speech_ms: int
    segment_count: int


# Diarization outcomes (Diarization.status).
OFF = "OFF"
DIARIZED = "DIARIZED"


@dataclass(frozen=True)
class SpeakerSpeech:
    speaker: int
    role: str
    speech_ms: int
    segment_count: int


@dataclass(frozen=True)
class Diarization:
    status: str  # OFF, DIARIZED or MIXED
    reason: str = ""
    agent_rule: str = ""
    similarity: float = 0.0
    speakers: tuple[SpeakerSpeech, ...] = ()
    model: str = ""


NOT_DIARIZED = Diarization(OFF)


@dataclass(frozen=True)
class Detection:
    segments: list[Segment]
    channels: list[ChannelSpeech]
    diarization: Diarization = NOT_DIARIZED


def channel_roles(layout: str, channels: int) -> list[str]:
    """The speaker role of each channel; INVALID_ARGUMENT when the layout does not fit the audio."""
    if layout == UNSPECIFIED:
        if channels == 1:
            return [MIXED]
        raise InvalidArgument(
            f"the audio has {channels} channels: set channel_layout to CHANNEL_LAYOUT_STEREO_AGENT_LEFT "
            "or CHANNEL_LAYOUT_STEREO_AGENT_RIGHT so each channel gets its speaker"
        )
    expected = 1 if layout == MONO else 2
    if channels != expected:
        raise InvalidArgument(
            f"channel_layout {layout} needs {expected} channel(s) but the audio has {channels}: "
            "send the layout the recording really has"
        )
    if layout == MONO:
        return [MIXED]
    return [AGENT, CUSTOMER] if layout == STEREO_AGENT_LEFT else [CUSTOMER, AGENT]


# FSMN (like FunASR) closes a forced split one 10 ms frame past max_single_segment_ms: such a
# segment is trimmed to the limit rather than cut into two halves of ~max/2.
OVERSHOOT_TRIM_MS = 10


def split_long(start_ms: int, end_ms: int, max_ms: int) -> list[tuple[int, int]]:
    """[start, end) cut into pieces of at most `max_ms` (equal lengths, so no sliver at the end)."""
    length = end_ms - start_ms
    if length <= max_ms or max_ms <= 0:
        return [(start_ms, end_ms)]
    if length <= max_ms + OVERSHOOT_TRIM_MS:
        return [(start_ms, start_ms + max_ms)]
    pieces = -(-length // max_ms)
    cuts = [start_ms + round(length * i / pieces) for i in range(pieces + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def detect(
    blocks: Iterable[np.ndarray],
    roles: list[str],
    new_detector: Callable[[], SpeechDetector],
    max_segment_ms: int,
) -> Detection:
    """Run one detector per channel over (frames, channels) float32 16 kHz blocks."""
    detectors = [new_detector() for _ in roles]
    found: list[list[tuple[int, int]]] = [[] for _ in roles]
    for block in blocks:
        if block.ndim != 2 or block.shape[1] != len(roles):
            raise ValueError(f"block of shape {block.shape} for {len(roles)} channel(s)")
        for ch, det in enumerate(detectors):
            found[ch].extend(det.accept(np.ascontiguousarray(block[:, ch], dtype=np.float32)))
    for ch, det in enumerate(detectors):
        found[ch].extend(det.finish())
    segments: list[Segment] = []
    channels: list[ChannelSpeech] = []
    for ch, role in enumerate(roles):
        mine = [
            Segment(ch, role, s, e)
            for start, end in found[ch]
            if end > start
            for s, e in split_long(int(start), int(end), max_segment_ms)
        ]
        channels.append(ChannelSpeech(ch, role, sum(s.end_ms - s.start_ms for s in mine), len(mine)))
        segments.extend(mine)
    segments.sort(key=lambda s: (s.start_ms, s.channel, s.end_ms))
    return Detection(segments, channels)
