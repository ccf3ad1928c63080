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
    v = valid[..., None]
    lo = np.where(v, kp_px, np.inf).min(axis=1)
    hi = np.where(v, kp_px, -np.inf).max(axis=1)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 1.0)
    wh = np.maximum(hi - lo, 1.0)
    return np.sqrt(wh[:, 0] * wh[:, 1]), np.concatenate([lo, hi], axis=1)


def _ar1(rng, shape, rho, axis=0):
    """Standard-normal samples with lag-1 correlation rho along `axis` (stationary AR(1))."""
    white = rng.normal(size=shape)
    if rho <= 0 or shape[axis] < 2:
        return white
    c = np.sqrt(1 - rho ** 2)
    # y[0] = x[0], y[i] = rho * y[i-1] + c * x[i]: unit variance at every step (stationary);
    # a loop over the (short) time axis beats a general IIR filter on strided windows
    out = np.moveaxis(white, axis, 0)
    for i in range(1, out.shape[0]):
        out[i] = rho * out[i - 1] + c * out[i]
    return white


def apply_noise(rng: np.random.Generator, kp_px, visible, in_front, image_size, cfg: NoiseConfig | None = None,
                sequential: bool = False):
    """Detector-like noise on clean pixels; see the module docstring.

    kp_px (N,17,2) clean pixels with visible / in_front (N,17) bool and image_size (N,2) or (2,);
    or temporal windows: kp_px (N,T,17,2), visible / in_front (N,T,17), image_size (N,2) / (N,T,2)
    / (2,), each window one person seen by one camera, oldest frame first: the AR(1) processes of
    step 7 then run along T inside every window (independent windows), and the per-person
    confidence calibration is one draw per window.
    sequential: (N,17,2) input whose N samples are consecutive frames of ONE sequence.

    Returns (noisy px, conf, error px, scale) shaped like the input: (N[,T],17,2), (N[,T],17),
    (N[,T],17), (N[,T]).
    """
    cfg = cfg or NoiseConfig()
    kp = np.asarray(kp_px, np.float64)
    if kp.ndim not in (3, 4) or kp.shape[-2:] != (len(H36M_JOINTS), 2):
        raise ValueError(f"kp_px must be (N,17,2) or (N,T,17,2), got {kp.shape}")
    lead = kp.shape[:-2]
    # groups (G, T) along which the temporal processes run
    if kp.ndim == 4:
        G, T = lead
    elif sequential:
        G, T = 1, lead[0]
    else:
        G, T = lead[0], 1
    J = kp.shape[-2]
    N = G * T
    kp = kp.reshape(N, J, 2)
    visible = np.asarray(visible, bool).reshape(N, J)
    in_front = np.asarray(in_front, bool).reshape(N, J)
    size = np.asarray(image_size, np.float64)
    if size.ndim == 2 and np.ndim(kp_px) == 4 and size.shape[0] == G:      # one size per window
        size = np.repeat(size, T, axis=0)
    size = np.broadcast_to(size.reshape(-1, 2), (N, 2))
    s, box = person_scale(kp, in_front)
    k = 2 * H36M_OKS_SIGMAS[None, :] * s[:, None]                       # (N, J)

    def shaped(noisy, conf, err, s):
        return (noisy.reshape(*lead, J, 2), conf.reshape(*lead, J), err.reshape(*lead, J), s.reshape(lead))

    if not cfg.enabled:
        return shaped(kp.copy(), visible.astype(np.float64), np.zeros((N, J)), s)

    rho = cfg.temporal_corr if T > 1 else 0.0
    d = np.clip(np.exp(cfg.difficulty_sigma * _ar1(rng, (G, T), rho, axis=1)), *cfg.difficulty_range).reshape(N)
    noisy = kp + _ar1(rng, (G, T, J, 2), rho, axis=1).reshape(N, J, 2) * (cfg.base_std * d[:, None, None] * k[..., None])

    gross = np.zeros((N, J), bool)
    # left/right swap of one limb (vectorised over the swapped samples)
    swap_n = np.flatnonzero(rng.random(N) < cfg.p_swap)
    if len(swap_n):
        limb_i = rng.integers(len(SWAP_LIMBS), size=len(swap_n))
        flip_side = rng.random(len(swap_n)) < 0.5
        for li, limb in enumerate(SWAP_LIMBS):
            for side in (False, True):
                rows = swap_n[(limb_i == li) & (flip_side == side)]
                if not len(rows):
                    continue
                lb = tuple(H36M_FLIP[j] for j in limb) if side else limb
                idx = np.array(lb + tuple(H36M_FLIP[j] for j in lb))
                src = np.array(tuple(H36M_FLIP[j] for j in lb) + lb)
                r = rows[:, None]
                noisy[r, idx] = kp[r, src] + (noisy[r, idx] - kp[r, idx])
                gross[r, idx] = True
    # a joint placed on another joint (wrong limb)
    wrong = rng.random((N, J)) < cfg.p_wrong_limb
    if wrong.any():
        n_idx, j_idx = np.nonzero(wrong)
        other = (j_idx + rng.integers(1, J, size=len(j_idx))) % J
        noisy[n_idx, j_idx] = kp[n_idx, other] + (noisy[n_idx, j_idx] - kp[n_idx, j_idx])
        gross |= wrong

    # missed joints: the detector answers somewhere in (an enlarged) person box
    missed = (rng.random((N, J)) < cfg.p_miss * d[:, None]) | ~visible
    m_n, m_j = np.nonzero(missed)
    if len(m_n):
        centre = (box[m_n, :2] + box[m_n, 2:]) / 2
        half = (box[m_n, 2:] - box[m_n, :2]) / 2 * cfg.miss_box_scale
        noisy[m_n, m_j] = centre + rng.uniform(-1, 1, (len(m_n), 2)) * half
    # out-of-image answers are clamped into the image
    noisy = np.clip(noisy, 0.0, size[:, None, :] - 1.0)

    err = np.linalg.norm(noisy - kp, axis=-1)
    err = np.where(in_front, err, np.nan_to_num(err, nan=0.0))
    conf = np.exp(-err ** 2 / (2 * k ** 2))
    if cfg.conf_gamma != 1.0:
        conf **= cfg.conf_gamma
    conf *= np.repeat(rng.uniform(*cfg.conf_scale_range, G), T)[:, None]
    conf += rng.normal(0, cfg.conf_noise, (N, J))
    g_n, g_j = np.nonzero(gross)
    conf[g_n, g_j] = rng.uniform(*cfg.swap_conf, len(g_n))
    conf[m_n, m_j] = rng.uniform(0, cfg.miss_conf_max, len(m_n))
    conf = np.clip(conf, 0.0, 1.0)
    return shaped(noisy, conf, err, s)
