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
     Self-occluded joints (`occluded`, from `self_occlusion`: hidden behind the torso, the far
     hip or shoulder in a side view, the nose of a person facing away) are not missed: a
     detector guesses them from the body, consistently but worse, so their Gaussian error is
     `occl_error_scale` times larger and their confidence is multiplied by U(`occl_conf`).
  5. confidence of the other joints is OKS-like: c = exp(-e^2 / (2 (w_g k_i s)^2)) for the true
     error e, with a kernel width `conf_width` w_g per joint group (face, torso, limbs) fitted
     so that the confidences are distributed as the real detector's (data/noise_check.py),
     raised to `conf_gamma`, times a per-sample calibration factor U(`conf_scale_range`), plus
     N(0, `conf_noise`), clipped to [0, 1]. It therefore correlates with the error but is not a
     perfect oracle.
  6. joints outside the image or behind the camera (visible == False) are treated as missed:
     low confidence, and the output location is clamped into the image (a detector can only
     answer inside the image).
  7. inside a temporal window ((N,T,17,2) input, or `sequential=True` for one sequence) the
     difficulty (in log space) and the Gaussian part of the error follow AR(1) processes with
     correlation `temporal_corr` between consecutive frames: a detector's error on a person
     drifts smoothly rather than being white, and the temporal lifter must learn that.
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
_J = {n: i for i, n in enumerate(H36M_JOINTS)}
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

# joint groups of `conf_width` (and of data/noise_check.py)
JOINT_GROUPS = {
    "face": ("neck_nose", "head"),
    "torso": ("pelvis", "spine", "thorax", "l_hip", "r_hip", "l_shoulder", "r_shoulder"),
    "limbs": ("l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_knee", "r_knee", "l_ankle", "r_ankle"),
}
_GROUP_OF = np.array([next(i for i, names in enumerate(JOINT_GROUPS.values()) if n in names) for n in H36M_JOINTS])

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
    # confidence calibrated against YOLO11n-pose (python -m diffpose_ros.data.noise_check --fit):
    # the 50/75/90 % quantiles of the confidences per joint group match the detector's on the
    # shared photos; before, the training confidences stayed below 0.9 while the detector gives
    # 0.95-0.99 to most joints (conf_width 1, conf_scale_range (0.85, 1), conf_noise 0.05)
    conf_scale_range: tuple = (1.0, 1.0)
    conf_noise: float = 0.02
    conf_width: tuple = (1.585, 7.079, 2.512)   # OKS kernel width multiplier, face / torso / limb joints
    occl_error_scale: float = 2.0
    occl_conf: tuple = (0.1, 0.6)
    temporal_corr: float = 0.5            # AR(1) correlation between consecutive samples (sequential=True)
    enabled: bool = True                  # False: clean keypoints, conf from visibility only


def person_scale(kp_px, valid):
    """sqrt(bbox area) (N,) of the valid keypoints of each sample, and the bbox (N, 4)."""
    x = np.asarray(kp_px)
    x = np.ascontiguousarray(np.swapaxes(x, 1, 2))            # (N, 2, J): reduce the last axis
    v = np.asarray(valid, bool)[:, None, :]
    lo = np.minimum.reduce(x, axis=2, where=v, initial=np.inf)     # no masked copies
    hi = np.maximum.reduce(x, axis=2, where=v, initial=-np.inf)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 1.0)
    wh = np.maximum(hi - lo, 1.0)
    return np.sqrt(wh[:, 0] * wh[:, 1]), np.concatenate([lo, hi], axis=1)


def _exact_in(a, dt) -> bool:
    """Whether every value of a is exact in dtype dt (whole-pixel image sizes in float32 are)."""
    return a.dtype == dt or np.array_equal(np.asarray(a).astype(dt), a)


def _ar1(rng, shape, rho, axis=0, dtype=np.float64):
    """Standard-normal samples with lag-1 correlation rho along `axis` (stationary AR(1))."""
    white = rng.standard_normal(size=shape, dtype=dtype)
    if rho <= 0 or shape[axis] < 2:
        return white
    c = np.sqrt(1 - rho ** 2)
    # y[0] = x[0], y[i] = rho * y[i-1] + c * x[i]: unit variance at every step (stationary);
    # a loop over the (short) time axis beats a general IIR filter on strided windows
    out = np.moveaxis(white, axis, 0)
    for i in range(1, out.shape[0]):
        out[i] = rho * out[i - 1] + c * out[i]
    return white


