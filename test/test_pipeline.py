"""The ROS-free pipeline: intrinsics and undistortion, and the reliability rule for people."""
import cv2
import numpy as np
import pytest

from diffpose_ros.paths import IMAGES_DIR, WEIGHTS_DIR
from diffpose_ros.pipeline import Intrinsics, PipelineConfig, PosePipeline


def test_intrinsics_validation_and_fov():
    intr = Intrinsics.from_fov(640, 480, 90.0)
    assert intr.K[0, 0] == pytest.approx(320.0) and intr.K[0, 2] == pytest.approx(319.5)
    for K in ([[0, 0, 1], [0, 500, 1], [0, 0, 1]], [[np.nan, 0, 1], [0, 500, 1], [0, 0, 1]]):
        with pytest.raises(ValueError, match="invalid intrinsics"):
            Intrinsics(K=K)
    with pytest.raises(ValueError, match="distortion"):
        Intrinsics(K=intr.K, D=[np.inf, 0, 0, 0, 0])


def test_undistort_inverts_the_lens_model():
    K = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]])
    D = np.array([-0.25, 0.08, 0.001, -0.002, 0.0])
    rng = np.random.default_rng(0)
    pts3d = np.c_[rng.uniform(-1, 1, (50, 2)), rng.uniform(2, 5, 50)]
    ideal = (pts3d[:, :2] / pts3d[:, 2:]) * 600 + [320, 240]
    distorted, _ = cv2.projectPoints(pts3d, np.zeros(3), np.zeros(3), K, D)
    back = Intrinsics(K=K, D=D).undistort(distorted.reshape(-1, 2))
    np.testing.assert_allclose(back, ideal, atol=1e-2)   # OpenCV iterates 5 times: < 0.01 px
    np.testing.assert_array_equal(Intrinsics(K=K).undistort(ideal), ideal)   # no distortion: unchanged


@pytest.mark.skipif(not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported")
def test_unreliable_people_flagged_or_dropped():
    image = cv2.imread(str(IMAGES_DIR / "basketball1.png"))
    intr = Intrinsics.from_fov(640, 480, 60.0)
    strict = PipelineConfig(min_keypoint_conf=0.99, min_keypoints=17, publish_unreliable=True)
    pipe = PosePipeline.create(backend="torch", config=strict)
    flagged = pipe.process(image, intr, 1.0).people
    assert flagged and not any(p.reliable for p in flagged)
    pipe.config = PipelineConfig(min_keypoint_conf=0.99, min_keypoints=17, publish_unreliable=False)
    assert pipe.process(image, intr, 2.0).people == []
    pipe.config = PipelineConfig()
    normal = pipe.process(image, intr, 3.0).people
    assert len(normal) == 2 and all(p.reliable for p in normal)
    assert {p.track_id for p in normal} == {p.track_id for p in flagged}   # the tracker carried on


def test_check_people_refuses_only_the_bad_ones():
    """One batched check for a frame's people; a bad one (here a filter state with a negative
    variance, or a NaN) is found and refused alone, the others are checked and repaired."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from ros_peer import two_people
    from diffpose_ros.people import FilteredState, check_people, repair_covariance
    people = two_people() + two_people()
    for p in people:
        p.covariance = p.covariance.copy()
        p.covariance[3, 0, 1] += 1e-12                             # asymmetric by rounding
        p.filtered = FilteredState(root=p.root, velocity=np.zeros(3), covariance=np.eye(6) * 0.01,
                                   positions=p.positions, joint_covariance=p.covariance, time_since_measurement=0.1,
                                   is_prediction=False, ahead_s=1.0, ahead_root=p.root, ahead_covariance=np.eye(3))
    assert check_people(people) == [None] * 4
    assert all(np.array_equal(p.covariance, np.swapaxes(p.covariance, 1, 2)) for p in people)
    people[1].filtered.covariance = -np.eye(6)
    people[3].positions = np.full((17, 3), np.nan)
    errors = check_people(people)
    assert errors[0] is None and errors[2] is None
    assert "positive semi-definite" in str(errors[1]) and "positions has non-finite" in str(errors[3])
    # a PSD matrix comes back as it was (symmetrised), a tiny negative eigenvalue is clipped
    good = np.diag([1e-2, 2e-2, 3e-2])
    assert np.array_equal(repair_covariance(good), good)
    tiny = good.copy()
    tiny[0, 0] = -1e-12
    assert np.linalg.eigvalsh(repair_covariance(tiny)).min() > 0
