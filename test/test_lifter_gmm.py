import numpy as np
import pytest

from diffpose_ros.lifter.gmm import fit_gmm


def test_em_recovers_two_components():
    rng = np.random.default_rng(1)
    means = np.array([[0.0, 0.0, 0.0], [4.0, -3.0, 2.0]])
    covs = np.array([np.diag([1.0, 0.5, 0.2]), [[1.0, 0.6, 0.0], [0.6, 1.0, 0.0], [0.0, 0.0, 0.3]]])
    n = 6000
    comp = rng.random(n) < 0.35
    x = np.where(comp[:, None], rng.multivariate_normal(means[1], covs[1], n),
                 rng.multivariate_normal(means[0], covs[0], n))
    g = fit_gmm(x, 2, seed=0)
    order = np.argsort(g.means[:, 0])
    np.testing.assert_allclose(g.weights[order], [0.65, 0.35], atol=0.03)
    np.testing.assert_allclose(g.means[order], means, atol=0.1)
    np.testing.assert_allclose(g.covs[order], covs, atol=0.12)
    # the fitted mixture explains the data better than a single Gaussian
    g1 = fit_gmm(x, 1)
    assert g.log_likelihood > g1.log_likelihood + 0.3
    samples, _ = g.sample(20000, rng)
    np.testing.assert_allclose(samples.mean(0), x.mean(0), atol=0.1)


def test_bad_input():
    with pytest.raises(ValueError):
        fit_gmm(np.full((100, 2), np.nan), 2)
    with pytest.raises(ValueError):
        fit_gmm(np.zeros((3, 2)), 5)
