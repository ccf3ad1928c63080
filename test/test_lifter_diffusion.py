"""GMM forward process (F1), schedule and DDIM step."""
import numpy as np
import torch

from diffpose_ros.lifter.diffusion import ddim_step, ddim_timesteps, forward_diffuse, make_schedule
from diffpose_ros.lifter.gmm import GMM


def test_schedule_regimes():
    a = make_schedule(50, "cosine")
    assert a[0] == 1.0 and np.all(np.diff(a) < 0) and a[-1] < 0.01
    lin = make_schedule(50, "linear", 1e-4, 1e-3)
    assert abs(lin[-1] - 0.9723) < 1e-3  # the public code's small-noise regime
    assert ddim_timesteps(50, 5) == [50, 40, 30, 20, 10, 0]
    assert ddim_timesteps(50, 1) == [50, 0]


def test_forward_process_ends_in_gmm():
    """After K steps of F1 the samples follow the mixture (mean and covariance), whatever s_0."""
    rng = np.random.default_rng(0)
    d, n = 4, 60000
    A = rng.standard_normal((2, d, d)) * 0.5
    g = GMM(np.array([0.3, 0.7]), rng.standard_normal((2, d)) * 2,
            np.einsum("mij,mkj->mik", A, A) + 0.2 * np.eye(d))
    abar = torch.tensor(make_schedule(50, "cosine"))
    s0 = torch.tensor(rng.standard_normal((n, d)) * 0.3 + 5.0)  # data far from the mixture
    comp = rng.choice(2, n, p=g.weights)
    mu_c = torch.tensor(g.means[comp])
    xi = torch.tensor(np.einsum("nij,nj->ni", g.chol[comp], rng.standard_normal((n, d))))
    sK = forward_diffuse(s0, 50, abar, mu_c, xi).numpy()
    mean, cov = g.mixture_moments()
    assert np.abs(sK.mean(0) - mean).max() < 0.08
    assert np.abs(np.cov(sK.T) - cov).max() < 0.15
    # and at k = 0 nothing changes
    assert torch.allclose(forward_diffuse(s0, 0, abar, mu_c, xi), s0)


def test_ddim_with_true_x0_follows_forward_marginals():
    """With a perfect x0 prediction DDIM (eta = 0) reproduces the forward path of the same noise."""
    abar = torch.tensor(make_schedule(50, "cosine"))
    s0, mu, xi = torch.randn(8, 6), torch.randn(8, 6), torch.randn(8, 6)
    s_k = forward_diffuse(s0, 40, abar, mu, xi)
    s_next = ddim_step(s_k, s0, mu, float(abar[40]), float(abar[20]))
    assert torch.allclose(s_next, forward_diffuse(s0, 20, abar, mu, xi), atol=1e-5)
    assert torch.allclose(ddim_step(s_k, s0, mu, float(abar[40]), 1.0), s0, atol=1e-5)
