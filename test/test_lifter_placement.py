import numpy as np
import pytest

from diffpose_ros.camera import normalize as normalise_px
from diffpose_ros.lifter.placement import DEPTH_TRUST, linear_root, place_hypotheses, place_root


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


def _people(rng, P):
    """Person-like scenes: 17 joints spread like a standing adult (about 0.35 m per axis), 2 to 8 m
    away, projected with a 600 px camera."""
    pose = rng.standard_normal((P, 17, 3)) * np.array([0.2, 0.45, 0.15])
    pose -= pose[:, :1]
    root = np.stack([rng.uniform(-1, 1, P), rng.uniform(-0.3, 0.3, P), rng.uniform(2, 8, P)], -1)
    cam = pose + root[:, None]
    return pose, root, cam[..., :2] / cam[..., 2:]


def test_depth_unbiased_when_the_keypoints_are_noisy():
    # The multiplied-out linear equations have the noisy keypoint in the design matrix and pull
    # the depth toward the camera (errors in variables: about 0.96 of the true depth with noise
    # 0.3 of the joints' mean distance from their centre in the image, as heavy as the training
    # noise is against the detector's sigma); the reprojection fit has the noise in its residual
    # only. The true pose is given, so any bias is the estimator's.
    rng = np.random.default_rng(4)
    pose, root, kn = _people(rng, 600)
    sig = 0.3 * np.abs(kn - kn.mean(1, keepdims=True)).mean((1, 2))[:, None].repeat(17, 1)
    noisy = kn + rng.standard_normal(kn.shape) * sig[..., None]
    est, _ = place_root(noisy, sig, pose)
    ratio = est[:, 2] / root[:, 2]
    assert abs(np.median(ratio) - 1.0) < 0.01, np.median(ratio)
    lin = linear_root(noisy, sig, pose)[:, 2] / root[:, 2]
    assert np.median(lin) < 0.98  # what the refinement removes (else this test shows nothing)


def test_joints_not_seen_are_left_out_of_the_fit():
    # Five joints outside the image (confidence 0.05), their keypoints guessed near the middle of
    # the body with an ordinary sigma: with conf given they do not move the root.
    rng = np.random.default_rng(5)
    pose, root, kn = _people(rng, 1)
    sig = np.full((1, 17), 0.002)
    guessed = kn.copy()
    out = [10, 11, 13, 14, 16]
    guessed[0, out] = kn[0].mean(0) + rng.standard_normal((5, 2)) * 0.01
    conf = np.ones((1, 17))
    conf[0, out] = 0.05
    est, _ = place_root(guessed, sig, pose, conf)
    np.testing.assert_allclose(est, root, atol=1e-6)
    off, _ = place_root(guessed, sig, pose)
    assert np.abs(off - root).max() > 0.05


def test_refinement_never_leaves_the_trust_range():
    # keypoints of another pose than the one placed: a robust fit could lower its cost by moving
    # the body to infinity; the depth stays within DEPTH_TRUST of the linear solution
    rng = np.random.default_rng(6)
    pose, root, kn = _people(rng, 50)
    other = rng.standard_normal(pose.shape) * 0.4
    sig = np.full((50, 17), 0.002)
    lin = linear_root(kn, sig, other)
    est, cov = place_root(kn, sig, other)
    ratio = est[:, 2] / lin[:, 2]
    assert np.all((ratio >= 1 / DEPTH_TRUST - 1e-9) & (ratio <= DEPTH_TRUST + 1e-9))
    assert np.isfinite(cov).all()
