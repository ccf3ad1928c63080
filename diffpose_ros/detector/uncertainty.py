"""Per-joint 2D uncertainty (sigma in pixels) of the detector's H36M keypoints.

Model (per-axis standard deviation, pixels):

    sigma_j = max(MIN_SIGMA_PX, D * (A * k_j + B * (1 - c_j)))

with D the person's box diagonal (px), c_j the joint's confidence (after ``coco_to_h36m``)
and k_j the COCO OKS per-keypoint sigma mapped to the H36M joint (the relative annotation
spread of that body part: hips are vague, the nose is sharp). The first term is the spread a
confident keypoint still has (scales with the person's size, shaped like human annotation
noise); the second grows as the detector's confidence drops (occluded / out-of-image /
guessed keypoints).

A and B were fitted, not guessed (``fit_sigma_model``, run
``python -m diffpose_ros.detector.uncertainty``): every shared image of people and frames of
vtest.avi are run through the detector under strong test-time perturbations (horizontal
flip, scale 0.6-1.4, shifts of +-12 %, a small rotation); the keypoints are mapped back to
the original image and matched to the unperturbed person by box IoU; the per-axis spread of
each joint across perturbations is the target, the mean confidence the input. A and B
minimise the squared log ratio of model to measured sigma. The spread measures how unstable
a keypoint is, which is a lower bound of its true error (a consistent bias is not seen), so
the model is a floor, not an overestimate. The numbers of the fit are next to A and B below.
"""
from __future__ import annotations

import json

import numpy as np

from diffpose_ros.skeleton import COCO_JOINTS, COCO_OKS_SIGMAS, H36M_JOINTS

MIN_SIGMA_PX = 0.5

_oks = dict(zip(COCO_JOINTS, COCO_OKS_SIGMAS))
# OKS sigma of the COCO keypoint(s) each H36M joint is built from (coco_to_h36m)
H36M_OKS_K = np.array([
    _oks["l_hip"],                                                    # pelvis (mid-hips)
    _oks["r_hip"], _oks["r_knee"], _oks["r_ankle"],
    _oks["l_hip"], _oks["l_knee"], _oks["l_ankle"],
    (_oks["l_hip"] + _oks["l_shoulder"]) / 2,                         # spine
    _oks["l_shoulder"],                                               # thorax (mid-shoulders)
    _oks["nose"],                                                     # neck_nose
    (_oks["l_eye"] + _oks["l_ear"]) / 2,                              # head (from the face)
    _oks["l_shoulder"], _oks["l_elbow"], _oks["l_wrist"],
    _oks["r_shoulder"], _oks["r_elbow"], _oks["r_wrist"],
])
assert len(H36M_OKS_K) == len(H36M_JOINTS)

# Fitted by `python -m diffpose_ros.detector.uncertainty` (seed 0, 5 photos + 16 vtest
# frames, 16 perturbations each; 24 persons, 408 joint samples). Output of that run:
#   A 0.1001, B 0.0372, median model/measured 1.05, rms log ratio 0.55 (0.93 without the
#   confidence term), Spearman(conf, spread/diagonal) -0.60, median measured spread 1.5 px
#   for conf >= 0.5 and 24 px for conf < 0.5 (57 samples). seed 1 / 16 frames gave A 0.104,
#   B 0.033, i.e. the fit is stable to ~10 %.
A = 0.1001
B = 0.0372


def keypoint_sigma_px(conf, box_size, a: float = A, b: float = B) -> np.ndarray:
    """sigma (px) per joint from confidences ``conf`` (...,17) and box diagonals ``box_size`` (...)."""
    conf = np.asarray(conf, dtype=np.float64)
    size = np.asarray(box_size, dtype=np.float64)
    if conf.shape[-1:] != (len(H36M_JOINTS),):
        raise ValueError(f"conf must have shape (...,17), got {conf.shape}")
    if size.shape != conf.shape[:-1]:
        raise ValueError(f"box_size shape {size.shape} must equal conf's leading shape {conf.shape[:-1]}")
    if np.any(size < 0):
        raise ValueError("box_size must be >= 0")
    c = np.clip(conf, 0.0, 1.0)
    sigma = size[..., None] * (a * H36M_OKS_K + b * (1.0 - c))
    return np.maximum(sigma, MIN_SIGMA_PX)


