"""DiffPoseSampler: the network part of the test-time pipeline as one deterministic torch module
(exported once per (weights, steps) to ONNX / TensorRT).

forward(keypoints, init_noise, kernel_u) -> mean (B,17,3), cov (B,17,3,3), hyps (B,N,17,3)
  keypoints  (B,17,3) frame model or (B,T,17,3) temporal: (x_norm, y_norm, conf), last = newest
  init_noise (B,N,17,3) standard normal (root entries unused): the H_K draw of each hypothesis
  kernel_u   (B,N) uniform [0,1): mixture-kernel choice per hypothesis (cumsum comparison)
All outputs root-relative, camera frame, metres. `cov` is the per-joint covariance of the
hypotheses shrunk toward the H_K prior, NOT calibrated: the calibration depends on (steps, N) and
on the person's placement, and is applied by the Lifter (calibration.py), so that one graph serves
every N. N is the size of init_noise's axis 1 and may change from call to call.

The chain (diffusion.py): each hypothesis starts at step k0 = `start_step` of the GMM forward
process from the encoder's estimate (s = 0): s_k0 = (1 - sqrt(abar_k0)) mu_c + sqrt(1 - abar_k0) xi.
k0 = K is the paper's full chain from H_K; a smaller k0 is the public code's small-noise start.
Then `steps` deterministic DDIM calls (eta = 0). `mean` is chosen by `aggregation`:
  * "mean": the mean of the N final hypotheses (the paper);
  * "posterior": the mean of the N first x0-predictions, i.e. the denoiser's estimate of
    E[pose | 2D] (its MMSE estimate) without the Monte-Carlo noise of averaging N posterior draws.
With `mirror` (config["sampling"]["mirror"]) the odd hypotheses are lifted from the mirror image
of the input (skeleton.mirror: x -> -x, left and right swapped; the training data hold both
images of every motion) and mirrored back: the encoder conditions them on its own second
estimate, and each mean above is the average of the two halves' means (N = 1: the input only).
The two estimates differ by about 40 mm per joint, and their average is closer to the truth than
either (0.6-3.4 % lower MPJPE on the protocol rows with the weights of 2026-12-07, 1.2-1.6 mm
with the longer-trained frame model; the encoder alone, averaged the same way, gains as much);
their disagreement enters the spread.
forward = aggregate(chain(...)): the calibration runs the chains once with its largest N and
aggregates every smaller N from their first N (evaluation.lift_set_nested); the halves follow
the hypothesis index, so the first N chains are still a draw of that N.
Only static control flow and no random op inside, so equal inputs give equal outputs.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..skeleton import NUM_JOINTS, mirror
from .diffusion import ddim_step, ddim_timesteps, kernel_draw, make_schedule
from .encoder import normalise_2d
from .gmm import GMM
from .model_io import Bundle, load_bundle

AGGREGATIONS = ("mean", "posterior")


def odd_hypotheses(like):
    """(B, N) bool: hypothesis n is odd (the mirror image's). From the tensor, not a python int,
    so that an exported graph takes any N."""
    idx = torch.ones_like(like).cumsum(dim=1) - 1.0
    return (idx - 2.0 * torch.floor(0.5 * idx)) > 0.5


def covariance_from_hypotheses(hyps, prior_cov, n0: float, floor: float):
    """Per-joint 3x3 covariance: shrink the sample covariance of the N hypotheses (B,N,17,3)
    toward the prior (H_K) covariance with weight n0 / (N - 1 + n0) (N = 1 -> prior only), plus
    floor^2 I. N is read from the tensor (no python int), so an exported graph takes any N."""
    mean = hyps.mean(dim=1)
    d = hyps - mean.unsqueeze(1)
    dof = torch.ones_like(hyps[:, :, :1, :1]).sum(dim=1, keepdim=True) - 1.0  # (B,1,1,1) = N - 1
    sample = torch.matmul(d.permute(0, 2, 3, 1), d.permute(0, 2, 1, 3)) / dof.clamp(min=1.0)
    lam = n0 / (dof + n0)
    eye = torch.eye(3, dtype=hyps.dtype, device=hyps.device)
    return mean, (1 - lam) * sample + lam * prior_cov + (floor ** 2) * eye


class DiffPoseSampler(nn.Module):
    def __init__(self, bundle: Bundle, steps: int = 5, n_hyp: int = 5, start_step: int = None,
                 aggregation: str = None, mirror: bool = None):
        """start_step / aggregation / mirror: default from the bundle's config["sampling"]. n_hyp
        is only the default N of callers (the graph takes any N)."""
        super().__init__()
        if bundle.denoiser is None or bundle.gmm is None:
            raise ValueError("bundle has no trained denoiser / GMM; run diffpose-train")
        if n_hyp < 1:
            raise ValueError(f"n_hyp must be >= 1, got {n_hyp}")
        cfg = bundle.config
        sampling = cfg.get("sampling", {})
        self.encoder, self.scale, self.denoiser = bundle.encoder, bundle.scale, bundle.denoiser
        self.temporal = bool(bundle.temporal)
        self.window = int(bundle.window)
        self.steps, self.n_hyp = int(steps), int(n_hyp)
        n_diff = cfg["diffusion"]["n_steps"]
        abar = make_schedule(n_diff, cfg["diffusion"]["schedule"])
        start_step = sampling.get("start_step", n_diff) if start_step is None else start_step
        if not 1 <= start_step <= n_diff:
            raise ValueError(f"start_step must be in [1, {n_diff}], got {start_step}")
        self.start_step = int(start_step)
        self.aggregation = aggregation or sampling.get("aggregation", "mean")
        self.mirror = bundle.mirror if mirror is None else bool(mirror)
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        ks = ddim_timesteps(self.start_step, min(self.steps, self.start_step))
        self.plan = [(k, float(abar[k]), float(abar[k2])) for k, k2 in zip(ks[:-1], ks[1:])]
        self.start_mean = float(1 - np.sqrt(abar[ks[0]]))
        self.start_scale = float(np.sqrt(1 - abar[ks[0]]))
        g = GMM(**{k: np.asarray(bundle.gmm[k], np.float64) for k in ("weights", "means", "covs")})
        w = g.weights / g.weights.sum()
        cum = np.cumsum(w)
        lo, hi = np.concatenate([[0.0], cum[:-1]]), cum.copy()
        hi[-1] = 2.0  # u in [0,1) always lands in some kernel despite rounding
        self.register_buffer("k_lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("k_hi", torch.tensor(hi, dtype=torch.float32))
        self.register_buffer("g_means", torch.tensor(g.means, dtype=torch.float32))
        self.register_buffer("g_chol", torch.tensor(g.chol, dtype=torch.float32))
        # prior covariance of each joint in normalised units (3x3 blocks of the mixture covariance)
        _, full = g.mixture_moments()
        blocks = np.zeros((NUM_JOINTS, 3, 3))
        for j in range(1, NUM_JOINTS):
            blocks[j] = full[3 * (j - 1):3 * j, 3 * (j - 1):3 * j]
        self.register_buffer("prior_blocks", torch.tensor(blocks, dtype=torch.float32))
        cov_cfg = cfg["covariance"]
        self.n0, self.floor = float(cov_cfg["shrinkage_n0"]), float(cov_cfg["floor_m"])
        self.eval()

    def kernel_onehot(self, kernel_u):  # (B, N) -> (B, N, M) float
        u = kernel_u.unsqueeze(-1)
        return ((u >= self.k_lo) & (u < self.k_hi)).to(kernel_u.dtype)

    def forward(self, keypoints, init_noise, kernel_u):
        hyps, first, prior_cov = self.chain(keypoints, init_noise, kernel_u)
        mean, cov = self.aggregate(hyps, first, prior_cov)
        return mean, cov, hyps

    def chain(self, keypoints, init_noise, kernel_u):
        """The N reverse chains: root-relative hypotheses (B,N,17,3), the first x0-predictions
        (B,N,17,3, metres, not rooted) and the H_K prior covariance (B,17,3,3). Chains are
        independent, so the first n of them are a draw with N = n (calibration lifts once with
        the largest N and aggregates each smaller one from it)."""
        b, n = init_noise.shape[0], init_noise.shape[1]
        if self.mirror:  # the input and its mirror image in one encoder batch
            keypoints = torch.cat([keypoints, mirror(keypoints)])
        feat, mu = self.encoder(keypoints)
        kp_last = keypoints[:, -1] if self.temporal else keypoints
        feats_2d, _ = normalise_2d(kp_last)
        sigma = self.scale(kp_last)  # (B, 17, 3) metres (2B with the mirror image)
        m_c, xi = kernel_draw(self.kernel_onehot(kernel_u), self.g_means, self.g_chol, init_noise)
        m_c, xi = m_c.flatten(0, 1), xi.flatten(0, 1)  # (B*N, 17, 3)
        s = self.start_mean * m_c + self.start_scale * xi
        odd = odd_hypotheses(kernel_u).flatten()  # (B*N,)

        def rep(x):  # (B, ...) -> (B*N, ...), hypothesis-major within each person
            x_in = x[:b].unsqueeze(1).expand(b, n, *x.shape[1:]).flatten(0, 1)
            if not self.mirror:
                return x_in
            x_mir = x[b:].unsqueeze(1).expand(b, n, *x.shape[1:]).flatten(0, 1)
            return torch.where(odd.view(-1, *[1] * (x.dim() - 1)), x_mir, x_in)

        feat_r, mu_r, sig_r, f2d_r = rep(feat), rep(mu), rep(sigma), rep(feats_2d)
        zero = torch.zeros_like(m_c[:, :1])
        first = None
        for k, a_k, a_next in self.plan:  # unrolled: fixed number of denoiser calls
            s0_hat = self.denoiser(s, k, feat_r, mu_r, sig_r, f2d_r, m_c)
            s0_hat = torch.cat([zero, s0_hat[:, 1:]], dim=1)
            first = s0_hat if first is None else first
            s = ddim_step(s, s0_hat, m_c, a_k, a_next)
        hyps, first = mu_r + sig_r * s, mu_r + sig_r * first
        if self.mirror:  # the mirror image's hypotheses back into the camera's frame
            o = odd.view(-1, 1, 1)
            hyps, first = torch.where(o, mirror(hyps), hyps), torch.where(o, mirror(first), first)
        shape = (-1, n, NUM_JOINTS, 3)
        hyps = hyps.reshape(shape)
        hyps = hyps - hyps[:, :, :1]
        sigma = sigma[:b]   # the shrinkage prior of the pooled hypotheses: the input's own H_K spread
        prior_cov = sigma.unsqueeze(-1) * self.prior_blocks * sigma.unsqueeze(-2)  # (B,17,3,3)
        return hyps, first.reshape(shape), prior_cov

    def aggregate(self, hyps, first, prior_cov):
        """(mean (B,17,3), symmetric cov (B,17,3,3)) of the chains' outputs, by `aggregation`."""
        _, cov = covariance_from_hypotheses(hyps, prior_cov, self.n0, self.floor)
        mean = self.halves_mean(first if self.aggregation == "posterior" else hyps)
        return mean - mean[:, :1], 0.5 * (cov + cov.transpose(-1, -2))

    def halves_mean(self, x):
        """Mean over the hypotheses (B,N,17,3); with the mirror image, the average of the input's
        and the mirror image's means, so that an odd N does not weigh one more (N = 1: the input)."""
        if not self.mirror:
            return x.mean(dim=1)
        odd = odd_hypotheses(x[:, :, 0, 0]).to(x.dtype)[..., None, None]  # (B,N,1,1)
        n_odd, n_even = odd.sum(dim=1), (1.0 - odd).sum(dim=1)
        m_even = ((1.0 - odd) * x).sum(dim=1) / n_even.clamp(min=1.0)
        m_odd = (odd * x).sum(dim=1) / n_odd.clamp(min=1.0)
        w = 0.5 * n_odd.clamp(max=1.0)  # 0 without a mirror hypothesis (N = 1)
        return (1.0 - w) * m_even + w * m_odd


def build_sampler(weights_dir, steps: int = 5, n_hyp: int = 5) -> DiffPoseSampler:
    """Load a bundle directory and wrap it in a DiffPoseSampler (eval mode, CPU)."""
    return DiffPoseSampler(load_bundle(Path(weights_dir)), steps=steps, n_hyp=n_hyp)