_LIMBS = [_J[n] for n in ("l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_knee", "r_knee", "l_ankle", "r_ankle")]


def self_occlusion(p_cam, px, K):
    """Joints a detector cannot see although they are in the image (..., 17) bool, from the
    camera-frame joints p_cam (..., 17, 3), their pixels px (..., 17, 2) and K (..., 3, 3):
      * a limb joint (elbow, wrist, knee, ankle) inside the torso's silhouette in the image (a
        band around the pelvis -> thorax segment as wide as the projected shoulders, at least
        as wide as a 26 cm deep body) and more than 5 cm behind the torso at that point;
      * the far hip (shoulder) of a person seen from the side: farther from the camera than its
        partner by more than 0.85 x their distance (turned more than ~58 degrees from frontal);
      * the nose of a person facing away (the body's forward direction, from the hips and the
        trunk, points more than ~100 degrees away from the camera)."""
    p_cam, px = np.asarray(p_cam), np.asarray(px)
    z = p_cam[..., 2]
    a, b = px[..., _J["pelvis"], :], px[..., _J["thorax"], :]
    ab = b - a
    q, zq = px[..., _LIMBS, :], z[..., _LIMBS]
    t = np.clip(np.einsum("...jd,...d->...j", q - a[..., None, :], ab) / np.maximum((ab * ab).sum(-1), 1e-6)[..., None], 0, 1)
    closest = a[..., None, :] + t[..., None] * ab[..., None, :]
    dist = np.linalg.norm(q - closest, axis=-1)
    z_torso = z[..., [_J["pelvis"]]] + t * (z[..., [_J["thorax"]]] - z[..., [_J["pelvis"]]])
    fx = np.asarray(K)[..., 0, 0]
    half = np.maximum(np.linalg.norm(px[..., _J["l_shoulder"], :] - px[..., _J["r_shoulder"], :], axis=-1) / 2,
                      0.13 * fx / np.maximum(z[..., _J["thorax"]], 1e-3))
    occ = np.zeros(z.shape, bool)
    occ[..., _LIMBS] = (dist < half[..., None]) & (zq > z_torso + 0.05)
    for l, r in (("l_hip", "r_hip"), ("l_shoulder", "r_shoulder")):
        gap = np.linalg.norm(p_cam[..., _J[l], :] - p_cam[..., _J[r], :], axis=-1)
        dz = z[..., _J[l]] - z[..., _J[r]]
        occ[..., _J[l]] = dz > 0.85 * gap
        occ[..., _J[r]] = -dz > 0.85 * gap
    left = p_cam[..., _J["l_hip"], :] - p_cam[..., _J["r_hip"], :]
    up = p_cam[..., _J["thorax"], :] - p_cam[..., _J["pelvis"], :]
    forward = np.cross(left, up)            # right-handed frames: left x up = the body's forward
    to_cam = -p_cam[..., _J["thorax"], :]
    cos = (forward * to_cam).sum(-1) / np.maximum(np.linalg.norm(forward, axis=-1) * np.linalg.norm(to_cam, axis=-1), 1e-9)
    occ[..., _J["neck_nose"]] = cos < -0.17
    return occ


