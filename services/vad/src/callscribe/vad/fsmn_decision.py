"""FunASR's FSMN-VAD end-point logic (E2E VAD state machine, multiple-utterance mode) over frame scores.

Per 10 ms frame the model gives a silence posterior ``s``; a frame is speech when
``1 - s >= s ** speech_to_noise_ratio + speech_noise_threshold`` (and its energy is above
``decibel_threshold``). A window detector counts speech frames among the last ``window_ms``:
silence turns into speech when the count reaches ``sil_to_speech_ms``, speech into silence when
it drops to ``speech_to_sil_ms``. A segment starts ``window + lookback`` frames before the frame
where the window turned to speech (never before the end of the previous segment). It ends once
the window has stayed in silence for ``max_end_silence_ms - speech_to_sil_ms`` (the end put back
to ``lookahead_end_ms`` after the last speech), when it reaches ``max_single_segment_ms``, or at
the last frame of the audio. After each end the window restarts empty.

Rather than stepping through every frame in Python, the detector jumps from event to event: the
window sums come from a cumulative sum, the next window flip is found with numpy, and the silence
run and segment-length limits are plain arithmetic on frame indices.

Not reproduced: the SNR gate (``snr_thres = -100`` in the shipped config can never reject a frame of
audio in [-1, 1]: energies lie in [-60, 26] dB) and single-utterance mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

FRAME_MS = 10
_SCAN = 512  # frames examined per numpy step when looking for the next window flip
_NEVER = 1 << 62

Segment = tuple[int, int]


@dataclass(frozen=True)
class VadParams:
    """Decision parameters; defaults are the shipped FSMN-VAD config's except ``max_single_segment_ms``."""

    max_single_segment_ms: int = 30000
    max_end_silence_ms: int = 800
    speech_noise_threshold: float = 0.6
    window_ms: int = 200
    sil_to_speech_ms: int = 150
    speech_to_sil_ms: int = 150
    lookback_start_ms: int = 200
    lookahead_end_ms: int = 100
    extend: bool = True
    speech_to_noise_ratio: float = 1.0
    decibel_threshold: float = -100.0

    def __post_init__(self) -> None:
        if self.max_single_segment_ms < FRAME_MS:
            raise ValueError(f"max_single_segment_ms must be at least {FRAME_MS}")
        if self.max_end_silence_ms < 0:
            raise ValueError("max_end_silence_ms must not be negative")
        if self.window_ms < FRAME_MS:
            raise ValueError(f"window_ms must be at least {FRAME_MS}")
        if min(self.sil_to_speech_ms, self.speech_to_sil_ms, self.lookback_start_ms, self.lookahead_end_ms) < 0:
            raise ValueError("time thresholds must not be negative")


def speech_frames(sil_prob: np.ndarray, energy_db: np.ndarray, params: VadParams) -> np.ndarray:
    """Per-frame speech/non-speech decision from the model's silence posterior and the frame energy."""
    sil = sil_prob.astype(np.float64)
    noise = sil if params.speech_to_noise_ratio == 1.0 else np.power(sil, params.speech_to_noise_ratio)
    return ((1.0 - sil) >= noise + params.speech_noise_threshold) & (energy_db >= params.decibel_threshold)


