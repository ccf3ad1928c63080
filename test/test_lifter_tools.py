"""diffpose-calibrate / diffpose-evaluate / diffpose-fit-gmm on a tiny subset (copies of the shipped weights)."""
import json
import shutil

import pytest

from diffpose_ros import paths
from diffpose_ros.paths import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not available")


def test_calibrate_then_evaluate(tmp_path):
    from diffpose_ros.tools import calibrate, evaluate
    w = tmp_path / "frame"
    shutil.copytree(WEIGHTS_DIR / "frame", w)
    assert calibrate.main(["--weights", str(w), "--steps", "2", "--n-hyp", "3", "--max-samples", "150",
                           "--limit-clips", "3", "--threads", "1"]) == 0
    cal = json.loads((w / "calibration.json").read_text())
    assert "s2_n3" in cal and len(cal["default"]["var_scale"]) == 17
    out = tmp_path / "eval.json"
    assert evaluate.main(["--weights", str(w), "--steps", "2", "--n-hyp", "3", "--max-samples", "120",
                          "--limit-clips", "3", "--out", str(out), "--plot", str(tmp_path / "u.png"),
                          "--threads", "1"]) == 0
    r = json.loads(out.read_text())["models"]["frame"]
    assert r["default"]["calibrated"] and r["default"]["mpjpe_mm"] > 0
    assert set(r["default"]["coverage"]) == {"0.50", "0.90", "0.95"}
    assert (tmp_path / "u.png").stat().st_size > 1000


@pytest.mark.slow
def test_fit_gmm_tool(tmp_path):
    from diffpose_ros.tools import fit_gmm
    w = tmp_path / "frame"
    shutil.copytree(WEIGHTS_DIR / "frame", w)
    assert fit_gmm.main(["--weights", str(w), "--components", "2", "--max-samples", "500",
                         "--limit-clips", "4", "--threads", "1"]) == 0
    rep = json.loads((w / "gmm_report.json").read_text())
    assert len(rep["gmm_weights"]) == 2
