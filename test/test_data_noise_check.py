"""The detector noise check: its statistics on a small bank; the full run with the detector (slow)."""
import json

import numpy as np
import pytest

from diffpose_ros import paths
from diffpose_ros.data import noise_check
from diffpose_ros.data.noise import NoiseConfig

needs_cmu = pytest.mark.skipif(not (paths.SHARED_DATA / "mocap-cmu").is_dir(), reason="shared data not found")


@pytest.fixture(scope="module")
def samples(module_cache):
    return noise_check.training_samples(200, 0, ["shared:sources=cmu-mb-fairmotion"])


@needs_cmu
def test_training_statistic_tracks_the_noise_size(samples):
    """The spread statistic is the error the model puts in: halving base_std halves it."""
    s1, c1, d1 = noise_check.training_stats(NoiseConfig(p_swap=0, p_wrong_limb=0, p_miss=0), samples)
    s2, _, _ = noise_check.training_stats(NoiseConfig(p_swap=0, p_wrong_limb=0, p_miss=0, base_std=0.25), samples)
    vis = samples["visible"] & ~samples["occluded"]
    ratio = np.median(s2[vis] / s1[vis])
    assert 0.45 < ratio < 0.55
    assert c1.shape == s1.shape == (200, 17) and np.all(d1 > 0)
    rows = noise_check.relation(s1, c1, d1)
    assert sum(r["n"] for r in rows) == 200 * 17
    # calibrated: the torso's median confidence is high, as the detector's (0.98 on the photos)
    q = noise_check.conf_quantiles(c1)
    assert q["torso"][2] > 0.9


def test_proportions_of_a_frontal_upright_person():
    J = noise_check.J
    kp = np.zeros((1, 17, 2))
    kp[0, J["pelvis"]], kp[0, J["thorax"]] = (100, 300), (100, 200)
    kp[0, J["neck_nose"]], kp[0, J["head"]] = (100, 170), (100, 150)
    kp[0, J["l_hip"]], kp[0, J["r_hip"]] = (125, 300), (75, 300)
    kp[0, J["l_shoulder"]], kp[0, J["r_shoulder"]] = (130, 200), (70, 200)
    p = noise_check.proportions_2d(kp, np.array([True]))
    assert p["nose_above_thorax"][0] == pytest.approx(0.3) and p["head_above_thorax"][0] == pytest.approx(0.5)
    assert p["hip_width"][0] == pytest.approx(0.5) and p["shoulder_width"][0] == pytest.approx(0.6)
    kp[0, J["thorax"]] = (200, 250)          # leaning 63 degrees: not upright, left out
    assert len(noise_check.proportions_2d(kp, np.array([True]))["hip_width"]) == 0


@needs_cmu
@pytest.mark.slow
def test_noise_check_with_the_real_detector(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    out = tmp_path / "check.json"
    assert noise_check.main(["--samples", "100", "--json", str(out), "--before",
                             "--data", "shared:sources=cmu-mb-fairmotion"]) == 0
    d = json.loads(out.read_text())
    assert d["detector"]["persons"] >= 10
    assert {r["ratio"] for r in d["proportions"]} == set(noise_check.PROPORTIONS)
    # the calibration's point: the detector's and the training's torso confidences agree
    det, now, before = (d[k]["conf_quantiles_10_25_50_75_90"]["torso"][2] for k in ("detector", "current", "before"))
    assert abs(det - now) < 0.05 and before < det - 0.15
    assert "| torso |" in capsys.readouterr().out
