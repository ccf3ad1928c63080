"""Detector-like noise on clean 2D keypoints (H36M order), with a correlated confidence.

A real 2D detector (HRNet, RTMPose, ...) is what feeds the lifter at run time, so training
inputs must look like its output, not like perfect projections. The model here follows the
COCO keypoint evaluation (OKS): the error of joint i scales with the person's size s and a
per-joint constant k_i = 2 * sigma_i (COCO OKS sigmas; small for the face, large for hips).

Per sample (one person in one frame), with s = sqrt(area of the bbox of the in-front clean
keypoints) in pixels (`scale`, returned):
  1. difficulty d ~ LogNormal(0, `difficulty_sigma`), clipped to `difficulty_range`
     (blur, clutter, unusual pose: some images are much harder than others).
  2. every joint: Gaussian error per axis with std  `base_std` * d * k_i * s.
  3. gross errors: with probability `p_swap` per sample one limb (arm or leg, chosen at random)
     is swapped left<->right (the classic detector failure); independently each joint with
     probability `p_wrong_limb` is placed on another limb's joint (+ the usual jitter). These
     joints keep a moderately high confidence ~ U(`swap_conf`), since detectors are confidently
     wrong in exactly these cases.
  4. missed joints: each joint with probability `p_miss` * d (and every invisible joint, see 6)
     is "missed": a detector still outputs a location, here uniformly random within the person
     box enlarged by `miss_box_scale`, with confidence ~ U(0, `miss_conf_max`).
  5. confidence of the other joints is OKS-like: c = exp(-e^2 / (2 (k_i s)^2)) for the true
     error e, raised to `conf_gamma`, times a per-sample calibration factor
     U(`conf_scale_range`), plus N(0, `conf_noise`), clipped to [0, 1]. It therefore correlates
     with the error but is not a perfect oracle.
  6. joints outside the image or behind the camera (visible == False) are treated as missed:
     low confidence, and the output location is clamped into the image (a detector can only
     answer inside the image).
  7. with `sequential=True` (samples of one sequence, in time order) the difficulty (in log
     space) and the Gaussian part of the error follow AR(1) processes with correlation
     `temporal_corr` between consecutive samples: a detector's error on a person drifts
     smoothly rather than being white, and the temporal lifter must learn that.
Returns noisy pixels, confidence and the per-joint true error (pixels).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose_ros.skeleton import COCO_JOINTS, COCO_OKS_SIGMAS, H36M_JOINTS, H36M_FLIP

# H36M joint -> COCO OKS sigma. Joints COCO lacks get the value of their nearest COCO analogue:
# pelvis/spine like the hips, thorax like the shoulders, neck_nose like the nose/ears mean,
# head (top) like the ears (a head top is located about as loosely as an ear).
_COCO = dict(zip(COCO_JOINTS, COCO_OKS_SIGMAS))
H36M_OKS_SIGMAS = np.array([
    _COCO["l_hip"],                                            # pelvis
    _COCO["r_hip"], _COCO["r_knee"], _COCO["r_ankle"],
    _COCO["l_hip"], _COCO["l_knee"], _COCO["l_ankle"],
    _COCO["l_hip"],                                            # spine
    _COCO["l_shoulder"],                                       # thorax
    (_COCO["nose"] + _COCO["l_ear"]) / 2,                      # neck_nose
    _COCO["l_ear"],                                            # head top
    _COCO["l_shoulder"], _COCO["l_elbow"], _COCO["l_wrist"],
    _COCO["r_shoulder"], _COCO["r_elbow"], _COCO["r_wrist"],
])
assert len(H36M_OKS_SIGMAS) == len(H36M_JOINTS)

# limbs that a detector swaps left<->right as a whole (H36M indices)
SWAP_LIMBS = ((1, 2, 3), (2, 3), (3,), (11, 12, 13), (12, 13), (13,))


@dataclass
class NoiseConfig:
    base_std: float = 0.5                 # per-axis std in units of k_i * s (0.5 ~ mean OKS 0.8)
    difficulty_sigma: float = 0.4
    difficulty_range: tuple = (0.3, 3.0)
    p_swap: float = 0.03
    p_wrong_limb: float = 0.01
    swap_conf: tuple = (0.3, 0.8)
    p_miss: float = 0.02
    miss_box_scale: float = 1.5
    miss_conf_max: float = 0.1
    conf_gamma: float = 1.0
    conf_scale_range: tuple = (0.85, 1.0)
    conf_noise: float = 0.05
    temporal_corr: float = 0.5            # AR(1) correlation between consecutive samples (sequential=True)
    enabled: bool = True                  # False: clean keypoints, conf from visibility only


def person_scale(kp_px, valid):
    """sqrt(bbox area) (N,) of the valid keypoints of each sample, and the bbox (N, 4)."""
    big = np.where(valid[..., None], kp_px, np.nan)
    lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 1.0)
    wh = np.maximum(hi - lo, 1.0)
    return np.sqrt(wh[:, 0] * wh[:, 1]), np.concatenate([lo, hi], axis=1)


def _ar1(rng, shape, rho):
    """Standard-normal samples along axis 0 with lag-1 correlation rho (stationary AR(1))."""
    white = rng.normal(size=shape)
    if rho <= 0 or shape[0] < 2:
        return white
    from scipy.signal import lfilter
    c = np.sqrt(1 - rho ** 2)
    # y[i] = rho * y[i-1] + c * x[i], started at y[0] = x[0] so the process is stationary
    zi = ((1 - c) * white[0])[None]
    out, _ = lfilter([c], [1.0, -rho], white, axis=0, zi=zi)
    return out


def apply_noise(rng: np.random.Generator, kp_px, visible, in_front, image_size, cfg: NoiseConfig | None = None,
                sequential: bool = False):
    """kp_px (N,17,2) clean pixels, visible/in_front (N,17) bool, image_size (N,2) or (2,).
    sequential: the N samples are consecutive frames of one sequence (see step 7).

    Returns (noisy px (N,17,2), conf (N,17), error px (N,17), scale (N,)).
    """
    cfg = cfg or NoiseConfig()
    kp = np.asarray(kp_px, np.float64)
    N, J, _ = kp.shape
    visible = np.asarray(visible, bool)
    size = np.broadcast_to(np.asarray(image_size, np.float64), (N, 2))
    s, box = person_scale(kp, np.asarray(in_front, bool))
    k = 2 * H36M_OKS_SIGMAS[None, :] * s[:, None]                       # (N, J)
    if not cfg.enabled:
        conf = visible.astype(np.float64)
        return kp.copy(), conf, np.zeros((N, J)), s

    rho = cfg.temporal_corr if sequential else 0.0
    d = np.clip(np.exp(cfg.difficulty_sigma * _ar1(rng, (N,), rho)), *cfg.difficulty_range)
    noisy = kp + _ar1(rng, (N, J, 2), rho) * (cfg.base_std * d[:, None, None] * k[..., None])

    gross = np.zeros((N, J), bool)
    # left/right swap of one limb
    for n in np.flatnonzero(rng.random(N) < cfg.p_swap):
        limb = SWAP_LIMBS[rng.integers(len(SWAP_LIMBS))]
        if rng.random() < 0.5:
            limb = tuple(H36M_FLIP[j] for j in limb)
        idx = np.array(limb + tuple(H36M_FLIP[j] for j in limb))
        src = np.array(tuple(H36M_FLIP[j] for j in limb) + limb)
        noisy[n, idx] = kp[n, src] + (noisy[n, idx] - kp[n, idx])
        gross[n, idx] = True
    # a joint placed on another joint (wrong limb)
    wrong = rng.random((N, J)) < cfg.p_wrong_limb
    if wrong.any():
        n_idx, j_idx = np.nonzero(wrong)
        other = (j_idx + rng.integers(1, J, size=len(j_idx))) % J
        noisy[n_idx, j_idx] = kp[n_idx, other] + (noisy[n_idx, j_idx] - kp[n_idx, j_idx])
        gross |= wrong

    # missed joints: the detector answers somewhere in (an enlarged) person box
    missed = (rng.random((N, J)) < cfg.p_miss * d[:, None]) | ~visible
    if missed.any():
        centre = (box[:, :2] + box[:, 2:]) / 2
        half = (box[:, 2:] - box[:, :2]) / 2 * cfg.miss_box_scale
        rand = centre[:, None] + rng.uniform(-1, 1, (N, J, 2)) * half[:, None]
        noisy = np.where(missed[..., None], rand, noisy)
    # out-of-image answers are clamped into the image
    noisy = np.clip(noisy, 0.0, size[:, None, :] - 1.0)

    err = np.linalg.norm(noisy - kp, axis=-1)
    err = np.where(in_front, err, np.nan_to_num(err, nan=0.0))
    conf = np.exp(-err ** 2 / (2 * k ** 2)) ** cfg.conf_gamma
    conf *= rng.uniform(*cfg.conf_scale_range, N)[:, None]
    conf += rng.normal(0, cfg.conf_noise, (N, J))
    conf = np.where(gross, rng.uniform(*cfg.swap_conf, (N, J)), conf)
    conf = np.where(missed, rng.uniform(0, cfg.miss_conf_max, (N, J)), conf)
    conf = np.clip(conf, 0.0, 1.0)
    return noisy, conf, err, s
