"""Causal input windows of the temporal lifter, sampled on the image stamps.

The temporal encoder was trained on windows of T frames at the motion bank's rate (the bundle's
config["data"]["fps"], 10 fps for the shipped model: 27 frames = 2.6 s of motion). In the node
the lifter sees the frames it has time for: 30 Hz from a fast machine, 5 to 8 Hz on a loaded CPU,
with drops in between. Each track keeps its recent frames with their stamps, and:

* a track at or below the training rate (the median of its last T frame intervals >= 1 / fps)
  gets the frames at t_k = t_now - (T - 1 - k) / fps, k = 0 .. T - 1, each interpolated
  linearly between the two stored frames around it (exactly a stored frame when one is within
  STAMP_TOLERANCE of t_k): the training rate, with dropped frames filled in. "One frame per
  call" played a 5 Hz track twice as fast as any training motion and closed up every drop;
* a track faster than the training rate keeps one slot per frame, its last T frames (drops
  closed up): measured on held-out mocap clips at 30 Hz, windows at the training spacing (every
  third frame, 2.6 s) gave a 4 mm worse root-relative pose than the last 27 frames (0.9 s), and
  filling in 30 Hz drops 0.3-0.7 mm worse than closing them up (scripts/temporal_windows_ab.py,
  README "Temporal windows on the stamps").

Times before the track's first frame repeat that frame, as training pads a clip's start
(data/sequence.causal_windows). A gap longer than MAX_GAP_S (the tracker's own limit for a lost
person) or a stamp that goes back starts the track's window afresh: neither is a motion to
interpolate (the same stamp again replaces its frame).
"""
from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

import numpy as np

MAX_GAP_S = 1.0
STAMP_TOLERANCE = 1e-3   # of the training spacing 1 / fps


def _median_interval(stamps: list) -> float:
    """The median of the intervals (the lower middle one of an even count: an actual interval);
    plain Python: a few dozen floats."""
    iv = sorted(b - a for a, b in zip(stamps[:-1], stamps[1:]))
    return iv[(len(iv) - 1) // 2]


class TrackWindows:
    """Per-track histories of lifter input frames (J, C) and the windows sampled from them."""

    def __init__(self, window: int, fps: float, forget_after: int = 30):
        """forget_after: a track not seen for this many calls loses its history."""
        if window < 1 or not fps > 0:
            raise ValueError(f"window must be >= 1 and fps > 0, got {window}, {fps}")
        self.window, self.fps, self.forget_after = int(window), float(fps), int(forget_after)
        self._tracks = OrderedDict()      # track id -> [stamps list, frames list, last call]
        self._calls = 0

    def reset(self):
        self._tracks.clear()

    def __contains__(self, track_id) -> bool:
        return track_id in self._tracks

    def __call__(self, frames: np.ndarray, track_ids, stamp: float | None = None) -> np.ndarray:
        """(P, T, J, C) windows ending at `stamp` (seconds) for frames (P, J, C) of the given
        tracks. stamp None: each call is the next frame at the training rate (call index / fps)."""
        self._calls += 1
        dt = 1.0 / self.fps
        now = self._calls * dt if stamp is None else float(stamp)
        back = np.arange(self.window - 1, -1, -1)
        oldest = now - dt * back[0]                # the widest window: at the training spacing
        out = np.empty((len(frames),) + (self.window,) + frames.shape[1:], frames.dtype)
        for i, (tid, f) in enumerate(zip(track_ids, frames)):
            entry = self._tracks.pop(tid, None)
            if entry is not None and now == entry[0][-1]:     # the same image again: replace it
                del entry[0][-1], entry[1][-1]
            elif entry is None or now < entry[0][-1] or now - entry[0][-1] > MAX_GAP_S:
                entry = [[], [], 0]               # new track, time went back, or a long gap
            stamps, hist = entry[0], entry[1]
            stamps.append(now)
            hist.append(f)
            # keep the newest frame at or before the oldest sample time (to interpolate from)
            first = max(bisect_right(stamps, oldest + STAMP_TOLERANCE * dt) - 1, 0)
            del stamps[:first], hist[:first]
            entry[2] = self._calls
            self._tracks[tid] = entry
            if len(stamps) > 1 and _median_interval(stamps[-self.window - 1:]) < (1 - STAMP_TOLERANCE) * dt:
                last = hist[-self.window:]      # faster than training: one slot per frame
                out[i] = np.stack([last[0]] * (self.window - len(last)) + last)
            else:
                out[i] = self._sample(np.asarray(stamps), np.asarray(hist), now - dt * back, dt)
        stale = [t for t, e in self._tracks.items() if self._calls - e[2] >= self.forget_after]
        for t in stale:
            del self._tracks[t]
        return out

    @staticmethod
    def _sample(stamps, hist, times, dt):
        """hist (n, J, C) at stamps (n,) ascending, linearly interpolated at times (T,)."""
        tol = STAMP_TOLERANCE * dt
        lo = np.maximum(stamps.searchsorted(times + tol, side="right") - 1, 0)
        hi = np.minimum(lo + 1, len(stamps) - 1)
        # the share of the next frame: 0 at (or within tol after) a stored frame, and before the
        # track's first frame (times - stamps[0] < 0); below 1, as times < stamps[hi] - tol
        after = times - stamps[lo]
        w = np.where(after > tol, after / np.maximum(stamps[hi] - stamps[lo], tol), 0.0)
        w = w.astype(hist.dtype)[:, None, None]
        a = hist[lo]
        return a + w * (hist[hi] - a)
