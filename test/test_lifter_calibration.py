import numpy as np
from scipy.stats import chi2

from diffpose_ros.lifter.calibration import CovarianceModel, fit_calibration, select_entry
from diffpose_ros.lifter.metrics import coverage, mahalanobis_sq, pa_mpjpe, procrustes_align, summary


def _gaussian_errors(rng, cov):
    return np.einsum("sjik,sjk->sji", np.linalg.cholesky(cov), rng.standard_normal(cov.shape[:-1]))


def test_calibration_recovers_scales_and_size_term():
    """Errors drawn from a known model: mis-scaled per-joint covariances (a_j), a body-size term
    c P P^T shared by the joints and a root term. The fit finds the scales and gives nominal
    coverage on fresh samples, root-relative and absolute."""
    rng = np.random.default_rng(0)
    S, J = 4000, 17
    A = rng.standard_normal((S, J, 3, 3)) * 0.02
    H = np.einsum("sjik,sjlk->sjil", A, A) + 1e-4 * np.eye(3)
    H[:, 0] = 1e-6 * np.eye(3)
    pose = rng.standard_normal((S, J, 3)) * 0.3
    pose[:, 0] = 0
    root = np.stack([rng.uniform(-1, 1, S), rng.uniform(-0.5, 0.5, S), rng.uniform(2, 8, S)], -1)
    pos = pose + root[:, None]
    true_a = np.linspace(0.5, 3.0, J)
    size = 0.05 ** 2
    t2d = np.broadcast_to(np.diag([1e-4, 1e-4, 4e-2]), (S, 3, 3))
    delta = rng.standard_normal(S) * 0.05                      # shared body-size error
    err_rel = _gaussian_errors(rng, true_a[None, :, None, None] * H) + delta[:, None, None] * pose
    err_root = _gaussian_errors(rng, t2d[:, None])[:, 0]
    err_abs = err_rel + err_root[:, None] + delta[:, None, None] * root[:, None]
    half = S // 2
    tr = slice(0, half)
    chi = np.ones(S)  # every pose explains its 2D equally well: no widening to find
    cal = fit_calibration(err_rel[tr], H[tr], pose[tr], err_abs[tr], H[tr], t2d[tr], pos[tr], chi[tr])
    assert cal["inflation_gamma"] == 0.0
    np.testing.assert_allclose(cal["var_scale"][1:], true_a[1:], rtol=0.25)
    assert 0.5 * size < cal["size_var_rel"] < 2 * size
    m = CovarianceModel(cal)
    te = slice(half, None)
    cov_rel = coverage(mahalanobis_sq(err_rel[te], m.relative(H[te], pose[te]) + 1e-12 * np.eye(3)))
    cov_abs = coverage(mahalanobis_sq(err_abs[te], m.absolute(H[te], t2d[te], pos[te])), skip_root=False)
    assert abs(cov_rel["0.90"] - 0.9) < 0.03 and abs(cov_abs["0.90"] - 0.9) < 0.03


def test_inflation_flattens_coverage_over_the_reprojection_score():
    """Errors that grow with chi (a pose that explains its 2D badly is wrong more): the fit finds a
    widening, and coverage becomes the same for well- and badly-explained poses."""
    rng = np.random.default_rng(3)
    S, J = 3000, 17
    H = np.broadcast_to(np.eye(3) * 4e-4, (S, J, 3, 3)).copy()
    chi = np.exp(rng.uniform(0, 4, S))
    true_s = (1 + chi / 5.0) ** 0.5
    err = np.sqrt(true_s)[:, None, None] * rng.standard_normal((S, J, 3)) * 0.02
    pose = rng.standard_normal((S, J, 3)) * 0.3
    root = np.tile([0.0, 0.0, 4.0], (S, 1))
    t2d = np.broadcast_to(np.eye(3) * 1e-6, (S, 3, 3))
    cal = fit_calibration(err, H, pose, err, H, t2d, pose + root[:, None], chi)
    assert cal["inflation_gamma"] >= 0.3
    m = CovarianceModel(cal)
    inside = mahalanobis_sq(err, m.relative(H, pose, chi))[:, 1:] <= chi2.ppf(0.9, 3)
    low, high = chi < np.quantile(chi, 0.2), chi > np.quantile(chi, 0.8)
    assert abs(inside[low].mean() - inside[high].mean()) < 0.05


def test_select_entry_exact_then_nearest():
    cal = {"s5_n5": {"var_scale": [1.0] * 17}, "s1_n5": {"var_scale": [2.0] * 17}, "s5_n20": {}}
    assert select_entry(cal, 5, 5)[1] == "s5_n5"
    assert select_entry(cal, 4, 5)[1] == "s5_n5"
    assert select_entry(cal, 1, 8)[1] == "s1_n5"
    assert select_entry(cal, 5, 30)[1] == "s5_n20"
    assert select_entry({}, 5, 5) == (None, None)
    assert not CovarianceModel(None).calibrated


def test_procrustes_removes_similarity():
    rng = np.random.default_rng(1)
    gt = rng.standard_normal((5, 17, 3))
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    pred = 1.7 * gt @ q.T + 0.3
    assert pa_mpjpe(pred, gt).max() < 1e-9
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def test_summary_keys():
    rng = np.random.default_rng(2)
    gt = rng.standard_normal((50, 17, 3)) * 0.1
    hyps = gt[:, None] + rng.standard_normal((50, 4, 17, 3)) * 0.01
    cov = np.broadcast_to(np.eye(3) * 1e-4, (50, 17, 3, 3))
    r = summary(hyps.mean(1), cov, hyps, gt)
    assert r["best_of_n_mm"] <= r["mpjpe_mm"] + 20
    assert set(r["coverage"]) == {"0.50", "0.90", "0.95"}
