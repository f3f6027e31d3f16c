"""Spectrum of each contraction as it ends, from a bounded history of raw EMG.

Fatigue shows as a falling median/mean frequency (MDF/MNF) over reps.  A live
session cannot keep all its raw EMG (an hour of 8 channels at 2 kHz is 0.5 GB),
and the spectra are only needed over contractions, so the session keeps the
last ``seconds`` of raw samples and computes MNF/MDF of each contraction when
its offset arrives.  Contractions longer than the history, or crossing a gap,
get no spectrum (the caller counts them).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from bridge.analytics.fatigue import MIN_SEGMENT_SAMPLES, SegmentFrequency, pieces_frequencies
from bridge.errors import GlutebridgeError

__all__ = ["RawHistory", "contraction_spectrum"]

#: A contraction gets a spectrum when at least this fraction of it is held in usable pieces.
MIN_FRACTION = 0.5


class RawHistory:
    """The newest ``seconds`` of raw samples of one stream, addressed by stream sample."""

    def __init__(self, rate: float, seconds: float = 40.0) -> None:
        self.rate = float(rate)
        self.capacity = max(1, int(round(seconds * rate)))
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (first stream sample, samples)
        self._held = 0

    def add(self, first_sample: int, samples: np.ndarray) -> None:
        """Keep ``samples`` ((n, channels), stream samples from ``first_sample``)."""
        if samples.shape[0] == 0:
            return
        self._chunks.append((int(first_sample), samples))
        self._held += samples.shape[0]
        while self._chunks and self._held - self._chunks[0][1].shape[0] >= self.capacity:
            self._held -= self._chunks.popleft()[1].shape[0]

    def clear(self) -> None:
        self._chunks.clear()
        self._held = 0

    def pieces(self, start: int, end: int, channel: int) -> list[np.ndarray]:
        """Channel ``channel`` over stream samples [start, end) as gap-free runs (what is held)."""
        # Walk back from the newest chunk: a contraction that just ended is at the end.
        runs: list[list[np.ndarray]] = []
        at = None  # first stream sample of the current run (it grows backwards)
        for first, x in reversed(self._chunks):
            last = first + x.shape[0]
            if first >= end:
                continue
            if last <= start:
                break
            lo, hi = max(first, start), min(last, end)
            if at is None or hi != at:
                runs.append([])
            runs[-1].append(x[lo - first:hi - first, channel])
            at = lo
        return [np.concatenate(r[::-1]) if len(r) > 1 else np.array(r[0]) for r in runs[::-1]]


def contraction_spectrum(history: RawHistory, channel: int, start: int, end: int,
                         index: int = 1) -> SegmentFrequency | None:
    """MNF/MDF of raw EMG over stream samples [start, end) of ``channel``.

    A span cut by link gaps is measured over its gap-free pieces.  None when less
    than ``min_fraction`` of the span is held in pieces long enough for a spectrum,
    or the data are not finite.
    """
    pieces = [p for p in history.pieces(start, end, channel) if p.size >= MIN_SEGMENT_SAMPLES]
    held = sum(p.size for p in pieces)
    if held < MIN_SEGMENT_SAMPLES or held < MIN_FRACTION * (end - start):
        return None
    if not all(np.isfinite(p).all() for p in pieces):
        return None
    try:
        res = pieces_frequencies(pieces, history.rate)
    except GlutebridgeError:
        return None
    if res is None:
        return None
    t0 = start / history.rate
    return SegmentFrequency(index, t0, end / history.rate, res[0], res[1])
