"""2D sigma model: shape, monotonicity, scaling; the fit reproduces the recorded constants."""
import numpy as np
import pytest

from diffpose_ros.detector import uncertainty as U
from diffpose_ros.detector.export import DEFAULT_ONNX
from diffpose_ros.paths import IMAGES_DIR
from diffpose_ros.skeleton import H36M_JOINTS

H = {n: i for i, n in enumerate(H36M_JOINTS)}


def test_shapes_and_monotonic():
    conf = np.random.default_rng(0).uniform(0, 1, (4, 3, 17))
    size = np.full((4, 3), 300.0)
    s = U.keypoint_sigma_px(conf, size)
    assert s.shape == (4, 3, 17) and np.all(s >= U.MIN_SIGMA_PX)
    lo = U.keypoint_sigma_px(np.full(17, 0.2), np.float64(300))
    hi = U.keypoint_sigma_px(np.full(17, 0.9), np.float64(300))
    assert np.all(lo > hi)                                  # less confident -> wider
    big = U.keypoint_sigma_px(np.full(17, 0.9), np.float64(600))
    np.testing.assert_allclose(big, 2 * hi)                 # proportional to person size
    # anatomy: a confident hip is vaguer than a confident nose (OKS sigmas)
    assert hi[H["r_hip"]] > hi[H["neck_nose"]]
    # tiny people hit the floor
    assert np.all(U.keypoint_sigma_px(np.ones(17), np.float64(1.0)) == U.MIN_SIGMA_PX)


def test_values_are_plausible():
    # a confident wrist of a 500 px tall person: a few px; an unseen one: tens of px
    d = U.box_diagonal(np.array([0, 0, 200, 500.0]))
    s1 = U.keypoint_sigma_px(np.ones(17), d)[H["l_wrist"]]
    s0 = U.keypoint_sigma_px(np.zeros(17), d)[H["l_wrist"]]
    assert 1.0 < s1 < 10.0 and 15.0 < s0 < 60.0


def test_errors():
    with pytest.raises(ValueError, match="17"):
        U.keypoint_sigma_px(np.ones(16), np.float64(10))
    with pytest.raises(ValueError, match="box_size shape"):
        U.keypoint_sigma_px(np.ones((2, 17)), np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        U.keypoint_sigma_px(np.ones(17), np.float64(-1))


def test_fit_recovers_known_parameters():
    # synthetic spreads drawn from the model with a=0.2, b=0.05 and log-normal noise
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, (200, 17))
    diag = rng.uniform(50, 800, 200)
    spread = U.keypoint_sigma_px(conf, diag, 0.2, 0.05) * np.exp(rng.normal(0, 0.2, (200, 17)))
    res = U.fit_sigma_model(spread, conf, diag)
    assert res["A"] == pytest.approx(0.2, rel=0.1) and res["B"] == pytest.approx(0.05, rel=0.1)


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_ONNX.exists() or not (IMAGES_DIR / "vtest.avi").exists(),
                    reason="needs the exported detector and the shared images")
def test_fit_on_shared_images_reproduces_constants():
    from diffpose_ros.detector.yolo_pose import YoloPoseDetector

    spread, conf, diag = U.measure_spread(YoloPoseDetector(), U.fit_images())
    res = U.fit_sigma_model(spread, conf, diag)
    assert res["A"] == pytest.approx(U.A, rel=0.05) and res["B"] == pytest.approx(U.B, rel=0.05)
    assert res["rms_log_ratio"] < res["rms_log_ratio_without_conf_term"]
