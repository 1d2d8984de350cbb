"""Our FSMN-VAD (onnxruntime, own front end and state machine) against FunASR's own pipeline.

FunASR's AutoModel runs the same network in torch with FunASR's front end and decision code; both get
the same parameters. A boundary agrees when the other side has a boundary of the same kind (start or
end) within 20 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from callscribe.vad.engines import FsmnVadModel, VadParams
from callscribe.vad.fsmn_model import default_model_dir

from .test_engines import Recording, corpus_or_skip, run_detector

TOLERANCE_MS = 20
MIN_AGREEMENT = 0.95

# (our params, the same for FunASR). FunASR 1.4 switches to a "dynamic silence" schedule (and a speech
# threshold of 0.5) unless max_end_silence_time is passed explicitly, so it always is.
SETTINGS = {
    "defaults": (
        VadParams(max_single_segment_ms=30000, max_end_silence_ms=800, speech_noise_threshold=0.6),
        {"max_end_silence_time": 800, "speech_noise_thres": 0.6},
    ),
    "short-silence-strict": (
        VadParams(max_single_segment_ms=30000, max_end_silence_ms=400, speech_noise_threshold=0.8),
        {"max_end_silence_time": 400, "speech_noise_thres": 0.8},
    ),
}


@pytest.fixture(scope="session")
def funasr_vad() -> Any:
    try:
        from funasr import AutoModel
    except ImportError as exc:
        pytest.skip(f"funasr is not importable ({exc}); it is only needed for this comparison")
    return AutoModel(
        model=str(default_model_dir()),
        disable_update=True,
        disable_pbar=True,
        disable_log=True,
        device="cpu",
        ncpu=1,
        max_single_segment_time=30000,  # a model option: fixed for the AutoModel's lifetime
    )


@pytest.fixture(scope="session")
def fsmn() -> FsmnVadModel:
    return FsmnVadModel()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    return corpus_or_skip(tmp_path_factory)


@dataclass(frozen=True)
class Miss:
    recording: str
    kind: str
    value: int
    nearest: int | None  # the other side's nearest boundary of the same kind

    def __str__(self) -> str:
        gap = "none" if self.nearest is None else f"{self.nearest} ({self.nearest - self.value:+d} ms)"
        return f"{self.recording}: {self.kind} {self.value} -> nearest {gap}"


def _misses(name: str, side: str, ours: list[int], theirs: list[int], kind: str) -> tuple[list[Miss], list[int]]:
    misses, offsets = [], []
    for value in ours:
        nearest = min(theirs, key=lambda b: abs(b - value)) if theirs else None
        offset = None if nearest is None else abs(nearest - value)
        if offset is not None:
            offsets.append(offset)
        if offset is None or offset > TOLERANCE_MS:
            misses.append(Miss(name, f"{side} {kind}", value, nearest))
    return misses, offsets


def compare(name: str, ours: list[tuple[int, int]], ref: list[tuple[int, int]]) -> tuple[int, list[Miss], list[int]]:
    """Boundaries counted from both sides: each of FunASR's and each of ours must have a partner."""
    misses: list[Miss] = []
    offsets: list[int] = []
    for index, kind in enumerate(("start", "end")):
        mine, theirs = [s[index] for s in ours], [s[index] for s in ref]
        for side, a, b in (("funasr", theirs, mine), ("ours", mine, theirs)):
            m, o = _misses(name, side, a, b, kind)
            misses += m
            offsets += o
    return 2 * (len(ours) + len(ref)), misses, offsets


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_boundaries_agree_with_funasr(
    setting: str, funasr_vad: Any, fsmn: FsmnVadModel, corpus: dict[str, Recording]
) -> None:
    params, funasr_kwargs = SETTINGS[setting]
    total = 0
    misses: list[Miss] = []
    offsets: list[int] = []
    lines: list[str] = []
    for name, rec in corpus.items():
        result = funasr_vad.generate(input=str(rec.path), **funasr_kwargs)[0]["value"]
        ref = [(int(start), int(end)) for start, end in result]
        ours = run_detector(fsmn.stream(params), rec.samples, 16000)
        count, m, o = compare(name, ours, ref)
        total, misses, offsets = total + count, misses + m, offsets + o
        lines.append(f"{name}: funasr {len(ref)} segments, ours {len(ours)}")
    agreement = 1 - len(misses) / total
    summary = (
        f"{setting}: {total} boundaries (FunASR's and ours), {agreement:.1%} within {TOLERANCE_MS} ms, "
        f"median offset {np.median(offsets):.0f} ms, worst {max(offsets)} ms\n" + "\n".join(lines)
    )
    detail = "\n".join(str(m) for m in misses) or "none"
    print(f"{summary}\ndisagreements:\n{detail}")  # shown with -s / -rP
    assert agreement >= MIN_AGREEMENT, f"{summary}\ndisagreements:\n{detail}"
