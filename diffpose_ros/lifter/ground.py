"""Body size from the floor: the metric scale a monocular camera cannot see, when the camera's
height above the floor and its tilt are known (a robot knows both from its own geometry).

The image of a person fixes the pose only up to a scale about the camera centre: a body s times
larger and s times further away gives the same image, so the lifter places a typical-size body
(placement.py) and a 1.35 m person lands about 25 % too far. A foot on the floor breaks the tie.
With `up` the floor's normal in the camera frame (unit, pointing away from the floor) and h the
camera's height above it, every floor point X has up . X = -h. Let X_c be the placed position of
the lower ankle (the one touching the floor) and a0 its height above the floor in the lifter's
typical-size pose (FOOT_HEIGHT). Scaling the placed body by s about the camera centre keeps its
image and moves the ankle to s X_c at height s a0 above the floor:

    up . (s X_c) = -h + s a0        =>        s = h / (a0 - up . X_c)

(a0 - up . X_c is the ankle's drop below the camera plus its height: the camera height in the
units of the placed pose.) Its relative variance, from the ankle's placed covariance, its 2D
noise along the ray and the foot's own height (flat, on its toes: FOOT_HEIGHT_STD), is

    v = (up^T Sigma_c up + (z_c sigma_2d,c)^2 + FOOT_HEIGHT_STD^2) / (a0 - up . X_c)^2 .

It is fused with the body-size prior s ~ N(1, SIZE_PRIOR_STD^2) (the product of the two Gaussians),
so a low camera, whose rays meet the floor at a grazing angle, leans on the prior. An ankle the
detector does not see (outside the image, occluded) is where the pose puts it, its spread in the
hypotheses' covariance. Not used (s = 1, the prior alone): no camera height given, the
camera not above the ankle's floor point (a denominator under MIN_DROP), or an s outside
SCALE_RANGE (a child of under about 0.95 m or a person over 2.4 m: more likely a foot off the
floor or a wrong pose). A jump, a step or a stair the floor model cannot know of still biases s:
measured by diffpose-evaluate (the iClone clips climb and jump).

Measured on the leave-out protocol (README, "The DiffPose lifter"): the root error of the 1.34 m
bodies falls from 23 % of the distance to about 5 %.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..skeleton import H36M_JOINTS
from .placement import SEEN_CONF

FOOT_HEIGHT = 0.085        # m, the lower ankle above the floor for a typical adult standing (val clips' median)
FOOT_HEIGHT_STD = 0.03     # m, a foot flat, on its toes or its heel
# relative std of the size prior the floor's s is fused with: twice the adult stature spread of
# the training bodies (0.16 / 1.70), for the children and very tall people a robot meets too.
# Chosen on the val clips (scripts/choose_floor_prior.py, 800 draws, frame model): root error
# 7.06 % of the distance against 7.42 % with the adult spread and 7.25 % with the floor alone
SIZE_PRIOR_STD = 2 * 0.16 / 1.70
SCALE_RANGE = (0.55, 1.45)
MIN_DROP = 0.05            # m
ANKLES = (H36M_JOINTS.index("r_ankle"), H36M_JOINTS.index("l_ankle"))


@dataclass(frozen=True)
class Ground:
    """The floor in the camera (optical) frame: `up` its unit normal, `height` the camera's height
    above it in metres. Either may be one for all people ((3,), scalar) or one per person."""
    up: np.ndarray
    height: np.ndarray

    def __post_init__(self):
        up, h = np.asarray(self.up, np.float64), np.asarray(self.height, np.float64)
        if up.shape[-1:] != (3,) or not np.isfinite(up).all() or not np.isfinite(h).all():
            raise ValueError(f"Ground: up must be finite (..., 3), height finite; got {up.shape}, {h}")
        norm = np.linalg.norm(up, axis=-1)
        if not (norm > 0.5).all():
            raise ValueError(f"Ground: up must be a unit vector, got norm {norm}")
        if not (h > 0).all():
            raise ValueError(f"Ground: the camera height above the floor must be > 0 m, got {h}")
        object.__setattr__(self, "up", up / norm[..., None])
        object.__setattr__(self, "height", h)

    @classmethod
    def from_tilt(cls, height: float, pitch_deg: float, roll_deg: float = 0.0) -> "Ground":
        """A camera `height` m above the floor, its optical axis `pitch_deg` below the horizon
        (positive = looking down) and rolled by `roll_deg` about it (positive: the world's up
        leans toward the image's +x); the convention of data/virtual_camera."""
        from ..data.virtual_camera import rotation_from_angles
        R = rotation_from_angles(np.zeros(1), np.deg2rad([-float(pitch_deg)]), np.deg2rad([float(roll_deg)]))[0]
        return cls(R[:, 1], float(height))   # R @ e_y: the world's up in the camera frame


def floor_scale(positions, contact_cov, sigma_n, conf, ground: Ground):
    """Per person: (s (P,), relative variance of the fused size error (P,), used (P,) bool).

    positions (P,J,3) the placed pose, contact_cov (P,J,3,3) a covariance of each joint's placed
    position (only the ankles are read), sigma_n (P,J) 2D std in normalised units, conf (P,J)."""
    x = np.asarray(positions, np.float64)
    P = len(x)
    up = np.broadcast_to(ground.up, (P, 3))
    h = np.broadcast_to(ground.height, (P,))
    rows = np.arange(P)
    heights = np.einsum("pjk,pk->pj", x[:, ANKLES], up)         # relative to the camera
    c = np.asarray(ANKLES)[heights.argmin(1)]                   # the lower ankle touches the floor
    xc = x[rows, c]
    den = FOOT_HEIGHT - np.einsum("pk,pk->p", xc, up)
    safe = np.where(den > MIN_DROP, den, 1.0)
    s_g = h / safe
    cov_c = np.asarray(contact_cov, np.float64)[rows, c]
    # a seen ankle's own 2D noise moves it along its ray; an unseen one (outside the image,
    # occluded) is where the pose puts it, and its spread is in the hypotheses' covariance
    seen = np.asarray(conf)[rows, c] >= SEEN_CONF
    var_2d = np.where(seen, (xc[:, 2] * np.asarray(sigma_n)[rows, c]) ** 2, 0.0)
    var_den = np.einsum("pi,pij,pj->p", up, cov_c, up) + var_2d + FOOT_HEIGHT_STD ** 2
    var_g = s_g ** 2 * var_den / safe ** 2                      # of s_g (absolute)
    used = (den > MIN_DROP) & (s_g >= SCALE_RANGE[0]) & (s_g <= SCALE_RANGE[1])
    prior = SIZE_PRIOR_STD ** 2
    s = np.where(used, (var_g + s_g * prior) / (var_g + prior), 1.0)
    var_rel = np.where(used, prior * var_g / (prior + var_g) / s ** 2, prior)
    return s, var_rel, used


def apply_floor(t: dict, sigma_n, conf, ground: Ground) -> dict:
    """The raw terms of Lifter.raw_terms rescaled by the floor's s (lengths s, covariances s^2),
    with `scale` (P,), `size_w` (P,) = the fused relative size variance over the prior's (1 where
    the floor is not used) and `ground_used` (P,). chi is scale-free and stays.

    Also `track_share` (P,): the share of the size error that is the same in every frame of a
    track. The fused size is w_p * 1 + (1 - w_p) * s_g with the prior's weight w_p = var_g /
    (var_g + prior), so its error is w_p times the person's own offset from the prior (one value
    per person) plus (1 - w_p) times the floor measurement's error (new in every frame); the
    first has the variance w_p^2 prior = w_p * (fused variance): track_share = w_p (1 where the
    floor is not used, the prior alone)."""
    contact = t["hyp_cov_abs"] + t["cov_t2d"][:, None]
    s, var_rel, used = floor_scale(t["positions"], contact, sigma_n, conf, ground)
    out = dict(t)
    for k in ("pose", "positions"):
        out[k] = t[k] * s[:, None, None]
    out["root"] = t["root"] * s[:, None]
    out["cov_t2d"] = t["cov_t2d"] * s[:, None, None] ** 2
    out["hyp_cov"] = t["hyp_cov"] * s[:, None, None, None] ** 2
    out["hyp_cov_abs"] = t["hyp_cov_abs"] * s[:, None, None, None] ** 2
    size_w = var_rel / SIZE_PRIOR_STD ** 2
    out.update(scale=s, size_w=size_w, track_share=size_w * s ** 2, ground_used=used)   # w_p = v_rel s^2 / prior
    return out
