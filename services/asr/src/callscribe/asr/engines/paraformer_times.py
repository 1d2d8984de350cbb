"""Token times of a whole Paraformer batch, as FunASR's ``ts_prediction_lfr6_standard`` gives them per item.

FunASR's Paraformer times its tokens from the CIF predictor's two outputs: it looks for frames where
the first (the per-frame weights) reaches 1 - 1e-4, and when that does not give one fire per token
plus one (nearly always), it rescales the second (the CIF peaks) to sum to tokens + 1 and integrates
it again, frame by frame, with torch operations on one item at a time: about 10 ms of CPU per
segment, more than the GPU spends on the segment. Here the re-integration runs once per batch, over
all the items that need it, as float32 vector steps that do per element exactly what FunASR's loop
does (the same additions, comparisons and subtractions in the same order), so the fires, and so the
times, are the same; tests compare both on random inputs. From the fires, each token spans from its
fire to the next (at most 12 frames, then silence), frames of 60 ms, shifted by -1.5 frames, with
the start and end silences FunASR marks. Where FunASR's function would fail (more fires than tokens
plus one, or none at all), the tokens that have fires are timed and the rest share the last span.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FIRE_THRESHOLD = np.float32(1.0 - 1e-4)
FRAME_S = 10.0 * 6 / 1000  # one LFR frame: 6 x 10 ms
TIME_SHIFT_FRAMES = -1.5
EDGE_FRAMES = 5  # silence longer than this at either end is marked as silence
MAX_TOKEN_FRAMES = 12


def integrate(weights: np.ndarray) -> np.ndarray:
    """CIF without hidden states over (items, frames) float32: the running sum after each frame, less the
    threshold once for every frame at which it had reached the threshold (FunASR's ``cif_wo_hidden``)."""
    weights = np.asarray(weights, dtype=np.float32)
    fires = np.empty_like(weights)
    running = np.zeros(weights.shape[0], dtype=np.float32)
    for t in range(weights.shape[1]):
        running = running + weights[:, t]
        fires[:, t] = running
        running = np.where(running >= FIRE_THRESHOLD, running - FIRE_THRESHOLD, running)
    return fires


def batch_token_times(
    first: Sequence[np.ndarray], second: Sequence[np.ndarray], token_counts: Sequence[int]
) -> list[list[list[int]]]:
    """Per item: [start_ms, end_ms] of each of its tokens. ``first[i]``, ``second[i]``: the item's two
    predictor outputs (float32, its own length), in the order FunASR passes them to its function."""
    fires: list[np.ndarray | None] = []
    again: list[int] = []
    rescaled: list[np.ndarray] = []
    for i, (looked_at, weights) in enumerate(zip(second, first, strict=True)):
        found = np.flatnonzero(np.asarray(looked_at, dtype=np.float32) >= FIRE_THRESHOLD)
        if token_counts[i] == 0 or len(found) == token_counts[i] + 1:
            fires.append(found)
            continue
        fires.append(None)
        again.append(i)
        rescaled.append(_rescale(np.asarray(weights, dtype=np.float32), token_counts[i] + 1))
    if again:
        longest = max(len(r) for r in rescaled)
        padded = np.zeros((len(again), longest), dtype=np.float32)
        for row, values in enumerate(rescaled):
            padded[row, : len(values)] = values
        integrated = integrate(padded)
        for row, i in enumerate(again):
            fires[i] = np.flatnonzero(integrated[row, : len(rescaled[row])] >= FIRE_THRESHOLD)
    out = []
    for i, item_fires in enumerate(fires):
        assert item_fires is not None
        out.append(token_times(item_fires, len(second[i]), token_counts[i]))
    return out


def _rescale(weights: np.ndarray, total: int) -> np.ndarray:
    """``weights / (weights.sum() / total)`` in float32, the sum taken as torch takes it."""
    import torch

    tensor = torch.from_numpy(weights.copy())
    tensor /= tensor.sum() / total
    return tensor.numpy()


def token_times(fire_frames: np.ndarray, num_frames: int, tokens: int) -> list[list[int]]:
    """[start_ms, end_ms] per token from the frames where CIF fired (one more fire than tokens)."""
    if tokens == 0:
        return []
    if len(fire_frames) == 0:
        return [[0, int(num_frames * FRAME_S * 1000)] for _ in range(tokens)]  # one list each: callers may edit
    fire = fire_frames.astype(np.float64) + TIME_SHIFT_FRAMES
    spans: list[list[float]] = []
    is_token: list[bool] = []
    if fire[0] > EDGE_FRAMES:
        spans.append([0.0, fire[0] * FRAME_S])
        is_token.append(False)
    for i in range(min(len(fire) - 1, tokens)):
        is_token.append(True)
        if fire[i + 1] - fire[i] <= MAX_TOKEN_FRAMES:
            spans.append([fire[i] * FRAME_S, fire[i + 1] * FRAME_S])
        else:
            split = fire[i] + MAX_TOKEN_FRAMES
            spans.append([fire[i] * FRAME_S, split * FRAME_S])
            spans.append([split * FRAME_S, fire[i + 1] * FRAME_S])
            is_token.append(False)
    last = fire[min(len(fire) - 1, tokens)]
    if num_frames - last > EDGE_FRAMES:
        end = (num_frames + last) * 0.5
        if spans:
            spans[-1][1] = end * FRAME_S
    elif spans:
        spans[-1][1] = num_frames * FRAME_S
    times = [[int(a * 1000), int(b * 1000)] for (a, b), token in zip(spans, is_token, strict=True) if token]
    while len(times) < tokens:  # fewer fires than tokens: the rest share the last span
        times.append(list(times[-1]) if times else [0, int(num_frames * FRAME_S * 1000)])
    return times
