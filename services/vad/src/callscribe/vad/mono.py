"""A mono recording's speech split into agent and customer: the VAD's `diarize` step.

After speech detection (one MIXED channel), the recording is decoded a second time, block by block: the
samples of each window (`diarize.plan_windows` over the segments) are cut out as the blocks pass, embedded
in batches by the voice encoder, and only the embeddings (1 KiB per window) are kept. So memory is a batch
of windows plus the embeddings, whatever the call's length; the time is the encoder's, about 10 ms per
second of speech on one core (RTF ~0.01 of speech), on top of the detection.

`diarize.assign` then finds the two voices (or says why not); speaker 1 (heard first) is the agent with
agent rule "first_speaker", speaker 2 with "second_speaker" (outbound calls, where the customer answers).
A call it cannot split stays MIXED with the reason (`Diarization.status` MIXED).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from callscribe.vad import diarize
from callscribe.vad.detect import AGENT, CUSTOMER, DIARIZED, MIXED, Detection, Diarization, Segment, SpeakerSpeech
from callscribe.vad.voice import MODEL_NAME, SAMPLE_RATE, VoiceEncoder

log = logging.getLogger(__name__)

AGENT_RULES = ("first_speaker", "second_speaker")


@dataclass(frozen=True)
class DiarizeConfig:
    """What the service's settings say about diarization (picklable: it goes to the worker processes)."""

    enabled: bool = True
    agent_rule: str = "first_speaker"
    params: diarize.DiarizeParams = field(default_factory=diarize.DiarizeParams)


def window_samples(blocks: Iterable[np.ndarray], windows: Sequence[diarize.Window]) -> Iterator[np.ndarray]:
    """The samples of each of `windows` (in time order, not overlapping), cut from (frames, 1) 16 kHz blocks
    as they pass; a window past the end of the audio gets what there is (maybe nothing)."""
    per_ms = SAMPLE_RATE // 1000
    pending = iter(windows)
    current = next(pending, None)
    parts: list[np.ndarray] = []
    offset = 0
    for block in blocks:
        x = block[:, 0]
        end = offset + len(x)
        while current is not None:
            lo, hi = current.start_ms * per_ms, current.end_ms * per_ms
            if lo >= end:
                break
            parts.append(x[max(lo, offset) - offset : min(hi, end) - offset].copy())
            if hi > end:
                break
            yield np.concatenate(parts) if len(parts) > 1 else parts[0]
            parts = []
            current = next(pending, None)
        offset = end
    while current is not None:
        yield np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        parts = []
        current = next(pending, None)


def embed_windows(encoder: VoiceEncoder, blocks: Iterable[np.ndarray], windows: Sequence[diarize.Window]) -> np.ndarray:
    """(len(windows), 256) embeddings, computed a batch at a time while the audio streams past."""
    out = np.zeros((len(windows), 256), dtype=np.float32)
    batch: list[np.ndarray] = []
    done = 0
    for samples in window_samples(blocks, windows):
        batch.append(samples)
        if len(batch) == encoder.batch:
            out[done : done + len(batch)] = encoder.embed(batch)
            done += len(batch)
            batch = []
    if batch:
        out[done : done + len(batch)] = encoder.embed(batch)
    return out


def split_speakers(
    detection: Detection, blocks: Iterable[np.ndarray], encoder: VoiceEncoder, config: DiarizeConfig
) -> Detection:
    """`detection` of a mono recording with its segments given to the two voices, or left MIXED with the reason.

    `blocks` is a fresh pass over the same audio (16 kHz, one channel)."""
    segments = [(s.start_ms, s.end_ms) for s in detection.segments]
    windows = diarize.plan_windows(segments, config.params.window_ms)
    speech_ms = sum(w.length_ms for w in windows)
    if speech_ms < config.params.min_speech_ms:  # no need to read the audio again
        result = diarize.assign(windows, np.zeros((len(windows), 256), dtype=np.float32), config.params)
    else:
        result = diarize.assign(windows, embed_windows(encoder, blocks, windows), config.params)
    if not result.diarized:
        return Detection(
            detection.segments,
            detection.channels,
            Diarization(MIXED, result.reason, "", result.similarity, (), MODEL_NAME),
        )
    agent = 1 if config.agent_rule == "first_speaker" else 2
    role = {agent: AGENT, 3 - agent: CUSTOMER}
    channel = detection.segments[0].channel if detection.segments else 0
    new = [Segment(channel, role[t.speaker], t.start_ms, t.end_ms, t.speaker, t.confidence) for t in result.turns]
    speakers = tuple(
        SpeakerSpeech(k, role[k], result.speaker_ms[k - 1], sum(1 for s in new if s.speaker == k)) for k in (1, 2)
    )
    return Detection(
        new, detection.channels, Diarization(DIARIZED, "", config.agent_rule, result.similarity, speakers, MODEL_NAME)
    )
