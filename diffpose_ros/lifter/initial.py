"""Pose-specific initial distribution H_K (fitted on encoder residuals of clips the encoder never
trained on: see training.fit_initial_distribution).

H_K(input) = sum_m pi_m N(mu_enc + sigma * m_m, diag(sigma) Sigma_m diag(sigma))   (per pose)

* mu_enc: the frozen context encoder's root-relative 3D estimate (metres).
* sigma (B, 17, 3): ResidualScale, the std of the encoder's residual per joint and axis as a
  function of that joint's detector confidence c:
      sigma_j,a(c) = base_j,a * exp(g_a1 (1 - c) + g_a2 (1 - c)^2)
  with one gain pair for the image axes (x, y) and one for depth (z). The residual already
  contains everything the 2D noise does to the 3D estimate, so sigma counts the 2D term once, and
  a joint the detector is unsure of is wider in depth too (a guessed knee is also a guessed depth).
* {pi_m, m_m, Sigma_m}: a Gaussian mixture fitted by EM to the normalised residuals
  (s_true - mu_enc) / sigma (48-D, root excluded). It captures what the per-joint scales cannot:
  correlations between joints and multi-modal (e.g. depth-flip) errors.
"""
import numpy as np
import torch
from torch import nn

from ..skeleton import NUM_JOINTS, ROOT

MIN_SIGMA_M = 0.005  # no residual std below 5 mm (numerical floor; real residuals are ~10x larger)


class ResidualScale(nn.Module):
    """sigma (B, 17, 3) in metres from the newest frame's keypoints (x_norm, y_norm, conf)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("base", torch.full((NUM_JOINTS, 3), 0.05))
        self.register_buffer("gain", torch.zeros(2, 2))  # rows: (x, y) axes, z axis; cols: (1-c), (1-c)^2

    def forward(self, kp_last):  # (B, 17, 3) -> (B, 17, 3)
        u = (1.0 - kp_last[..., 2:3]).clamp(0.0, 1.0)  # (B, 17, 1)
        g_xy = self.gain[0, 0] * u + self.gain[0, 1] * u * u
        g_z = self.gain[1, 0] * u + self.gain[1, 1] * u * u
        sig = self.base * torch.exp(torch.cat([g_xy, g_xy, g_z], dim=-1))
        root = torch.ones_like(sig[:, :1])  # the root is not diffused; 1 keeps s well defined
        return torch.cat([root, sig[:, ROOT + 1:]], dim=1)


def fit_residual_scale(resid: np.ndarray, conf: np.ndarray, n_bins: int = 12):
    """Fit base (17, 3) and gain (2, 2) of ResidualScale on residuals (S, 17, 3) and confidences.

    base_j,a: RMS residual of joint j on axis a over the confident samples (c >= 0.7, all when
    too few). gain: least squares of log(mean r^2 / base^2) per confidence bin against u = 1 - c
    (weighted by bin counts), separately for the image axes and depth; the curve passes through 0
    at c = 1 by construction. Returns (base, gain, table for the model card).
    """
    resid = np.asarray(resid, np.float64)
    conf = np.clip(np.asarray(conf, np.float64), 0, 1)
    if resid.ndim != 3 or resid.shape[1:] != (NUM_JOINTS, 3) or conf.shape != resid.shape[:2]:
        raise ValueError(f"fit_residual_scale: bad shapes {resid.shape}, {conf.shape}")
    base = np.empty((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        sel = conf[:, j] >= 0.7
        if sel.sum() < 50:
            sel = np.ones(len(conf), bool)
        base[j] = np.sqrt((resid[sel, j] ** 2).mean(0))
    base = np.maximum(base, MIN_SIGMA_M)
    base[ROOT] = 1.0
    ratio = resid[:, 1:] ** 2 / base[None, 1:] ** 2  # (S, 16, 3)
    u = 1.0 - conf[:, 1:]
    edges = np.unique(np.quantile(u, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, max(len(edges) - 2, 0))
    gain = np.zeros((2, 2))
    table = {}
    for row, axes in enumerate(((0, 1), (2,))):
        r = ratio[..., list(axes)].mean(-1)
        xs, ys, ws = [], [], []
        for b in range(max(len(edges) - 1, 0)):
            sel = idx == b
            if sel.sum() < 30:
                continue
            xs.append(u[sel].mean())
            ys.append(np.log(max(r[sel].mean(), 1e-6)))
            ws.append(np.sqrt(sel.sum()))
        xs, ys, ws = map(np.asarray, (xs, ys, ws))
        if len(xs) >= 3 and np.ptp(xs) > 1e-3:
            a = np.stack([xs, xs ** 2], 1) * ws[:, None]
            # log sigma^2 ratio = 2 (g1 u + g2 u^2); fit through the origin (c = 1 -> base)
            gain[row] = np.linalg.lstsq(a, ys * ws, rcond=None)[0] / 2
        table["xy" if row == 0 else "z"] = {"u": xs.round(3).tolist(), "log_var_ratio": ys.round(3).tolist()}
    return base, gain, table