def box_diagonal(box) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return np.hypot(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])


# A detector's person box reaches past the outermost keypoints (head top above the eyes, feet
# below the ankles, hands past the wrists): about 15 % larger than the keypoints' extent.
KEYPOINT_BOX_MARGIN = 1.15


def keypoint_box_diagonal(keypoints, conf, min_conf: float = 0.3) -> np.ndarray:
    """Box diagonal (px) from keypoints (...,J,2) alone, for callers that have no detector box
    (the lifter, offline tools): the extent of the joints seen with conf >= min_conf (all joints
    where fewer than two are), times KEYPOINT_BOX_MARGIN."""
    kp = np.asarray(keypoints, dtype=np.float64)
    seen = np.asarray(conf) >= min_conf
    seen = np.where(seen.sum(-1, keepdims=True) >= 2, seen, True)
    seen = seen[..., None] & ~np.isnan(kp)          # (nanmax and nanmin are several times slower)
    extent = np.where(seen, kp, -np.inf).max(-2) - np.where(seen, kp, np.inf).min(-2)
    return KEYPOINT_BOX_MARGIN * np.hypot(extent[..., 0], extent[..., 1])


# ---------------------------------------------------------------- fitting (reproducible)

def _perturbations(seed: int = 0):
    """(flip, scale, shift_x_frac, shift_y_frac, angle_deg) list; the first is the identity."""
    rng = np.random.default_rng(seed)
    out = [(False, 1.0, 0.0, 0.0, 0.0)]
    for i in range(15):
        out.append((bool(i % 2), float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.12, 0.12)),
                    float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-8, 8))))
    return out


def _affine(shape, flip, scale, sx, sy, angle):
    h, w = shape[:2]
    m = cv2_rotation((w / 2, h / 2), angle, scale)
    m[0, 2] += sx * w
    m[1, 2] += sy * h
    if flip:  # x -> w - x after the rest
        m = np.array([[-1, 0, w], [0, 1, 0]], dtype=np.float64) @ np.vstack([m, [0, 0, 1]])
    return m


def cv2_rotation(center, angle, scale):
    import cv2
    return cv2.getRotationMatrix2D(center, angle, scale).astype(np.float64)


_COCO_FLIP = [COCO_JOINTS.index(n.replace("l_", "#").replace("r_", "l_").replace("#", "r_"))
              for n in COCO_JOINTS]


def measure_spread(detector, images, seed: int = 0, min_matches: int = 8, min_score: float = 0.5):
    """Per (person, joint): measured per-axis spread (px), mean conf, box diagonal."""
    import cv2

    from diffpose_ros.detector.coco_to_h36m import coco_to_h36m
    from diffpose_ros.detector.yolo_pose import box_iou

    pert = _perturbations(seed)
    rows = []
    for image in images:
        refs = [d for d in detector.detect(image) if d.score >= min_score]
        if not refs:
            continue
        ref_boxes = np.stack([d.box for d in refs])
        kp = [[] for _ in refs]
        cf = [[] for _ in refs]
        for p in pert:
            m = _affine(image.shape, *p)
            warped = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderValue=0)
            inv = cv2.invertAffineTransform(m)
            for d in detector.detect(warped):
                k = d.keypoints @ inv[:, :2].T + inv[:, 2]
                c = d.keypoint_conf
                if p[0]:  # flipped image: the detector's left is the person's right
                    k, c = k[_COCO_FLIP], c[_COCO_FLIP]
                corners = np.array([[d.box[0], d.box[1]], [d.box[2], d.box[1]],
                                    [d.box[0], d.box[3]], [d.box[2], d.box[3]]]) @ inv[:, :2].T + inv[:, 2]
                box = np.r_[corners.min(0), corners.max(0)]
                iou = box_iou(box[None], ref_boxes)[0]
                i = int(np.argmax(iou))
                if iou[i] > 0.5:
                    kp[i].append(k)
                    cf[i].append(c)
        for i, ref in enumerate(refs):
            if len(kp[i]) < min_matches:
                continue
            h_kp, h_cf = coco_to_h36m(np.stack(kp[i]), np.stack(cf[i]))
            spread = np.sqrt(((h_kp - h_kp.mean(0)) ** 2).sum(-1).mean(0) / 2.0)  # per axis
            rows.append((spread, h_cf.mean(0), float(box_diagonal(ref.box))))
    if not rows:
        raise ValueError("no person was detected consistently enough to measure a spread")
    spread = np.stack([r[0] for r in rows])
    conf = np.stack([r[1] for r in rows])
    diag = np.array([r[2] for r in rows])
    return spread, conf, diag


