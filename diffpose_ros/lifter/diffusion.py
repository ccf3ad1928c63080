"""Noise schedule, GMM forward process (F1) and deterministic DDIM steps.

Diffusion state (see MODEL_CARD / docs): s_hat = (s - mu_enc) / sigma, the root-relative 3D pose s
(camera frame, metres) expressed relative to the context encoder's estimate mu_enc and divided by a
per-joint, per-axis, input-dependent scale sigma (2D keypoint uncertainty propagated to metres in
x, y; learned depth spread in z; see initial.py). The root joint is 0 by construction and is not
diffused: the flat state has 16 * 3 = 48 dimensions.

Forward process (paper, F1):  s_k = mu_c + sqrt(abar_k) (s_0 - mu_c) + sqrt(1 - abar_k) xi,
xi ~ N(0, Sigma_c), kernel c ~ Cat(pi) once per pose. With abar_K ~ 0 the state after K steps
follows the fitted mixture sum_c pi_c N(mu_c, Sigma_c) = H_K.

Reverse process: the denoiser predicts s_0 directly (x0-prediction: simpler than epsilon when the
noise covariance Sigma_c is anisotropic and correlated). A DDIM step with eta = 0 reuses the noise
implied by that prediction, r = s - mu_c:
    eps_hat = (r_k - sqrt(abar_k) r0_hat) / sqrt(1 - abar_k)
    r_k'    = sqrt(abar_k') r0_hat + sqrt(1 - abar_k') eps_hat
Because eps_hat is expressed in the same (correlated) units as xi, no knowledge of Sigma_c is needed
inside the step, and no random numbers are drawn after the initial H_K sample (eta = 0), which keeps
the sampler deterministic given its inputs (ONNX/TensorRT friendly).
"""
import math

import numpy as np
import torch


def make_schedule(n_steps: int = 50, kind: str = "cosine", beta_start: float = 1e-4,
                  beta_end: float = 0.2) -> np.ndarray:
    """abar_k for k = 0..K (abar_0 = 1 is the clean state), float64.

    'cosine' (Nichol & Dhariwal): abar_K ~ 0, the paper's regime in which the chain starts from H_K.
    'linear': beta linear in [beta_start, beta_end] (the public code uses 1e-4..1e-3, i.e. a
    small-noise regime with abar_50 = 0.97).
    """
    if n_steps < 1:
        raise ValueError(f"diffusion steps must be >= 1, got {n_steps}")
    if kind == "cosine":
        s = 0.008
        f = lambda k: math.cos((k / n_steps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        abar = np.array([f(k) / f(0) for k in range(n_steps + 1)])
        # clip betas like Nichol & Dhariwal, and keep abar_K > 0 so every step is invertible
        betas = np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)
        abar = np.concatenate([[1.0], np.cumprod(1 - betas)])
        abar[-1] = max(abar[-1], 1e-4)
    elif kind == "linear":
        betas = np.linspace(beta_start, beta_end, n_steps)
        abar = np.concatenate([[1.0], np.cumprod(1 - betas)])
    else:
        raise ValueError(f"unknown schedule {kind!r} (use 'cosine' or 'linear')")
    return abar


def ddim_timesteps(n_steps: int, sample_steps: int) -> list:
    """Visited steps K = k_0 > k_1 > ... > k_S = 0 for S denoiser calls (uniform skip)."""
    if not 1 <= sample_steps <= n_steps:
        raise ValueError(f"sampling steps must be in [1, {n_steps}], got {sample_steps}")
    ks = np.round(np.linspace(n_steps, 0, sample_steps + 1)).astype(int)
    return [int(k) for k in ks]


def forward_diffuse(s0, k, abar, mu_c, xi):
    """F1 with given kernel mean mu_c and noise xi ~ N(0, Sigma_c) (any matching shapes).

    k: int or LongTensor (B,) of steps; abar: tensor (K+1,).
    """
    a = abar[k]
    if torch.is_tensor(a) and a.dim() > 0:
        a = a.reshape(-1, *([1] * (s0.dim() - 1)))
    return mu_c + torch.sqrt(a) * (s0 - mu_c) + torch.sqrt(1 - a) * xi


def kernel_draw(onehot, means, chol, eps):
    """One draw per row from the chosen mixture kernels, root joint 0 (torch; exportable).

    onehot (..., M) kernel indicator; means (M, 48), chol (M, 48, 48) Cholesky factors of the
    kernel covariances (normalised state units); eps (..., 17, 3) standard normal (root unused).
    Returns (mu_c, xi), each (..., 17, 3): the kernel mean and xi ~ N(0, Sigma_c).
    """
    m = means.shape[0]
    mu_c = torch.matmul(onehot, means)  # (..., 48)
    l_c = torch.matmul(onehot, chol.reshape(m, -1)).reshape(*onehot.shape[:-1], 48, 48)
    xi = torch.matmul(l_c, eps[..., 1:, :].reshape(*eps.shape[:-2], 48, 1)).squeeze(-1)
    zero = torch.zeros_like(eps[..., :1, :])
    return (torch.cat([zero, mu_c.reshape(*mu_c.shape[:-1], 16, 3)], dim=-2),
            torch.cat([zero, xi.reshape(*xi.shape[:-1], 16, 3)], dim=-2))


def ddim_step(s_k, s0_hat, mu_c, abar_k: float, abar_next: float):
    """One deterministic (eta = 0) DDIM update from step k to k' < k with x0-prediction."""
    r_k, r0 = s_k - mu_c, s0_hat - mu_c
    eps = (r_k - math.sqrt(abar_k) * r0) / math.sqrt(1 - abar_k)
    return mu_c + math.sqrt(abar_next) * r0 + math.sqrt(1 - abar_next) * eps
