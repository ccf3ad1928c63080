"""DiffPoseSampler: the whole test-time pipeline as one deterministic torch module (ONNX export).

forward(keypoints, init_noise, kernel_u) -> mean (B,17,3), cov (B,17,3,3), hyps (B,N,17,3)
  keypoints  (B,17,3) frame model or (B,T,17,3) temporal: (x_norm, y_norm, conf), last = newest
  init_noise (B,N,17,3) standard normal (root entries unused): the H_K draw of each hypothesis
  kernel_u   (B,N) uniform [0,1): mixture-kernel choice per hypothesis (cumsum comparison)
All outputs root-relative, camera frame, metres. cov is UNcalibrated: the calibration scale is
keyed by (steps, N) and applied outside the graph (Lifter), so that one exported graph per
step count serves every N. N is read from init_noise's shape (axis 1), never from a constant.

Only static control flow: the DDIM loop is unrolled over a fixed list of steps, kernels are
selected with one-hot masks, and there is no random op inside (eta = 0), so equal inputs give equal
outputs and the graph exports to ONNX with a dynamic batch dimension.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..skeleton import NUM_JOINTS
from .diffusion import ddim_step, ddim_timesteps, make_schedule
from .model_io import Bundle, load_bundle

D_STATE = (NUM_JOINTS - 1) * 3


def calibration_key(steps: int, n_hyp: int, start_step: int = None, n_steps: int = None) -> str:
    key = f"s{steps}_n{n_hyp}"
    return key if start_step is None or start_step == n_steps else f"{key}_k{start_step}"


def default_start_step(config) -> int:
    return int(config.get("sampling", {}).get("start_step", config["diffusion"]["n_steps"]))


def calibration_scale(config, calibration, steps: int, n_hyp: int, start_step: int = None):
    """(var_scale (17,) float64, source) for sampling with (steps, N, start_step): the exact
    setting's calibration, else the default setting's (an approximation: fewer steps / other N
    change the spread), else ones (source None). Applied to the covariance outside the graph."""
    n_diff = config["diffusion"]["n_steps"]
    start_step = default_start_step(config) if start_step is None else int(start_step)
    cal = calibration or {}
    key = calibration_key(int(steps), int(n_hyp), start_step, n_diff)
    entry, source = cal.get(key), key
    if entry is None and start_step == cal.get("default", {}).get("start_step", n_diff):
        entry, source = cal.get("default"), "default"
    if entry is None:
        return np.ones(NUM_JOINTS), None
    return np.asarray(entry["var_scale"], np.float64), source


def covariance_from_hypotheses(hyps, prior_cov, n0: float, floor: float):
    """Per-joint 3x3 covariance: shrink the sample covariance of N hypotheses toward the
    prior (H_K) covariance, weight n0 / (N - 1 + n0) (N = 1 -> prior only), plus floor^2 I."""
    # N as a tensor computed from the shape (not a Python int, which tracing would bake into the
    # exported graph as a constant): the same graph then serves any number of hypotheses
    n = torch.ones_like(hyps[:1, :, :1, :1]).sum(dim=1, keepdim=True)  # (1,1,1,1) = N
    mean = hyps.mean(dim=1)
    d = hyps - mean.unsqueeze(1)
    sample = torch.matmul(d.permute(0, 2, 3, 1), d.permute(0, 2, 1, 3)) / torch.clamp(n - 1, min=1)  # (B,J,3,3)
    lam = n0 / (torch.clamp(n - 1, min=0) + n0)
    eye = torch.eye(3, dtype=hyps.dtype, device=hyps.device)
    return mean, (1 - lam) * sample + lam * prior_cov + (floor ** 2) * eye


class DiffPoseSampler(nn.Module):
    def __init__(self, bundle: Bundle, steps: int = 5, n_hyp: int = 5, start_step: int = None):
        """start_step: diffusion step the chain starts from (default: the bundle's
        config["sampling"]["start_step"], else K = the paper's full chain from H_K). A smaller
        value starts from the encoder estimate partially noised (SDEdit-like, the public code's
        regime): smaller hypothesis spread, closer to the encoder."""
        super().__init__()
        if bundle.denoiser is None or bundle.gmm is None:
            raise ValueError("bundle has no trained denoiser / GMM; run diffpose-train and diffpose-fit-gmm")
        if n_hyp < 1:
            raise ValueError(f"n_hyp must be >= 1, got {n_hyp}")
        cfg = bundle.config
        self.encoder, self.prior, self.denoiser = bundle.encoder, bundle.prior, bundle.denoiser
        self.temporal = bool(bundle.temporal)
        self.window = int(bundle.window)
        self.steps, self.n_hyp = int(steps), int(n_hyp)
        n_diff = cfg["diffusion"]["n_steps"]
        abar = make_schedule(n_diff, cfg["diffusion"]["schedule"])
        if start_step is None:
            start_step = default_start_step(cfg)
        if not 1 <= start_step <= n_diff:
            raise ValueError(f"start_step must be in [1, {n_diff}], got {start_step}")
        self.start_step = int(start_step)
        ks = ddim_timesteps(self.start_step, min(self.steps, self.start_step))
        self.plan = [(k, float(abar[k]), float(abar[k2])) for k, k2 in zip(ks[:-1], ks[1:])]
        # s_k0 = mu_c + sqrt(abar)(s_init - mu_c) + sqrt(1 - abar) xi with s_init = 0 (= mu_enc)
        self.start_mean = float(1 - np.sqrt(abar[ks[0]]))
        self.start_scale = float(np.sqrt(1 - abar[ks[0]]))
        g = bundle.gmm
        w = np.asarray(g["weights"], np.float64)
        w = w / w.sum()
        cum = np.cumsum(w)
        lo, hi = np.concatenate([[0.0], cum[:-1]]), cum.copy()
        hi[-1] = 2.0  # u in [0,1) always lands in some kernel despite rounding
        self.register_buffer("k_lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("k_hi", torch.tensor(hi, dtype=torch.float32))
        covs = np.asarray(g["covs"], np.float64)
        self.register_buffer("g_means", torch.tensor(g["means"], dtype=torch.float32))
        self.register_buffer("g_chol", torch.tensor(np.linalg.cholesky(covs), dtype=torch.float32))
        # prior covariance of each joint in normalised units (3x3 blocks of the mixture covariance)
        mean = w @ g["means"]
        dm = g["means"] - mean
        full = np.einsum("m,mij->ij", w, covs + dm[:, :, None] * dm[:, None, :])
        blocks = np.zeros((NUM_JOINTS, 3, 3))
        for j in range(1, NUM_JOINTS):
            blocks[j] = full[3 * (j - 1):3 * j, 3 * (j - 1):3 * j]
        self.register_buffer("prior_blocks", torch.tensor(blocks, dtype=torch.float32))
        cov_cfg = cfg["covariance"]
        self.n0, self.floor = float(cov_cfg["shrinkage_n0"]), float(cov_cfg["floor_m"])
        self.cal_key = calibration_key(self.steps, self.n_hyp, self.start_step, n_diff)
        # for the tools that run this module directly (calibrate, evaluate): the scale of this
        # module's (steps, n_hyp), numpy, NOT applied in forward (see the module docstring)
        self.var_scale, self.calibration_source = calibration_scale(
            cfg, bundle.calibration, self.steps, self.n_hyp, self.start_step)
        self.calibrated = self.calibration_source is not None
        self.eval()

    def kernel_onehot(self, kernel_u):  # (B, N) -> (B, N, M) float
        u = kernel_u.unsqueeze(-1)
        return ((u >= self.k_lo) & (u < self.k_hi)).to(kernel_u.dtype)

    def forward(self, keypoints, init_noise, kernel_u):
        feat, mu = self.encoder(keypoints)
        kp_last = keypoints[:, -1] if self.temporal else keypoints
        sigma = self.prior(kp_last)  # (B, 17, 3) metres
        b, n = init_noise.shape[0], init_noise.shape[1]
        onehot = self.kernel_onehot(kernel_u)  # (B, N, M)
        m_c = torch.matmul(onehot, self.g_means)  # (B, N, 48)
        chol = torch.matmul(onehot, self.g_chol.reshape(self.g_chol.shape[0], -1))
        chol = chol.reshape(b, n, D_STATE, D_STATE)
        eps = init_noise[:, :, 1:].reshape(b, n, D_STATE, 1)
        xi = torch.matmul(chol, eps).squeeze(-1)  # (B, N, 48) ~ N(0, Sigma_c)
        zero = torch.zeros_like(init_noise[:, :, :1]).reshape(b * n, 1, 3)
        m_c = torch.cat([zero, m_c.reshape(b * n, NUM_JOINTS - 1, 3)], dim=1)  # (B*N, 17, 3)
        s = self.start_mean * m_c + self.start_scale * torch.cat([zero, xi.reshape(b * n, NUM_JOINTS - 1, 3)], dim=1)

        def rep(x):  # (B, ...) -> (B*N, ...)
            return x.unsqueeze(1).expand(b, n, *x.shape[1:]).reshape(b * n, *x.shape[1:])

        feat_r, mu_r, sig_r = rep(feat), rep(mu), rep(sigma)
        for k, a_k, a_next in self.plan:  # unrolled: fixed number of denoiser calls
            s0_hat = self.denoiser(s, k, feat_r, mu_r, sig_r)
            s0_hat = torch.cat([zero, s0_hat[:, 1:]], dim=1)
            s = ddim_step(s, s0_hat, m_c, a_k, a_next)
        hyps = (mu_r + sig_r * s).reshape(b, n, NUM_JOINTS, 3)
        hyps = hyps - hyps[:, :, :1]
        prior_cov = sigma.unsqueeze(-1) * self.prior_blocks * sigma.unsqueeze(-2)  # (B,17,3,3)
        mean, cov = covariance_from_hypotheses(hyps, prior_cov, self.n0, self.floor)
        return mean, 0.5 * (cov + cov.transpose(-1, -2)), hyps


def build_sampler(weights_dir, steps: int = 5, n_hyp: int = 5) -> DiffPoseSampler:
    """Load a bundle directory and wrap it in a DiffPoseSampler (eval mode, CPU)."""
    return DiffPoseSampler(load_bundle(Path(weights_dir)), steps=steps, n_hyp=n_hyp)
