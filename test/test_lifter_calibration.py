import numpy as np
from scipy.stats import chi2

from diffpose_ros.lifter.calibration import fit_calibration, fit_scale
from diffpose_ros.lifter.metrics import coverage, mahalanobis_sq, pa_mpjpe, procrustes_align, summary


def test_fitted_scale_gives_nominal_coverage():
    rng = np.random.default_rng(0)
    S, J = 4000, 17
    A = rng.standard_normal((S, J, 3, 3)) * 0.02
    true_cov = np.einsum("sjik,sjlk->sjil", A, A) + 1e-4 * np.eye(3)
    err = np.einsum("sjik,sjk->sji", np.linalg.cholesky(true_cov), rng.standard_normal((S, J, 3)))
    per_joint_wrong = np.linspace(0.2, 5.0, J)[None, :, None, None]  # mis-scaled predictions
    d2 = mahalanobis_sq(err, true_cov * per_joint_wrong)
    before = coverage(d2)
    assert abs(before["0.90"] - 0.9) > 0.05
    cal = fit_calibration(d2[:S // 2])
    d2_test = d2[S // 2:] / np.asarray(cal["var_scale"])[None]
    after = coverage(d2_test)
    for lv in ("0.50", "0.90", "0.95"):
        assert abs(after[lv] - float(lv)) < 0.03
    np.testing.assert_allclose(cal["var_scale"][1:], per_joint_wrong.ravel()[1:] ** -1, rtol=0.15)


def test_fit_scale_exact_on_chi2():
    d2 = chi2.ppf(np.linspace(0.0005, 0.9995, 4000), 3) * 2.5
    assert abs(fit_scale(d2) - 2.5) / 2.5 < 0.02


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
