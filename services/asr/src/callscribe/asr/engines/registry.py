"""Build an ASR engine by name: ``whisper`` (faster-whisper) or ``funasr`` (Paraformer, SenseVoice)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from callscribe.asr.engines.base import Engine

log = logging.getLogger(__name__)

ENGINES = ("whisper", "funasr")
WHISPER_BASE_NAMES = ("base", "whisper-base")


PRECISIONS = ("auto", "fp32", "fp16", "bf16")
WHISPER_COMPUTE_TYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def load_engine(
    name: str,
    model: str,
    device: str,
    threads: int,
    cache_dir: Path,
    *,
    batch_size: int = 16,
    precision: str = "auto",
) -> Engine:
    """``whisper``: model "base" (assembled from the installed packages into ``cache_dir``) or a model dir;
    ``funasr``: a local FunASR model dir, run in batches of up to ``batch_size`` (the batcher's size).

    ``precision`` "auto": Whisper int8 on the CPU and float16 on CUDA, FunASR fp32; otherwise fp32,
    fp16 or bf16 (Whisper: the CTranslate2 compute type; FunASR: autocast on the batched path)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    key = name.strip().lower()
    if key == "whisper":
        from callscribe.asr.engines.whisper import WhisperEngine, ensure_whisper_base_dir

        model_dir = ensure_whisper_base_dir(cache_dir) if model in WHISPER_BASE_NAMES else Path(model)
        if precision == "auto":
            compute_type = "int8" if device == "cpu" else "float16"
        else:
            compute_type = WHISPER_COMPUTE_TYPES[precision]
        return WhisperEngine(model_dir, device=device, compute_type=compute_type, threads=threads)
    if key == "funasr":
        from callscribe.asr.engines.funasr_engine import FunasrEngine

        return FunasrEngine(
            Path(model),
            device=device,
            threads=threads,
            batch_size=batch_size,
            precision="fp32" if precision == "auto" else precision,
        )
    raise ValueError(f"unknown ASR engine {name!r}: choose one of {', '.join(ENGINES)}")


def batch_cost(name: str) -> Callable[[Sequence[int]], int] | None:
    """How the batcher counts a batch for engine ``name``: ``whisper`` packs a call channel's segments
    into 30 s windows, so it counts windows; None (every segment one slot) for the rest."""
    if name.strip().lower() == "whisper":
        from callscribe.asr.engines.whisper import window_count

        return window_count
    return None
