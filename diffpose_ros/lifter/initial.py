"""Pose-specific initial distribution H_K (everything fitted on the training split).

H_K(input) = sum_m pi_m N(mu_enc + sigma * m_m, diag(sigma) Sigma_m diag(sigma))   (per pose)

* mu_enc: the frozen context encoder's root-relative 3D estimate (metres).
* sigma (B, 17, 3), metres, per joint and axis:
    x, y: sqrt(base_j^2 + (sigma_rel(conf_j) * S3D)^2). sigma_rel(conf) is the 2D keypoint error
          (noisy vs clean, per axis) relative to the person's 2D size s2d, fitted as a function of
          the confidence on the training data: log sigma_rel = a0 + a1 c + a2 c^2. An error of
          sigma_rel * s2d in normalised image units at depth Z is sigma_rel * s2d * Z metres, and
          s2d * Z ~ S3D (the person's 3D size, ~constant), so the 2D uncertainty propagates to
          sigma_rel * S3D metres.
    z:    base_j, the per-joint std of the encoder's depth residual on the training set.
  base_j (per axis) is the encoder's residual std on the training set.
* {pi_m, m_m, Sigma_m}: a Gaussian mixture fitted by EM to the normalised residuals
  (s_true - mu_enc) / sigma of the training set (48-D, root excluded). It captures what the
  per-joint scales cannot: correlations between joints and multi-modal (e.g. depth-flip) errors.
"""
import numpy as np
import torch
from torch import nn

from ..skeleton import NUM_JOINTS, ROOT

SIGMA_REL_RANGE = (1e-3, 1.0)


def person_scale_2d(xy: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """s2d (S,) as in encoder.normalise_2d (confidence-weighted RMS distance to the pelvis)."""
    rel = xy - xy[:, ROOT:ROOT + 1]
    w = conf + 0.05
    return np.sqrt((w * (rel ** 2).sum(-1)).sum(-1) / w.sum(-1) + 1e-8)


def fit_conf_sigma(kp_noisy, kp_clean, conf, n_bins: int = 20):
    """Fit log sigma_rel(conf) = a0 + a1 c + a2 c^2 (per-axis RMS 2D error / s2d).

    Returns (coefficients (3,), table dict with the binned data for the model card).
    """
    kp_noisy, kp_clean, conf = (np.asarray(a, np.float64) for a in (kp_noisy, kp_clean, conf))
    s2d = person_scale_2d(kp_clean, conf)
    err = (kp_noisy - kp_clean) / s2d[:, None, None]
    sq = (err ** 2).mean(-1).ravel()  # per-axis mean square
    c = conf.ravel()
    edges = np.unique(np.quantile(c, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, len(edges) - 2)
    centres, rms, counts = [], [], []
    for b in range(len(edges) - 1):
        sel = idx == b
        if sel.sum() < 20:
            continue
        centres.append(c[sel].mean())
        rms.append(np.sqrt(sq[sel].mean()))
        counts.append(sel.sum())
    centres, rms, counts = map(np.array, (centres, rms, counts))
    if len(centres) < 3:  # confidence (almost) constant: fall back to a constant sigma
        coef = np.array([np.log(max(np.sqrt(sq.mean()), SIGMA_REL_RANGE[0])), 0.0, 0.0])
    else:
        a = np.stack([np.ones_like(centres), centres, centres ** 2], 1) * np.sqrt(counts)[:, None]
        coef = np.linalg.lstsq(a, np.log(np.maximum(rms, 1e-6)) * np.sqrt(counts), rcond=None)[0]
    return coef.astype(np.float64), {"conf": centres.tolist(), "rms_rel": rms.tolist(),
                                     "count": counts.tolist()}


class PosePrior(nn.Module):
    """Computes the input-dependent normalisation scale sigma (B, 17, 3) in metres."""

    def __init__(self):
        super().__init__()
        self.register_buffer("conf_coef", torch.tensor([np.log(0.05), 0.0, 0.0], dtype=torch.float32))
        self.register_buffer("s3d", torch.tensor(0.5))
        self.register_buffer("base", torch.full((NUM_JOINTS, 3), 0.05))

    def sigma_rel(self, conf):
        c = self.conf_coef
        return torch.exp(c[0] + c[1] * conf + c[2] * conf * conf).clamp(*SIGMA_REL_RANGE)

    def forward(self, kp_last):  # (B, 17, 3) -> (B, 17, 3)
        s2 = (self.sigma_rel(kp_last[..., 2]) * self.s3d) ** 2  # (B, 17)
        xy = torch.sqrt(self.base[:, :2] ** 2 + s2.unsqueeze(-1))
        z = self.base[:, 2:].expand_as(xy[..., :1])
        sig = torch.cat([xy, z], dim=-1)
        root = torch.zeros_like(sig[:, :1]) + 1.0  # root is not diffused; 1 keeps it well defined
        return torch.cat([root, sig[:, 1:]], dim=1)


def person_scale_3d(kp_clean: np.ndarray, conf: np.ndarray, root_z: np.ndarray) -> float:
    """S3D = median of s2d * Z_root (metres): converts 2D errors relative to s2d into metres."""
    return float(np.median(person_scale_2d(kp_clean, conf) * root_z))
