"""Who spoke when in a mono recording: two voices from speaker embeddings of the VAD's segments.

Pure (numpy only, no audio I/O, no model): `plan_windows` cuts the speech segments into windows of at
most `window_ms`; the caller embeds each window (`voice.VoiceEncoder`); `assign` clusters the embeddings
into two voices, decides whether there really are two, and cuts the segments where the voice changes.

Clustering: spectral bisection of the windows' cosine-similarity graph (each window linked to its
nearest neighbours), refined by a few rounds of two-means on the unit sphere weighted by duration; at
most `max_cluster_windows` windows (evenly spread over the call) enter the graph, so memory and time stay
bounded for long calls, and every window is then assigned to the nearer voice. Two voices are accepted
only when the call has enough speech, each voice has enough of it, and the two voices' centroids are
less alike than `max_similarity`; otherwise the call falls back to MIXED with the reason.

Speaker 1 is the voice heard first, speaker 2 the other. Confidence of a window: a logistic of how much
nearer it is to its own voice than to the other (cosine margin / CONFIDENCE_SCALE); a segment's is the
mean of its windows', weighted by length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE_SCALE = 0.05  # a cosine margin of 0.05 gives 0.73, 0.1 gives 0.88, 0.2 gives 0.98


@dataclass(frozen=True)
class DiarizeParams:
    window_ms: int = 1500  # longer segments are cut into equal windows of at most this
    min_window_ms: int = 500  # shorter windows are not clustered (too little voice), only assigned
    min_speech_ms: int = 6000  # a call with less speech in all stays MIXED
    min_speaker_ms: int = 1500  # a second voice with less speech is not believed (one voice)
    # Voices at least this alike (cosine of their centroids) are one voice. Measured on synthetic calls
    # (bench/diarize.py): two different voices 0.63-0.76, one voice split in two 0.89-0.95.
    max_similarity: float = 0.83
    max_cluster_windows: int = 600  # windows in the similarity graph (memory: n^2 floats)
    neighbours: float = 0.2  # share of the windows each window is linked to in the graph


@dataclass(frozen=True)
class Window:
    segment: int  # index into the segments given to plan_windows
    start_ms: int
    end_ms: int

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Turn:
    """A stretch of one speaker's speech: a segment, or a part of one where the voice changes."""

    segment: int
    start_ms: int
    end_ms: int
    speaker: int  # 1 (heard first) or 2
    confidence: float


@dataclass(frozen=True)
class Result:
    diarized: bool
    reason: str  # why the call stays MIXED ("" when diarized)
    turns: list[Turn]  # empty when not diarized
    similarity: float  # cosine of the two voices' centroids (0 when not computed)
    speaker_ms: tuple[int, int]  # speech of speaker 1 and speaker 2


