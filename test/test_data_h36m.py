"""Human3.6M loader on a synthetic file in VideoPose3D's exact npz format."""
import numpy as np
import pytest

from diffpose_ros import camera
from diffpose_ros.data.h36m import CAMERAS, H36M_17_FROM_32, camera_params, load_h36m, quat_to_matrix


def synthetic_world(F, rng):
    """(F, 32, 3) metres, Z-up world, a person of ~1.7 m standing near the capture-area centre."""
    p = np.zeros((F, 32, 3))
    p[:, :, 2] = np.linspace(0.1, 1.7, 32)           # spread joints over the body height
    p[:, :, :2] = rng.normal(0, 0.15, (F, 32, 2))
    p[:, 0] = [0.0, 0.0, 0.95]                        # pelvis
    return p + np.array([0.2, -0.3, 0.0])


def write_files(tmp_path, rng):
    pos3d = {"S1": {"Walking": synthetic_world(30, rng)}, "S9": {"Sitting 1": synthetic_world(20, rng)},
             "S11": {"Directions": synthetic_world(10, rng)}}
    pos2d = {}
    for s, acts in pos3d.items():
        pos2d[s] = {}
        for a, w in acts.items():
            tracks = []
            for c in range(4):
                R, t, K, _ = camera_params(s, c)
                px = camera.project(camera.world_to_camera(w[:, list(H36M_17_FROM_32)], R, t), K)
                tracks.append(np.concatenate([px, px[-2:]]).astype(np.float32))  # 2D 2 frames longer
            pos2d[s][a] = tracks
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d=pos3d)
    np.savez_compressed(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=pos2d, metadata=meta)
    return pos3d


def test_cameras_look_at_capture_area():
    for s in ("S1", "S9", "S11"):
        for c in range(4):
            R, t, K, size = camera_params(s, c)
            assert np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0
            centre = camera.world_to_camera(np.array([[0.0, 0.0, 1.0]]), R, t)
            assert 3.5 < centre[0, 2] < 7.5                              # in front, a few metres away
            uv = camera.project(centre, K)[0]
            assert np.all(np.abs(uv - size / 2) < 0.3 * size)            # near the image centre
            up = R @ np.array([0.0, 0.0, 1.0])                           # world up is image up (-y)
            assert up[1] < -0.9
    np.testing.assert_allclose(quat_to_matrix([1, 0, 0, 0]), np.eye(3))


def test_load_h36m_synthetic(tmp_path):
    rng = np.random.default_rng(0)
    pos3d = write_files(tmp_path, rng)
    d = load_h36m("test", tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz")
    S = (20 + 10) * 4
    assert d["pose3d"].shape == (S, 17, 3) and d["keypoints"].shape == (S, 17, 2)
    assert list(d["clip_names"]) == ["S9/Sitting 1", "S11/Directions"]
    # 2D detections here are exact projections: noisy == clean; the root is subtracted
    np.testing.assert_allclose(d["keypoints"], d["keypoints_clean"], atol=1e-4)
    np.testing.assert_allclose(d["pose3d"][:, 0], 0, atol=1e-6)
    assert d["conf"].min() == 1.0 and d["visible"].all()
    assert set(np.unique(d["seq"])) == set(range(8)) and d["frame"].max() == 19
    # bone lengths are preserved by the camera transform
    w = pos3d["S9"]["Sitting 1"][:, list(H36M_17_FROM_32)]
    np.testing.assert_allclose(np.linalg.norm(d["pose3d"][:20, 3] - d["pose3d"][:20, 2], axis=-1),
                               np.linalg.norm(w[:, 3] - w[:, 2], axis=-1), atol=1e-5)
    tr = load_h36m("train", tmp_path / "data_3d_h36m.npz", stride=3, subjects=["S1"])
    with pytest.raises(ValueError, match="S5"):
        load_h36m("train", tmp_path / "data_3d_h36m.npz")
    assert len(tr["frame"]) == 10 * 4 and tr["conf"].max() <= 1
    assert not np.allclose(tr["keypoints"], tr["keypoints_clean"])      # noise applied without 2D file
    np.testing.assert_allclose(tr["K"][0, 0, 0], CAMERAS[0][1], rtol=1e-6)


def test_load_h36m_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_h36m("test", tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="split"):
        load_h36m("val", tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="subject"):
        camera_params("S2", 0)
