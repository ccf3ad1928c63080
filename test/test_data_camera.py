"""Pinhole helpers and virtual cameras."""
import numpy as np
import pytest

from diffpose_ros import camera
from diffpose_ros.data.virtual_camera import CameraConfig, look_at, sample_camera


def test_projection_round_trip():
    rng = np.random.default_rng(0)
    K = camera.intrinsics(600.0, 610.0, 320.5, 241.0)
    X = rng.uniform([-3, -2, 0.5], [3, 2, 10], size=(50, 17, 3))
    uv = camera.project(X, K)
    np.testing.assert_allclose(camera.unproject(uv, X[..., 2], K), X, atol=1e-6)
    xy = camera.normalize(uv, K)
    np.testing.assert_allclose(xy, X[..., :2] / X[..., 2:], atol=1e-12)
    np.testing.assert_allclose(camera.denormalize(xy, K), uv, atol=1e-9)
    # batched K (one per sample)
    Ks = np.broadcast_to(K, (50, 3, 3))
    np.testing.assert_allclose(camera.project(X, Ks), uv)


def test_world_camera_round_trip_and_visibility():
    R = look_at([0, 1, -3], [0, 1, 0])
    t = -R @ np.array([0, 1, -3])
    p = np.array([[0.0, 2.0, 0.0], [0.0, 1.0, -5.0]])
    pc = camera.world_to_camera(p, R, t)
    # world up is image up (-y), the target straight ahead, the second point behind the camera
    np.testing.assert_allclose(pc[0], [0, -1, 3], atol=1e-12)
    assert camera.in_front(pc).tolist() == [True, False]
    np.testing.assert_allclose(camera.camera_to_world(pc, R, t), p, atol=1e-12)
    uv = np.array([[10, 10], [-1, 5], [639.5, 479.5], [640, 10]])
    assert camera.in_image(uv, (640, 480)).tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="K must have shape"):
        camera.project(pc, np.eye(2))


def test_look_at_right_handed_axes():
    # looking along +Z with Y up, image right is world -X (right-handed world)
    R = look_at([0, 0, 0], [0, 0, 5])
    np.testing.assert_allclose(R, [[-1, 0, 0], [0, -1, 0], [0, 0, 1]], atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_virtual_cameras_within_ranges():
    rng = np.random.default_rng(1)
    cfg = CameraConfig()
    pelvis = np.c_[np.linspace(-1, 1, 60), np.full(60, 0.9), np.zeros(60)]
    for _ in range(200):
        cam = sample_camera(rng, pelvis, floor_y=0.0, cfg=cfg)
        assert np.allclose(cam.R @ cam.R.T, np.eye(3)) and np.linalg.det(cam.R) > 0
        c = cam.center
        assert cfg.height_range[0] - 1e-9 <= c[1] <= cfg.height_range[1] + 1e-9
        d = np.linalg.norm(c[[0, 2]] - pelvis.mean(0)[[0, 2]])
        assert cfg.distance_range[0] - 1e-9 <= d <= cfg.distance_range[1] + 1e-9
        w, h = cam.image_size
        assert (int(w), int(h)) in cfg.image_sizes
        hfov = np.degrees(2 * np.arctan(w / (2 * cam.K[0, 0])))
        assert cfg.hfov_range[0] - 1e-6 <= hfov <= cfg.hfov_range[1] + 1e-6
        assert abs(cam.K[0, 2] - w / 2) < 0.1 * w and abs(cam.K[1, 2] - h / 2) < 0.1 * h
        # roll is small: the camera x axis stays nearly horizontal
        assert abs(np.degrees(np.arcsin(cam.R[0, 1]))) < 6.0
