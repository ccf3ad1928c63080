"""Multi-person tracking by detection: stable ids across frames.

Each frame, existing tracks and new detections are matched by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on the cost

    cost = iou_weight * (1 - IoU(boxes)) + kpt_weight * d_kpt,

where ``d_kpt`` is the mean distance between keypoints that both sides see (confidence >=
``kpt_conf_min``), divided by the track's box diagonal and clipped to 1 (if no keypoint is
seen by both, ``d_kpt = 1 - IoU``). Keypoints separate people whose boxes overlap (one
behind the other); IoU keeps small, blurry people apart. Pairs whose cost exceeds
``max_cost`` are not matched.

Life cycle:

* Birth: an unmatched detection starts a *tentative* track with a new id and is reported at
  once (``confirmed=False``), so a consumer can publish a person in the very first image;
  the track becomes ``confirmed`` after ``min_hits`` matched frames.
* A tentative track that misses a frame is dropped (most are false positives).
* Death: a confirmed track that has not been matched for more than ``max_age_s`` seconds of
  *stamp* time is dropped. Time is the largest stamp seen so far, so a frame arriving out of
  order (older stamp) is still associated but does not move the clock back. A stamp more
  than ``max_age_s`` older than the clock (a bag replayed from the start) resets the tracker.
* Ids are never reused (a counter that only grows).

``update`` returns the tracks matched or born in this frame (coasting tracks are not
reported); the ids dropped during that call are in ``tracker.last_removed`` (also
``tracker.removed_ids()``), so a consumer can delete the markers of people who left.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from diffpose_ros.detector.yolo_pose import Detection, box_iou


@dataclass
class Track:
    track_id: int
    detection: Detection       # latest matched detection
    hits: int                  # number of frames matched (including the first)
    confirmed: bool
    first_stamp: float
    last_stamp: float          # stamp of the latest matched frame


def _diag(box) -> float:
    return float(math.hypot(box[2] - box[0], box[3] - box[1]))


class Tracker:
    def __init__(self, iou_weight: float = 0.5, kpt_weight: float = 0.5, max_cost: float = 0.75,
                 max_age_s: float = 1.0, min_hits: int = 2, kpt_conf_min: float = 0.3):
        if iou_weight < 0 or kpt_weight < 0 or iou_weight + kpt_weight <= 0:
            raise ValueError("iou_weight and kpt_weight must be >= 0 and not both 0")
        if max_age_s <= 0 or min_hits < 1:
            raise ValueError("max_age_s must be > 0 and min_hits >= 1")
        total = iou_weight + kpt_weight
        self.iou_weight, self.kpt_weight = iou_weight / total, kpt_weight / total
        self.max_cost = float(max_cost)
        self.max_age_s = float(max_age_s)
        self.min_hits = int(min_hits)
        self.kpt_conf_min = float(kpt_conf_min)
        self.tracks: list[Track] = []
        self.last_removed: list[int] = []
        self._ids = itertools.count(1)
        self._now: float | None = None

    def removed_ids(self) -> list[int]:
        """Ids dropped during the latest ``update`` call."""
        return list(self.last_removed)

    def cost_matrix(self, tracks: list[Track], detections: list[Detection]) -> np.ndarray:
        if not tracks or not detections:
            return np.zeros((len(tracks), len(detections)))
        iou = box_iou(np.stack([t.detection.box for t in tracks]), np.stack([d.box for d in detections]))
        cost = np.empty_like(iou)
        for i, t in enumerate(tracks):
            scale = max(_diag(t.detection.box), 1.0)
            for j, d in enumerate(detections):
                both = (t.detection.keypoint_conf >= self.kpt_conf_min) & (d.keypoint_conf >= self.kpt_conf_min)
                if both.any():
                    dist = np.linalg.norm(t.detection.keypoints[both] - d.keypoints[both], axis=1).mean()
                    d_kpt = min(dist / scale, 1.0)
                else:
                    d_kpt = 1.0 - iou[i, j]
                cost[i, j] = self.iou_weight * (1.0 - iou[i, j]) + self.kpt_weight * d_kpt
        return cost

    def update(self, detections: list[Detection], stamp_s: float) -> list[Track]:
        stamp_s = float(stamp_s)
        if not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be finite, got {stamp_s}")
        self.last_removed = []
        if self._now is not None and stamp_s < self._now - self.max_age_s:
            # time jumped far back (replayed bag): old tracks cannot continue
            self.last_removed = [t.track_id for t in self.tracks]
            self.tracks = []
            self._now = None
        self._now = stamp_s if self._now is None else max(self._now, stamp_s)

        cost = self.cost_matrix(self.tracks, detections)
        matched_t, matched_d = set(), set()
        reported: list[Track] = []
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] > self.max_cost:
                    continue
                t = self.tracks[r]
                t.detection = detections[c]
                t.hits += 1
                t.last_stamp = max(t.last_stamp, stamp_s)
                t.confirmed = t.confirmed or t.hits >= self.min_hits
                matched_t.add(r)
                matched_d.add(c)
                reported.append(t)

        survivors = []
        for i, t in enumerate(self.tracks):
            if i in matched_t:
                survivors.append(t)
            elif not t.confirmed or self._now - t.last_stamp > self.max_age_s:
                self.last_removed.append(t.track_id)
            else:
                survivors.append(t)
        for j, d in enumerate(detections):
            if j not in matched_d:
                t = Track(next(self._ids), d, 1, self.min_hits <= 1, stamp_s, stamp_s)
                survivors.append(t)
                reported.append(t)
        self.tracks = survivors
        return reported
