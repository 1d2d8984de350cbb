"""What every ASR engine takes and returns, and the protocol it implements.

Engines are pure compute: a batch of 16 kHz mono float32 segments in, exactly one output per segment
out, in the same order. Batching policy, model pools and the gRPC surface live elsewhere.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
LANGUAGES = ("auto", "zh", "en")


class EngineError(Exception):
    """The engine cannot be built or used (missing model dir, bad files); the message says what to do."""


@dataclass(frozen=True)
class Hotword:
    """A domain term to favour; ``weight`` is a hint for engines that take one (ignored by the rest)."""

    text: str
    weight: float = 0.0


@dataclass(frozen=True)
class AsrInput:
    """One speech segment: float32 mono samples at 16 kHz in [-1, 1].

    An engine that packs several segments into one decoding window only packs segments with the
    same `pack_group` (the service uses tenant, request and channel: text can never cross calls).
    """

    samples: np.ndarray
    pack_group: Hashable = None


@dataclass(frozen=True)
class InferOptions:
    language: str = "auto"  # "zh" | "en" | "auto"
    hotwords: tuple[Hotword, ...] = ()
    word_timestamps: bool = False


@dataclass(frozen=True)
class TokenTime:
    """A word (or character for Chinese) with its time inside the segment."""

    text: str
    start_ms: int
    end_ms: int
    confidence: float = 0.0


@dataclass(frozen=True)
class AsrOutput:
    text: str
    language: str
    confidence: float
    avg_logprob: float
    tokens: tuple[TokenTime, ...] = ()


class Engine(Protocol):
    name: str  # "whisper" | "funasr"
    model: str  # model name or directory label
    device: str  # "cpu" | "cuda:0" ...

    def infer(self, batch: Sequence[AsrInput], options: InferOptions) -> list[AsrOutput]:
        """Exactly one output per input, same order; raises on failure (callers split to isolate bad items)."""
        ...

    def warm_up(self) -> None: ...


def as_mono_float32(samples: np.ndarray) -> np.ndarray:
    """Validate one segment's samples and return them as a contiguous float32 1-D array."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)