def apply_noise(rng: np.random.Generator, kp_px, visible, in_front, image_size, cfg: NoiseConfig | None = None,
                sequential: bool = False, occluded=None):
    """Detector-like noise on clean pixels; see the module docstring.

    kp_px (N,17,2) clean pixels with visible / in_front (N,17) bool and image_size (N,2) or (2,);
    or temporal windows: kp_px (N,T,17,2), visible / in_front (N,T,17), image_size (N,2) / (N,T,2)
    / (2,), each window one person seen by one camera, oldest frame first: the AR(1) processes of
    step 7 then run along T inside every window (independent windows), and the per-person
    confidence calibration is one draw per window.
    sequential: (N,17,2) input whose N samples are consecutive frames of ONE sequence.
    occluded: optional bool like visible, self-occluded joints (`self_occlusion`, step 4).

    Returns (noisy px, conf, error px, scale) shaped like the input: (N[,T],17,2), (N[,T],17),
    (N[,T],17), (N[,T]).
    """
    cfg = cfg or NoiseConfig()
    kp = np.asarray(kp_px)
    # float32 input stays float32 (the generator's: half the memory traffic); else float64
    dt = np.float32 if kp.dtype == np.float32 else np.float64
    kp = kp.astype(dt, copy=False)
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
    occluded = np.zeros((N, J), bool) if occluded is None else np.asarray(occluded, bool).reshape(N, J) & visible
    in_front = np.asarray(in_front, bool).reshape(N, J)
    size = np.asarray(image_size, dt)
    if size.ndim == 2 and np.ndim(kp_px) == 4 and size.shape[0] == G:      # one size per window
        size = np.repeat(size, T, axis=0)
    size = np.broadcast_to(size.reshape(-1, 2), (N, 2))
    s, box = person_scale(kp, in_front)
    k = (2 * H36M_OKS_SIGMAS[None, :]).astype(dt) * s[:, None]          # (N, J)

    def shaped(noisy, conf, err, s):
        return (noisy.reshape(*lead, J, 2), conf.reshape(*lead, J), err.reshape(*lead, J), s.reshape(lead))

    if not cfg.enabled:
        return shaped(kp.copy(), visible.astype(dt), np.zeros((N, J), dt), s)

    rho = cfg.temporal_corr if T > 1 else 0.0
    d = np.clip(np.exp(cfg.difficulty_sigma * _ar1(rng, (G, T), rho, 1, dt)), *cfg.difficulty_range).reshape(N)
    std = cfg.base_std * d[:, None] * k
    if occluded.any():
        std = np.where(occluded, std * cfg.occl_error_scale, std)
    noisy = kp + _ar1(rng, (G, T, J, 2), rho, 1, dt).reshape(N, J, 2) * std[..., None]

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
    wrong = rng.random((N, J), dtype=np.float32) < cfg.p_wrong_limb
    if wrong.any():
        n_idx, j_idx = np.nonzero(wrong)
        other = (j_idx + rng.integers(1, J, size=len(j_idx))) % J
        noisy[n_idx, j_idx] = kp[n_idx, other] + (noisy[n_idx, j_idx] - kp[n_idx, j_idx])
        gross |= wrong

    # missed joints: the detector answers somewhere in (an enlarged) person box
    missed = (rng.random((N, J), dtype=np.float32) < cfg.p_miss * d[:, None]) | ~visible
    m_n, m_j = np.nonzero(missed)
    if len(m_n):
        centre = (box[m_n, :2] + box[m_n, 2:]) / 2
        half = (box[m_n, 2:] - box[m_n, :2]) / 2 * cfg.miss_box_scale
        noisy[m_n, m_j] = centre + rng.uniform(-1, 1, (len(m_n), 2)) * half
    # out-of-image answers are clamped into the image
    np.maximum(noisy, 0.0, out=noisy)
    np.minimum(noisy, (size - 1.0).astype(dt)[:, None, :] if _exact_in(size, dt) else size[:, None, :] - 1.0, out=noisy)

    diff = noisy - kp
    err = np.hypot(diff[..., 0], diff[..., 1])
    width = np.asarray(cfg.conf_width, dt)[_GROUP_OF]
    conf = np.exp(-0.5 * np.square(err / (k * width)))
    if cfg.conf_gamma != 1.0:
        conf **= cfg.conf_gamma
    conf *= np.repeat(rng.uniform(*cfg.conf_scale_range, G), T)[:, None].astype(dt)
    conf += cfg.conf_noise * rng.standard_normal((N, J), dtype=dt)
    o_n, o_j = np.nonzero(occluded)
    conf[o_n, o_j] *= rng.uniform(*cfg.occl_conf, len(o_n))
    g_n, g_j = np.nonzero(gross)
    conf[g_n, g_j] = rng.uniform(*cfg.swap_conf, len(g_n))
    conf[m_n, m_j] = rng.uniform(0, cfg.miss_conf_max, len(m_n))
    np.clip(conf, 0.0, 1.0, out=conf)
    return shaped(noisy, conf, err, s)
