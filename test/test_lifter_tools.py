"""diffpose-train -> diffpose-calibrate -> diffpose-evaluate -> diffpose-fit-gmm on a user's BVH folder
(40 real Bandai Namco clips), as a user with their own motion capture runs them (slow)."""
import json

import pytest

from diffpose_ros import paths

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not available")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from diffpose_ros.tools import train
    root = tmp_path_factory.mktemp("tools")
    folder = root / "my_mocap"
    folder.mkdir()
    for f in sorted((paths.MOCAP_DIR / "bandai-namco-1").glob("*.bvh"))[:40]:
        (folder / f.name).symlink_to(f)
    w = root / "frame"
    assert train.main(["--model", "frame", "--out", str(w), "--data", f"bvh:{folder}:map=bandai_namco",
                       "--protocol", "all", "--iters", "30", "--denoiser-iters", "30", "--batch", "64",
                       "--hidden", "32", "--layers", "1", "--eval-every", "15", "--calibrate-steps", "2",
                       "--calibrate-n", "3", "--threads", "1", "--ckpt-dir", str(root / "ck")]) == 0
    return root, w


def test_train_records_data_and_calibration(trained):
    root, w = trained
    cfg = json.loads((w / "config.json").read_text())
    assert cfg["data"]["protocol"] == "all" and cfg["data"]["sources"][0].startswith("bvh:")
    cal = json.loads((w / "calibration.json").read_text())
    assert len(cal["s2_n3"]["var_scale"]) == 17
    summary = json.loads((w / "train_summary.json").read_text())
    assert {"encoder", "hk", "denoiser", "calibrate"} <= set(summary["stage_wall_time_s"])


def test_calibrate_then_evaluate(trained):
    from diffpose_ros.tools import calibrate, evaluate
    root, w = trained
    assert calibrate.main(["--weights", str(w), "--steps", "1", "--n-hyp", "4", "--max-samples", "150",
                           "--threads", "1"]) == 0
    cal = json.loads((w / "calibration.json").read_text())
    assert "s1_n4" in cal and "s2_n3" in cal
    assert len(cal["s1_n4"]["ground"]["var_scale"]) == 17 and cal["s1_n4"]["ground"]["share_used"] > 0.5
    out = root / "eval.json"
    assert evaluate.main(["--weights", str(w), "--rows", "val", "--steps", "1", "--n-hyp", "4",
                          "--max-samples", "120", "--out", str(out), "--plot", str(root / "u.png"),
                          "--threads", "1"]) == 0
    r = json.loads(out.read_text())["rows"]["val"]
    assert r["DiffPose frame"]["calibration"] == "s1_n4" and r["DiffPose frame"]["mpjpe_mm"] > 0
    assert set(r["DiffPose frame"]["coverage_abs"]) == {"0.50", "0.90", "0.95"}
    groups = r["DiffPose frame"]["groups"]   # the partly seen people's coverage
    assert set(groups) == {"truncated", "occluded"} and 0 < groups["truncated"]["n"] < 120
    assert r["encoder frame"]["root_error_m"] > 0
    floor = r["DiffPose frame, floor known"]      # the same samples, each camera's height and tilt given
    assert floor["floor_used"] > 0.5 and floor["n"] == r["DiffPose frame"]["n"]
    assert floor["root_error_m"] != r["DiffPose frame"]["root_error_m"]
    assert (root / "u.png").stat().st_size > 1000
    # the test rows are in an 'all'-protocol bundle's training data: refused, not silently measured
    with pytest.raises(SystemExit, match="leave-out-v1"):
        evaluate.main(["--weights", str(w), "--out", str(out), "--threads", "1"])


def test_evaluate_on_human36m_files(trained, tmp_path):
    """The Human3.6M row on files in VideoPose3D's format (synthetic here: the dataset cannot be
    shipped), with its own cameras and the file's 2D detections."""
    import numpy as np
    from diffpose_ros.tools import evaluate
    from test_data_h36m import write_files
    root, w = trained
    write_files(tmp_path, np.random.default_rng(0))
    out = tmp_path / "h36m.json"
    assert evaluate.main(["--weights", str(w), "--rows", "val", "--steps", "1", "--n-hyp", "3",
                          "--max-samples", "60", "--out", str(out), "--plot", "", "--threads", "1",
                          "--h36m-3d", str(tmp_path / "data_3d_h36m.npz"),
                          "--h36m-2d", str(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz")]) == 0
    r = json.loads(out.read_text())["rows"]["h36m"]
    assert r["DiffPose frame"]["n"] > 0 and np.isfinite(r["DiffPose frame"]["mpjpe_mm"])
    assert "DiffPose frame, floor known" not in r      # Human3.6M's files give no floor


def test_fit_gmm_tool(trained):
    from diffpose_ros.tools import fit_gmm
    root, w = trained
    assert fit_gmm.main(["--weights", str(w), "--gmm-components", "2", "--threads", "1"]) == 0
    summary = json.loads((w / "train_summary.json").read_text())
    assert len(summary["initial_distribution"]["gmm_weights"]) == 2
    # a new H_K invalidates the denoiser trained on the old one: the bundle says so (runs last)
    from diffpose_ros.lifter.model_io import load_bundle
    assert load_bundle(w).denoiser is None
