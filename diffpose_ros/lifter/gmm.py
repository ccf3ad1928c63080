"""Gaussian mixture fitted by expectation-maximisation (full covariances, numpy).

Used for the pose-residual mixture phi_GMM = {pi_m, mu_m, Sigma_m} that defines H_K and the
forward process (F1). Covariances are regularised (reg * I) so that 48-D fits on a few thousand
samples stay positive definite; their Cholesky factors are what the sampler uses.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class GMM:
    weights: np.ndarray  # (M,)
    means: np.ndarray    # (M, D)
    covs: np.ndarray     # (M, D, D)
    log_likelihood: float = float("nan")  # mean per-sample log-likelihood at the fit
    n_iter: int = 0

    @property
    def chol(self) -> np.ndarray:
        return np.linalg.cholesky(self.covs)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return _logsumexp(_component_logpdf(x, self.weights, self.means, self.covs), axis=1)

    def sample(self, n: int, rng: np.random.Generator):
        comp = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, self.means.shape[1]))
        x = self.means[comp] + np.einsum("nij,nj->ni", self.chol[comp], z)
        return x, comp

    def mixture_moments(self):
        """Overall mean and covariance of the mixture."""
        mean = self.weights @ self.means
        d = self.means - mean
        cov = np.einsum("m,mij->ij", self.weights, self.covs + d[:, :, None] * d[:, None, :])
        return mean, cov


def _logsumexp(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _component_logpdf(x, weights, means, covs):
    """(n, M) log pi_m + log N(x | mu_m, Sigma_m)."""
    n, d = x.shape
    out = np.empty((n, len(weights)))
    for m in range(len(weights)):
        chol = np.linalg.cholesky(covs[m])
        z = np.linalg.solve(chol, (x - means[m]).T)  # (d, n)
        logdet = 2 * np.log(np.diag(chol)).sum()
        out[:, m] = np.log(weights[m] + 1e-300) - 0.5 * ((z * z).sum(0) + logdet + d * np.log(2 * np.pi))
    return out


def _kmeanspp(x, m, rng):
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, m):
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    return np.array(centres)


def fit_gmm(x: np.ndarray, n_components: int = 5, n_iter: int = 200, tol: float = 1e-5,
            reg: float = 1e-4, seed: int = 0) -> GMM:
    """Maximum-likelihood mixture by EM, k-means++ initialisation."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("fit_gmm needs a finite (n, d) array")
    n, d = x.shape
    if n < 2 * n_components:
        raise ValueError(f"fit_gmm needs at least {2 * n_components} samples, got {n}")
    rng = np.random.default_rng(seed)
    means = _kmeanspp(x, n_components, rng)
    assign = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    resp = np.eye(n_components)[assign]
    prev = -np.inf
    ll, it = prev, 0
    for it in range(1, n_iter + 1):
        # M step
        nk = resp.sum(0) + 1e-10
        weights = nk / n
        means = (resp.T @ x) / nk[:, None]
        covs = np.empty((n_components, d, d))
        for m in range(n_components):
            xc = x - means[m]
            covs[m] = (resp[:, m, None] * xc).T @ xc / nk[m] + reg * np.eye(d)
        # E step
        logp = _component_logpdf(x, weights, means, covs)
        lse = _logsumexp(logp, axis=1)
        resp = np.exp(logp - lse[:, None])
        ll = float(lse.mean())
        if abs(ll - prev) < tol * max(1.0, abs(ll)):
            break
        prev = ll
    return GMM(weights, means, covs, ll, it)
