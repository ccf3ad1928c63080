"""Overlays for checking the detector by eye: boxes, COCO skeleton, keypoint confidence, ids."""
from __future__ import annotations

import cv2
import numpy as np

from diffpose_ros.detector.yolo_pose import to_bgr
from diffpose_ros.skeleton import COCO_JOINTS

_J = {n: i for i, n in enumerate(COCO_JOINTS)}
COCO_EDGES = tuple((_J[a], _J[b]) for a, b in (
    ("l_ankle", "l_knee"), ("l_knee", "l_hip"), ("r_ankle", "r_knee"), ("r_knee", "r_hip"),
    ("l_hip", "r_hip"), ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"),
    ("l_shoulder", "r_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
    ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"), ("nose", "l_eye"), ("nose", "r_eye"),
    ("l_eye", "l_ear"), ("r_eye", "r_ear"),
))
_PALETTE = ((255, 128, 0), (0, 200, 255), (255, 0, 255), (0, 255, 0), (0, 0, 255),
            (255, 255, 0), (128, 0, 255), (0, 128, 255))


def _conf_colour(c: float):
    """Red (0) -> yellow (0.5) -> green (1), BGR."""
    c = float(np.clip(c, 0, 1))
    return (0, int(255 * min(1, 2 * c)), int(255 * min(1, 2 * (1 - c))))


def draw_detections(image, detections, track_ids=None, kpt_conf_min: float = 0.3,
                    show_conf: bool = True) -> np.ndarray:
    """Return a BGR copy of ``image`` with every detection drawn.

    Box and skeleton colour = the track id (or the detection index); keypoint dot colour = its
    confidence (red low, green high); keypoints below ``kpt_conf_min`` are hollow and their
    bones are not drawn.
    """
    out = to_bgr(image).copy()
    scale = max(out.shape[:2]) / 640.0
    thick = max(1, round(2 * scale))
    for n, det in enumerate(detections):
        tid = None if track_ids is None else track_ids[n]
        colour = _PALETTE[(tid if tid is not None else n) % len(_PALETTE)]
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        label = (f"id {tid} " if tid is not None else "") + f"{det.score:.2f}"
        cv2.putText(out, label, (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    colour, thick, cv2.LINE_AA)
        kp, kc = det.keypoints, det.keypoint_conf
        for a, b in COCO_EDGES:
            if kc[a] >= kpt_conf_min and kc[b] >= kpt_conf_min:
                cv2.line(out, tuple(np.round(kp[a]).astype(int)), tuple(np.round(kp[b]).astype(int)),
                         colour, thick, cv2.LINE_AA)
        for j in range(len(kp)):
            p = tuple(np.round(kp[j]).astype(int))
            filled = -1 if kc[j] >= kpt_conf_min else 1
            cv2.circle(out, p, max(2, round(4 * scale)), _conf_colour(kc[j]), filled, cv2.LINE_AA)
            if show_conf:
                cv2.putText(out, f"{kc[j]:.2f}", (p[0] + 4, p[1] - 3), cv2.FONT_HERSHEY_SIMPLEX,
                            0.3 * scale, _conf_colour(kc[j]), 1, cv2.LINE_AA)
    return out


def make_docs_overlay(out_path, detector=None) -> np.ndarray:
    """docs/detector_overlay.png: basketball1 -> basketball2 tracked (ids), and messi5."""
    import os

    from diffpose_ros.detector.tracker import Tracker
    from diffpose_ros.detector.yolo_pose import YoloPoseDetector
    from diffpose_ros.paths import IMAGES_DIR

    detector = detector or YoloPoseDetector()
    tracker = Tracker()
    panels = []
    for stamp, name in enumerate(("basketball1.png", "basketball2.png", "messi5.jpg")):
        img = cv2.imread(str(IMAGES_DIR / name), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FileNotFoundError(IMAGES_DIR / name)
        if name.startswith("messi"):
            tracker = Tracker()  # a different scene
        tracks = tracker.update(detector.detect(img), stamp / 30.0)
        panel = draw_detections(img, [t.detection for t in tracks], [t.track_id for t in tracks])
        cv2.putText(panel, name, (8, panel.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 2, cv2.LINE_AA)
        h = 480
        panels.append(cv2.resize(panel, (round(panel.shape[1] * h / panel.shape[0]), h)))
    sheet = np.concatenate(panels, axis=1)
    tmp = str(out_path) + ".tmp.png"
    cv2.imwrite(tmp, sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    os.replace(tmp, out_path)
    return sheet


if __name__ == "__main__":
    import sys
    make_docs_overlay(sys.argv[1] if len(sys.argv) > 1 else "docs/detector_overlay.png")