class EndpointDetector:
    """Streaming segment detector: push frame decisions, get ``(start_ms, end_ms)`` of finished segments."""

    def __init__(self, params: VadParams) -> None:
        self._win = params.window_ms // FRAME_MS
        self._on = params.sil_to_speech_ms // FRAME_MS
        self._off = params.speech_to_sil_ms // FRAME_MS
        self._latency = self._win + (params.lookback_start_ms // FRAME_MS if params.extend else 0)
        self._max_len = params.max_single_segment_ms // FRAME_MS
        end_sil_ms = params.max_end_silence_ms - params.speech_to_sil_ms
        self._end_sil = max(1, -(-end_sil_ms // FRAME_MS))  # Sil2Sil frames until the end point
        back = int(end_sil_ms / FRAME_MS)
        if params.extend:
            back -= params.lookahead_end_ms // FRAME_MS + 1
        self._end_back = max(0, back)  # the end point is put back this many frames
        self._flags = np.zeros(0, dtype=bool)
        self._csum = np.zeros(1, dtype=np.int64)
        self._base = 0  # absolute index of _flags[0]
        self._total = 0  # frames pushed
        self._pos = 0  # next frame to decide
        self._origin = 0  # first frame counted by the window (it restarts after each segment)
        self._speaking = False  # the window detector's state
        self._seg_start = -1  # start frame of the open segment, -1 when none
        self._sil_since = -1  # frame where the window last turned to silence inside the segment
        self._floor = 0  # a segment cannot start before this frame (end of the previous one)

    def push(self, speech: np.ndarray, final: bool = False) -> list[Segment]:
        """Add frame decisions; returns the segments they complete.

        With ``final`` the last frame pushed is the end of the audio: what is open is closed or emitted.
        """
        self._append(speech)
        if not final:
            return self._run(self._total)
        if self._total == 0:
            return []
        last = self._total - 1
        out = self._run(last)
        seg = self._final_frame(last)
        if seg is not None:
            out.append(seg)
        self._pos = self._total
        return out

    def _append(self, speech: np.ndarray) -> None:
        keep_from = max(self._base, self._pos - self._win)
        flags = np.concatenate((self._flags[keep_from - self._base :], speech.astype(bool)))
        self._flags, self._base = flags, keep_from
        self._csum = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
        self._total += speech.shape[0]

    def _window_sums(self, lo: int, hi: int) -> np.ndarray:
        frames = np.arange(lo, hi)
        left = np.maximum(frames - self._win + 1, self._origin) - self._base
        return self._csum[frames + 1 - self._base] - self._csum[left]

    def _next_flip(self, lo: int, hi: int) -> int:
        """First frame in [lo, hi) where the window detector changes state, or ``hi``."""
        for start in range(lo, hi, _SCAN):
            sums = self._window_sums(start, min(hi, start + _SCAN))
            hits = sums <= self._off if self._speaking else sums >= self._on
            if hits.any():
                return start + int(hits.argmax())
        return hi

    def _run(self, stop: int) -> list[Segment]:
        """Decide frames [pos, stop), none of which is the last frame of the audio."""
        out: list[Segment] = []
        while self._pos < stop:
            if self._seg_start < 0:
                self._await_start(stop)
            else:
                seg = self._follow_segment(stop)
                if seg is not None:
                    out.append(seg)
        return out

    def _await_start(self, stop: int) -> None:
        flip = self._next_flip(self._pos, stop)
        if flip < stop:
            self._open(flip)
        self._pos = min(flip + 1, stop)

    def _open(self, frame: int) -> None:
        self._speaking = True
        self._seg_start = max(self._floor, frame - self._latency)

    def _follow_segment(self, stop: int) -> Segment | None:
        flip = self._next_flip(self._pos, stop)
        too_long = max(self._seg_start + self._max_len, self._pos)
        silence_end = _NEVER if self._speaking else self._sil_since + self._end_sil
        if min(silence_end, too_long) < flip:  # an end inside a steady run of the window
            if silence_end <= too_long:
                return self._close(silence_end - self._end_back, silence_end)
            return self._close(too_long, too_long)
        if flip == stop:
            self._pos = stop
            return None
        if flip >= too_long:
            return self._close(flip, flip)
        self._speaking = not self._speaking
        self._sil_since = flip
        self._pos = flip + 1
        return None

    def _close(self, end: int, decided_at: int) -> Segment:
        seg = (self._seg_start * FRAME_MS, (end + 1) * FRAME_MS)
        self._floor = end + 1
        self._seg_start = -1
        self._speaking = False
        self._origin = self._pos = decided_at + 1
        return seg

    def _final_frame(self, frame: int) -> Segment | None:
        count = int(self._window_sums(frame, frame + 1)[0])
        flips = count <= self._off if self._speaking else count >= self._on
        if self._seg_start < 0:
            if not flips:
                return None
            self._open(frame)
            return (self._seg_start * FRAME_MS, (frame + 1) * FRAME_MS)
        if not self._speaking and not flips and frame - self._sil_since >= self._end_sil:
            end = frame - self._end_back
        else:
            end = frame
        return self._close(end, frame)
