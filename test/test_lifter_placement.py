import numpy as np
import pytest

from diffpose_ros.camera import normalize as normalise_px
from diffpose_ros.lifter.placement import place_hypotheses, place_root


def _scene(rng, P=6):
    pose = rng.standard_normal((P, 17, 3)) * 0.3
    pose -= pose[:, :1]
    root = np.stack([rng.uniform(-1, 1, P), rng.uniform(-0.5, 0.5, P), rng.uniform(2, 8, P)], -1)
    cam = pose + root[:, None]
    K = np.array([[600.0, 0, 320], [0, 610.0, 240], [0, 0, 1]])
    px = np.stack([K[0, 0] * cam[..., 0] / cam[..., 2] + K[0, 2], K[1, 1] * cam[..., 1] / cam[..., 2] + K[1, 2]], -1)
    return pose, root, K, px


def test_exact_recovery_without_noise():
    rng = np.random.default_rng(0)
    pose, root, K, px = _scene(rng)
    kn = normalise_px(px, K)
    est, cov = place_root(kn, np.full(kn.shape[:2], 0.01), pose)
    np.testing.assert_allclose(est, root, atol=1e-6)
    assert cov.shape == (6, 3, 3)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    # depth is the least certain direction for a small person far away
    assert np.all(cov[:, 2, 2] > cov[:, 0, 0])


def test_noisy_error_matches_covariance():
    rng = np.random.default_rng(1)
    z = []
    for _ in range(200):
        pose, root, K, px = _scene(rng, 1)
        kn = normalise_px(px, K)
        sig = 0.004
        est, cov = place_root(kn + rng.standard_normal(kn.shape) * sig, np.full((1, 17), sig), pose)
        e = est[0] - root[0]
        z.append(e @ np.linalg.solve(cov[0], e))
    assert 2.0 < np.mean(z) < 4.5  # chi^2(3) has mean 3


def test_low_confidence_joint_is_ignored():
    rng = np.random.default_rng(2)
    pose, root, K, px = _scene(rng, 1)
    kn = normalise_px(px, K)
    kn[0, 5] += 0.5  # a wild outlier...
    sig = np.full((1, 17), 0.002)
    sig[0, 5] = 10.0  # ...that the detector marked as uncertain
    est, _ = place_root(kn, sig, pose)
    np.testing.assert_allclose(est, root, atol=1e-3)


def test_bad_shapes():
    with pytest.raises(ValueError):
        place_root(np.zeros((2, 17, 3)), np.ones((2, 17)), np.zeros((2, 17, 3)))


def test_pose_and_hypotheses_placed_in_one_batch_as_each_alone():
    rng = np.random.default_rng(3)
    pose, root, K, px = _scene(rng, 3)
    kn = normalise_px(px, K) + rng.standard_normal((3, 17, 2)) * 0.003
    sig = np.full((3, 17), 0.003)
    hyps = pose[:, None] + rng.standard_normal((3, 4, 17, 3)) * 0.05
    r, c, roots = place_hypotheses(kn, sig, pose, hyps)
    r1, c1 = place_root(kn, sig, pose)
    np.testing.assert_allclose(r, r1, rtol=1e-12)
    np.testing.assert_allclose(c, c1, rtol=1e-12)
    for n in range(4):
        np.testing.assert_allclose(roots[:, n], place_root(kn, sig, hyps[:, n])[0], rtol=1e-12)
