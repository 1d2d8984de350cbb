"""Diarization error rate, shared by bench/diarize.py and tests/vad/test_diarize.py.

DER = (missed speech + false alarm + speaker confusion) / total reference speech, on a 10 ms grid,
as NIST's md-eval counts it:

* every frame has n_ref reference speakers and n_hyp hypothesis speakers (overlapped speech counts twice);
* missed = sum of max(0, n_ref - n_hyp); false alarm = sum of max(0, n_hyp - n_ref);
  confusion = sum of min(n_ref, n_hyp) - n_correct, where n_correct counts the reference speakers whose
  mapped hypothesis speaker is active in the frame;
* the mapping of hypothesis to reference speakers is one to one and the one that maximizes the time they
  share (every mapping is tried: calls have two or three speakers);
* frames within `collar_ms` of a reference segment's start or end are not scored (0.25 s by default).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FRAME_MS = 10
COLLAR_MS = 250

Labelled = Sequence[tuple[str, int, int]]  # (speaker, start_ms, end_ms)


@dataclass(frozen=True)
class Der:
    reference_ms: int
    missed_ms: int
    false_alarm_ms: int
    confusion_ms: int
    mapping: dict[str, str]  # hypothesis speaker -> reference speaker

    @property
    def rate(self) -> float:
        return (
            (self.missed_ms + self.false_alarm_ms + self.confusion_ms) / self.reference_ms if self.reference_ms else 0.0
        )

    def part(self, ms: int) -> float:
        return ms / self.reference_ms if self.reference_ms else 0.0


def _activity(spans: Labelled, speakers: list[str], frames: int) -> np.ndarray:
    act = np.zeros((len(speakers), frames), dtype=bool)
    for who, start, end in spans:
        act[speakers.index(who), max(0, start // FRAME_MS) : max(0, end // FRAME_MS)] = True
    return act


def score(reference: Labelled, hypothesis: Labelled, collar_ms: int = COLLAR_MS) -> Der:
    """The DER of `hypothesis` against `reference` (both as (speaker, start_ms, end_ms))."""
    end_ms = max([e for _, _, e in [*reference, *hypothesis]], default=0) + collar_ms + FRAME_MS
    frames = end_ms // FRAME_MS + 1
    ref_speakers = sorted({r[0] for r in reference})
    hyp_speakers = sorted({h[0] for h in hypothesis})
    ref = _activity(reference, ref_speakers, frames)
    hyp = _activity(hypothesis, hyp_speakers, frames)
    scored = np.ones(frames, dtype=bool)
    collar = collar_ms // FRAME_MS
    for _, start, end in reference:
        for edge in (start // FRAME_MS, end // FRAME_MS):
            scored[max(0, edge - collar) : edge + collar] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    shared = (hyp[:, None, :] & ref[None, :, :]).sum(axis=2)  # (hyp, ref) frames both active
    best: tuple[int, dict[str, str]] = (-1, {})
    small, large = (
        (hyp_speakers, ref_speakers) if len(hyp_speakers) <= len(ref_speakers) else (ref_speakers, hyp_speakers)
    )
    for chosen in itertools.permutations(range(len(large)), len(small)):
        if small is hyp_speakers:
            pairs = list(enumerate(chosen))
        else:
            pairs = [(h, r) for r, h in enumerate(chosen)]
        total = sum(int(shared[h, r]) for h, r in pairs)
        if total > best[0]:
            best = (total, {hyp_speakers[h]: ref_speakers[r] for h, r in pairs})
    correct = max(best[0], 0)
    return Der(
        reference_ms=int(n_ref.sum()) * FRAME_MS,
        missed_ms=int(np.maximum(0, n_ref - n_hyp).sum()) * FRAME_MS,
        false_alarm_ms=int(np.maximum(0, n_hyp - n_ref).sum()) * FRAME_MS,
        confusion_ms=(int(np.minimum(n_ref, n_hyp).sum()) - correct) * FRAME_MS,
        mapping=best[1],
    )
