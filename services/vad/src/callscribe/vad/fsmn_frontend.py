"""Streaming front end of FunASR's FSMN-VAD: Kaldi fbank, LFR stacking, CMVN and frame energies.

The model expects, per 10 ms frame, five consecutive 80-bin log-mel frames (two to the left,
two to the right, edges replicated) computed on samples scaled to the int16 range, shifted and
scaled by the global CMVN of ``am.mvn``. FunASR also measures each frame's energy in dB on the
unscaled samples; the decision logic can gate on it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_SHIFT = 160  # samples (10 ms)
FRAME_LENGTH = 400  # samples (25 ms)
N_MELS = 80
LFR_M = 5  # frames stacked per model input frame (lfr_n = 1: one input per 10 ms)
FEATURE_DIM = N_MELS * LFR_M
_SIDE = (LFR_M - 1) // 2  # frames of context on each side of the centre frame
_INT16_SCALE = float(1 << 15)
_ENERGY_BLOCK = 80  # gcd(FRAME_SHIFT, FRAME_LENGTH): energies are sums of 80-sample blocks
_BLOCKS_PER_SHIFT = FRAME_SHIFT // _ENERGY_BLOCK
_BLOCKS_PER_FRAME = FRAME_LENGTH // _ENERGY_BLOCK


@dataclass(frozen=True)
class Cmvn:
    """Global feature normalisation: ``(x + shift) * scale`` per feature dimension."""

    shift: np.ndarray
    scale: np.ndarray


def _nnet_vector(text: str, component: str) -> np.ndarray:
    match = re.search(rf"<{component}>[^\[]*\[([^\]]*)\]", text)
    if match is None:
        raise ValueError(f"CMVN file has no <{component}> component")
    return np.array(match.group(1).split(), dtype=np.float32)


def load_cmvn(path: Path) -> Cmvn:
    """Read the AddShift and Rescale vectors of a Kaldi nnet text file (FunASR's ``am.mvn``)."""
    text = path.read_text(encoding="utf-8")
    shift = _nnet_vector(text, "AddShift")
    scale = _nnet_vector(text, "Rescale")
    if shift.shape != (FEATURE_DIM,) or scale.shape != (FEATURE_DIM,):
        raise ValueError(f"{path}: expected {FEATURE_DIM}-dim CMVN, got {shift.shape} and {scale.shape}")
    return Cmvn(shift=shift, scale=scale)


def fbank_options() -> knf.FbankOptions:
    """The fbank configuration of the shipped model (config.yaml: hamming, 25/10 ms, 80 mel, no dither)."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = 25
    opts.frame_opts.frame_shift_ms = 10
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hamming"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = N_MELS
    opts.energy_floor = 0.0
    return opts


class FrameEnergy:
    """Streaming per-frame energy in dB (``10 log10(sum x^2 + 1e-6)`` over 25 ms windows every 10 ms)."""

    def __init__(self) -> None:
        self._tail = np.zeros(0, dtype=np.float32)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate((self._tail, samples)) if self._tail.size else samples
        if data.size < FRAME_LENGTH:
            self._tail = data.copy()
            return np.zeros(0, dtype=np.float32)
        count = (data.size - FRAME_LENGTH) // FRAME_SHIFT + 1
        used = (count - 1) * FRAME_SHIFT + FRAME_LENGTH
        blocks = np.square(data[:used]).reshape(-1, _ENERGY_BLOCK).sum(axis=1)
        # one frame = 5 consecutive blocks, frames start every 2 blocks
        windows = np.lib.stride_tricks.sliding_window_view(blocks, _BLOCKS_PER_FRAME)[::_BLOCKS_PER_SHIFT]
        self._tail = data[count * FRAME_SHIFT :].copy()
        return (10.0 * np.log10(windows.sum(axis=1) + 1e-6)).astype(np.float32)


class LfrStacker:
    """Streaming low-frame-rate stacking (m=5, n=1) with edge replication, as FunASR's online front end."""

    def __init__(self) -> None:
        self._context: np.ndarray | None = None  # fbank frames still needed as left/right context

    def accept(self, frames: np.ndarray, final: bool = False) -> np.ndarray:
        if self._context is None:
            if frames.shape[0] == 0:
                return np.zeros((0, FEATURE_DIM), dtype=np.float32)
            self._context = np.repeat(frames[:1], _SIDE, axis=0)
        parts = [self._context, frames]
        if final:
            last = frames[-1:] if frames.shape[0] else self._context[-1:]
            parts.append(np.repeat(last, _SIDE, axis=0))
        stacked = np.concatenate(parts)
        count = stacked.shape[0] - (LFR_M - 1)
        if count <= 0:
            self._context = stacked
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(stacked, LFR_M, axis=0)  # (count, 80, 5)
        out = np.array(windows.transpose(0, 2, 1), order="C").reshape(count, FEATURE_DIM)  # a copy
        self._context = stacked[count:].copy()
        return out


class FsmnFrontend:
    """Samples in, model features and frame energies out; one instance per audio stream."""

    def __init__(self, cmvn: Cmvn) -> None:
        self._cmvn = cmvn
        self._fbank = knf.OnlineFbank(fbank_options())
        self._next_frame = 0
        self._lfr = LfrStacker()
        self._energy = FrameEnergy()
        self._pending_energy = np.zeros(0, dtype=np.float32)

    def accept(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed float32 samples in [-1, 1]; returns ``(features (n, 400), energy_db (n,))`` ready so far."""
        return self._process(samples, final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Flush the last frames (right edge replicated)."""
        return self._process(np.zeros(0, dtype=np.float32), final=True)

    def _process(self, samples: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
        if samples.size:
            # a memoryview crosses the binding about twice as fast as an ndarray (both are read element-wise)
            self._fbank.accept_waveform(SAMPLE_RATE, (samples * _INT16_SCALE).data)
            self._pending_energy = np.concatenate((self._pending_energy, self._energy.accept(samples)))
        fbank = self._read_fbank()
        feats = self._lfr.accept(fbank, final=final)
        count = feats.shape[0]
        energy, self._pending_energy = self._pending_energy[:count], self._pending_energy[count:]
        if energy.shape[0] != count:
            raise RuntimeError(f"front end out of step: {count} feature frames, {energy.shape[0]} energies")
        feats += self._cmvn.shift
        feats *= self._cmvn.scale
        return feats, energy

    def _read_fbank(self) -> np.ndarray:
        ready = self._fbank.num_frames_ready
        count = ready - self._next_frame
        out = np.empty((max(count, 0), N_MELS), dtype=np.float32)
        for i in range(count):
            out[i] = self._fbank.get_frame(self._next_frame + i)
        if count > 0:
            self._fbank.pop(count)
            self._next_frame = ready
        return out
