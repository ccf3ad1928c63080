"""COCO-17 -> H36M-17 mapping."""
import numpy as np
import pytest

from diffpose_ros.detector.coco_to_h36m import HEAD_UP, coco_to_h36m
from diffpose_ros.skeleton import COCO_JOINTS, H36M_JOINTS

C = {n: i for i, n in enumerate(COCO_JOINTS)}
H = {n: i for i, n in enumerate(H36M_JOINTS)}


def _person(rng):
    kp = rng.uniform(0, 500, (17, 2))
    conf = rng.uniform(0.05, 1.0, 17)
    return kp, conf


def test_direct_and_derived_joints():
    rng = np.random.default_rng(0)
    kp, conf = _person(rng)
    h, hc = coco_to_h36m(kp, conf)
    assert h.shape == (17, 2) and hc.shape == (17,)
    for name in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "l_shoulder",
                 "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"):
        np.testing.assert_array_equal(h[H[name]], kp[C[name]])
        assert hc[H[name]] == conf[C[name]]
    np.testing.assert_array_equal(h[H["neck_nose"]], kp[C["nose"]])
    pelvis = (kp[C["l_hip"]] + kp[C["r_hip"]]) / 2
    thorax = (kp[C["l_shoulder"]] + kp[C["r_shoulder"]]) / 2
    np.testing.assert_allclose(h[H["pelvis"]], pelvis)
    np.testing.assert_allclose(h[H["thorax"]], thorax)
    np.testing.assert_allclose(h[H["spine"]], (pelvis + thorax) / 2)
    assert hc[H["pelvis"]] == min(conf[C["l_hip"]], conf[C["r_hip"]])
    assert hc[H["spine"]] == min(conf[[C["l_hip"], C["r_hip"], C["l_shoulder"], C["r_shoulder"]]])


def test_head_is_above_the_face_on_an_upright_person():
    kp = np.zeros((17, 2))
    kp[C["nose"]] = [100, 50]
    kp[C["l_eye"]], kp[C["r_eye"]] = [105, 45], [95, 45]
    kp[C["l_ear"]], kp[C["r_ear"]] = [112, 48], [88, 48]
    kp[C["l_shoulder"]], kp[C["r_shoulder"]] = [130, 90], [70, 90]
    kp[C["l_hip"]], kp[C["r_hip"]] = [120, 200], [80, 200]
    h, hc = coco_to_h36m(kp, np.ones(17))
    face_y = (45 + 45 + 48 + 48) / 4
    assert h[H["head"], 1] == pytest.approx(face_y + HEAD_UP * (face_y - 90))
    assert h[H["head"], 1] < h[H["neck_nose"], 1] < h[H["thorax"], 1] < h[H["spine"], 1] < h[H["pelvis"], 1]
    assert h[H["head"], 0] == pytest.approx(100)
    # a profile view: the hidden eye and ear (conf 0, wild positions) barely move the head
    kp2, conf2 = kp.copy(), np.ones(17)
    kp2[C["r_eye"]], kp2[C["r_ear"]] = [400, 400], [400, 400]
    conf2[C["r_eye"]] = conf2[C["r_ear"]] = 0.0
    h2, hc2 = coco_to_h36m(kp2, conf2)
    assert abs(h2[H["head"], 0] - 108.5 - HEAD_UP * (108.5 - 100)) < 0.01
    assert hc2[H["head"]] == 1.0


def test_vectorised_matches_loop_and_default_conf():
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 500, (3, 4, 17, 2))
    conf = rng.uniform(0, 1, (3, 4, 17))
    h, hc = coco_to_h36m(kp, conf)
    assert h.shape == (3, 4, 17, 2) and hc.shape == (3, 4, 17)
    h1, hc1 = coco_to_h36m(kp[2, 1], conf[2, 1])
    np.testing.assert_allclose(h[2, 1], h1)
    np.testing.assert_allclose(hc[2, 1], hc1)
    _, ones = coco_to_h36m(kp)
    assert np.allclose(ones, 1.0)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(\.\.\.,17,2\)"):
        coco_to_h36m(np.zeros((16, 2)))
    with pytest.raises(ValueError, match="conf shape"):
        coco_to_h36m(np.zeros((17, 2)), np.zeros(16))