def fit_sigma_model(spread, conf, diag):
    """Fit (A, B) by least squares on log(model / measured); returns a dict with diagnostics."""
    from scipy.optimize import least_squares

    y = np.maximum(spread, MIN_SIGMA_PX).ravel()

    def model(params):
        a, b = np.exp(params)
        return keypoint_sigma_px(conf, diag, a, b).ravel()

    res = least_squares(lambda p: np.log(model(p)) - np.log(y), x0=np.log([0.1, 0.1]))
    a, b = (float(v) for v in np.exp(res.x))
    pred = model(res.x)
    ratio = np.log(pred / y)
    base = keypoint_sigma_px(conf, diag, a, 0.0).ravel()  # without the confidence term
    low = conf.ravel() < 0.5
    return {
        "A": round(a, 4), "B": round(b, 4), "persons": int(len(diag)), "samples": int(y.size),
        "median_ratio_model_over_measured": float(np.exp(np.median(ratio))),
        "rms_log_ratio": float(np.sqrt(np.mean(ratio ** 2))),
        "rms_log_ratio_without_conf_term": float(np.sqrt(np.mean(np.log(base / y) ** 2))),
        "spearman_conf_vs_relative_spread": float(_spearman(conf.ravel(), (spread / diag[:, None]).ravel())),
        "median_measured_px_conf_ge_0.5": float(np.median(y[~low])) if (~low).any() else None,
        "median_measured_px_conf_lt_0.5": float(np.median(y[low])) if low.any() else None,
        "samples_conf_lt_0.5": int(low.sum()),
    }


def _spearman(x, y):
    from scipy.stats import spearmanr
    return spearmanr(x, y).statistic


def fit_images(max_video_frames: int = 16):
    """The fit set: every shared photo of people plus evenly spaced vtest.avi frames."""
    import cv2

    from diffpose_ros.paths import IMAGES_DIR

    images = []
    for name in ("basketball1.png", "basketball2.png", "messi5.jpg", "grace_hopper.jpg", "astronaut.png"):
        img = cv2.imread(str(IMAGES_DIR / name), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(IMAGES_DIR / name)
        images.append(img)
    cap = cv2.VideoCapture(str(IMAGES_DIR / "vtest.avi"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 795
    for idx in np.linspace(0, n - 1, max_video_frames).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
        ok, frame = cap.read()
        if ok:
            images.append(frame)
    cap.release()
    return images


def main(argv=None):
    import argparse

    from diffpose_ros.detector.yolo_pose import YoloPoseDetector

    parser = argparse.ArgumentParser(description="Fit the 2D sigma model (A, B) on the shared images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--video-frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    det = YoloPoseDetector(threads=args.threads)
    spread, conf, diag = measure_spread(det, fit_images(args.video_frames), seed=args.seed)
    result = fit_sigma_model(spread, conf, diag)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
