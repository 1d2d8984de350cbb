"""The VAD engines behind one streaming interface, and selection by name."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from callscribe.vad.fsmn_decision import Segment, VadParams
from callscribe.vad.fsmn_model import FsmnVadModel
from callscribe.vad.silero import SileroVadModel

logger = logging.getLogger(__name__)

__all__ = ["ENGINES", "FsmnVadModel", "Segment", "SileroVadModel", "SpeechDetector", "VadParams", "load_engine"]

ENGINES = ("fsmn", "silero")


class SpeechDetector(Protocol):
    """Speech segments of one audio stream, fed incrementally."""

    def accept(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Float32 mono 16 kHz samples in [-1, 1], any block size; the segments (start_ms, end_ms) completed so far."""
        ...

    def finish(self) -> list[tuple[int, int]]:
        """End of the audio: the remaining segments."""
        ...


def load_engine(name: str, threads: int = 1) -> FsmnVadModel | SileroVadModel:
    """Load the named engine ("fsmn" or "silero") with ``threads`` onnxruntime intra-op threads."""
    key = name.strip().lower()
    if key == "fsmn":
        return FsmnVadModel(threads=threads)
    if key == "silero":
        return SileroVadModel(threads=threads)
    raise ValueError(f"unknown VAD engine {name!r}: choose one of {', '.join(ENGINES)}")