def plan_windows(segments: Sequence[tuple[int, int]], window_ms: int) -> list[Window]:
    """Each segment cut into ceil(length / window_ms) equal windows (a shorter segment is one window)."""
    out: list[Window] = []
    for i, (start, end) in enumerate(segments):
        length = end - start
        if length <= 0:
            continue
        pieces = max(1, math.ceil(length / window_ms))
        cuts = [start + round(length * k / pieces) for k in range(pieces + 1)]
        out.extend(Window(i, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _spectral_split(x: np.ndarray, neighbours: float) -> np.ndarray:
    """0/1 labels of the rows of `x` (unit vectors): the sign pattern of the Fiedler vector of the
    normalized Laplacian of a k-nearest-neighbour cosine graph, split at its largest gap."""
    n = len(x)
    sim = np.clip(x @ x.T, 0.0, 1.0)
    k = min(n - 1, max(2, int(round(neighbours * n))))
    keep = np.zeros_like(sim, dtype=bool)
    nearest = np.argpartition(-sim, kth=k, axis=1)[:, : k + 1]
    np.put_along_axis(keep, nearest, True, axis=1)
    graph = np.where(keep | keep.T, sim, 0.0)
    degree = graph.sum(axis=1)
    d = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    laplacian = np.eye(n) - d[:, None] * graph * d[None, :]
    _, vectors = np.linalg.eigh(laplacian)
    fiedler = vectors[:, 1] * d
    order = np.sort(fiedler)
    cut = int(np.argmax(np.diff(order)))  # the largest gap between consecutive values
    threshold = (order[cut] + order[cut + 1]) / 2
    return (fiedler > threshold).astype(np.int64)


def _two_means(
    x: np.ndarray, weights: np.ndarray, labels: np.ndarray, rounds: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and (2, dim) unit centroids after weighted spherical two-means from `labels`."""
    centroids = np.zeros((2, x.shape[1]))
    for _ in range(rounds):
        for c in (0, 1):
            members = labels == c
            if not members.any():  # a cluster emptied: restart it at the worst-fitting window
                worst = int(np.argmin(np.max(x @ centroids.T, axis=1)))
                members = np.arange(len(x)) == worst
            centroids[c] = _unit((weights[members, None] * x[members]).sum(axis=0))
        new = np.argmax(x @ centroids.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, centroids


def _confidence(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margin / CONFIDENCE_SCALE))


def assign(windows: Sequence[Window], embeddings: np.ndarray, params: DiarizeParams) -> Result:
    """Two voices over `windows` (in time order) and their `embeddings` (n, dim), or why not."""
    lengths = np.array([w.length_ms for w in windows], dtype=np.float64)
    speech_ms = int(lengths.sum())
    if speech_ms < params.min_speech_ms:
        return Result(
            False,
            f"too little speech to tell two voices apart: {speech_ms / 1000:.1f} s "
            f"(diarization needs {params.min_speech_ms / 1000:g} s)",
            [],
            0.0,
            (0, 0),
        )
    x = _unit(np.asarray(embeddings, dtype=np.float64))
    usable = np.nonzero(lengths >= params.min_window_ms)[0]
    if len(usable) < 4:
        return Result(
            False,
            f"too few stretches of speech of at least {params.min_window_ms / 1000:g} s to tell voices apart "
            f"({len(usable)})",
            [],
            0.0,
            (0, 0),
        )
    sample = usable
    if len(sample) > params.max_cluster_windows:
        sample = usable[np.linspace(0, len(usable) - 1, params.max_cluster_windows).round().astype(np.int64)]
    start = _spectral_split(x[sample], params.neighbours)
    fit, centroids = _two_means(x[usable], lengths[usable], _nearest_labels(x[usable], x[sample], start))
    similarity = float(centroids[0] @ centroids[1])
    sims = x @ centroids.T
    labels = np.argmax(sims, axis=1)
    labels[usable] = fit
    per_voice = [int(lengths[labels == c].sum()) for c in (0, 1)]
    if similarity >= params.max_similarity:
        return Result(
            False,
            f"one voice: the two most different groups of speech sound alike (similarity {similarity:.2f}; "
            f"two voices need less than {params.max_similarity:g})",
            [],
            similarity,
            (speech_ms, 0),
        )
    if min(per_voice) < params.min_speaker_ms:
        return Result(
            False,
            f"one voice: the second voice has only {min(per_voice) / 1000:.1f} s of speech "
            f"(needs {params.min_speaker_ms / 1000:g} s)",
            [],
            similarity,
            (speech_ms, 0),
        )
    margin = np.abs(sims[:, 0] - sims[:, 1])
    confidence = _confidence(margin)
    labels = _smooth(windows, labels, confidence)
    first = int(labels[0])  # speaker 1 is the voice heard first
    speakers = np.where(labels == first, 1, 2)
    turns = _turns(windows, speakers, confidence, lengths)
    ms = (int(lengths[speakers == 1].sum()), int(lengths[speakers == 2].sum()))
    return Result(True, "", turns, similarity, ms)


def _nearest_labels(x: np.ndarray, sample: np.ndarray, sample_labels: np.ndarray) -> np.ndarray:
    """Labels for every row of `x` from the sample's split: the nearer of the two sample centroids."""
    centroids = np.stack([_unit(sample[sample_labels == c].sum(axis=0)) for c in (0, 1)])
    return np.argmax(x @ centroids.T, axis=1)


def _smooth(windows: Sequence[Window], labels: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """A lone window of the other voice between two of the same voice inside one segment, less sure
    than both of them, takes its neighbours' voice (a flicker, not a turn)."""
    out = labels.copy()
    for i in range(1, len(windows) - 1):
        prev, nxt = windows[i - 1], windows[i + 1]
        same_segment = prev.segment == windows[i].segment == nxt.segment
        if same_segment and labels[i - 1] == labels[i + 1] != labels[i]:
            if confidence[i] < min(confidence[i - 1], confidence[i + 1]):
                out[i] = labels[i - 1]
    return out


def _turns(windows: Sequence[Window], speakers: np.ndarray, confidence: np.ndarray, lengths: np.ndarray) -> list[Turn]:
    """Consecutive windows of one segment and one speaker joined into one turn."""
    turns: list[Turn] = []
    group: list[int] = []
    for i, w in enumerate(windows):
        if group and (windows[group[-1]].segment != w.segment or speakers[group[-1]] != speakers[i]):
            turns.append(_turn(windows, group, speakers, confidence, lengths))
            group = []
        group.append(i)
    if group:
        turns.append(_turn(windows, group, speakers, confidence, lengths))
    return turns


def _turn(
    windows: Sequence[Window], group: list[int], speakers: np.ndarray, confidence: np.ndarray, lengths: np.ndarray
) -> Turn:
    weight = lengths[group]
    conf = float((confidence[group] * weight).sum() / max(weight.sum(), 1.0))
    return Turn(
        windows[group[0]].segment,
        windows[group[0]].start_ms,
        windows[group[-1]].end_ms,
        int(speakers[group[0]]),
        round(conf, 3),
    )
