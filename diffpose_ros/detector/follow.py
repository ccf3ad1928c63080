"""Follow mode: the whole image only every few frames, in between only where people are.

BlazePose's video mode is fast because it detects once and then follows the person with a
crop. The same idea here, with the same detector: between two whole-image detections the
detector runs on the part of its own input that covers the people tracked in the previous frame
(YoloPoseDetector.detect(region=...): same scale, same 32-px grid phase, so a person inside the
region gets the whole image's numbers up to what the missing surroundings change), for a cost
that follows the region's pixel count. People far from the camera (small boxes) make it cheap;
people filling the frame make the region the whole image, and nothing is saved.

New people are found at the next whole-image frame (at most `every` frames later). A region
that finds fewer people than it followed (one moved out of it, or was occluded) is redone on
the whole image in the same frame, so a followed person is not lost to the region.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FollowConfig:
    every: int = 0            # 0: off (the whole image every frame); k: the whole image every k-th frame
    margin: float = 0.3       # each followed box grown by this share of its larger side, on every side
    max_area: float = 0.6     # a region larger than this share of the image: the whole image instead

    def __post_init__(self):
        if int(self.every) != self.every or self.every < 0:
            raise ValueError(f"follow every must be an integer >= 0, got {self.every}")
        if not (0.0 <= self.margin <= 5.0):
            raise ValueError(f"follow margin must be in [0, 5], got {self.margin}")
        if not (0.0 < self.max_area <= 1.0):
            raise ValueError(f"follow max_area must be in (0, 1], got {self.max_area}")


def merge_overlapping(boxes: list) -> list:
    """xyxy boxes -> boxes none of which overlap: every overlapping pair replaced by its union,
    until none is left."""
    out = []
    for box in boxes:
        box = np.asarray(box, np.float64)
        while True:
            hit = next((i for i, o in enumerate(out)
                        if box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3]), None)
            if hit is None:
                break
            o = out.pop(hit)
            box = np.r_[np.minimum(box[:2], o[:2]), np.maximum(box[2:], o[2:])]
        out.append(box)
    return out


class Follower:
    """Decides per frame: the whole image (None) or regions around the people followed."""

    def __init__(self, config: FollowConfig | None = None):
        self.config = config or FollowConfig()
        self.since_full = None           # frames since the last whole-image detection
        self.counts = {"whole": 0, "region": 0, "redone": 0}

    def reset(self):
        self.since_full = None

    def plan(self, image_hw, boxes) -> list[tuple[float, float, float, float]] | None:
        """Where to detect in this frame, given the boxes (K, 4) of the people followed: None
        for the whole image, else regions (x1, y1, x2, y2 pixels): each box grown by the
        margin, overlapping ones merged into their union (people far apart cost two small
        regions, not one that spans the image between them)."""
        cfg = self.config
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        due = self.since_full is None or self.since_full + 1 >= cfg.every
        if cfg.every <= 1 or due or not len(boxes):
            return None
        h, w = float(image_hw[0]), float(image_hw[1])
        grow = cfg.margin * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        grown = np.stack([boxes[:, 0] - grow, boxes[:, 1] - grow, boxes[:, 2] + grow, boxes[:, 3] + grow], 1)
        grown = np.clip(grown, 0.0, [w, h, w, h])
        regions = merge_overlapping([g for g in grown if g[2] > g[0] and g[3] > g[1]])
        area = sum((r[2] - r[0]) * (r[3] - r[1]) for r in regions)
        if not regions or area > cfg.max_area * w * h:
            return None
        return [tuple(float(v) for v in r) for r in regions]

    def done(self, regions, found: int, followed: int) -> bool:
        """Record what ran; True when the regions found fewer people than they followed and
        the whole image must be searched in this frame."""
        if regions is None:
            self.since_full = 0
            self.counts["whole"] += 1
            return False
        self.counts["region"] += 1
        if found < followed:
            self.counts["redone"] += 1
            return True
        self.since_full += 1
        return False
