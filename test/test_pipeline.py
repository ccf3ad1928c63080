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
