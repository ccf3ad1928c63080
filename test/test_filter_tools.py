"""The filter in the offline tools: diffpose-lift writes the filtered state when track ids are
given; diffpose-evaluate-filter runs end to end on one validation clip."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from diffpose_ros.tools import lift as lift_tool

sys.path.insert(0, str(Path(__file__).parent))
from test_lifter_weights import K, STANDING, project  # noqa: E402

FILTER_KEYS = ("filtered_root", "velocity", "state_covariance", "filtered_poses3d", "filtered_covariance",
               "time_since_measurement", "is_prediction", "predicted_root", "predicted_root_cov", "stamp")


def _two_walkers(path, frames=8, dt=0.1, **over):
    """Two people walking in opposite directions, one row per (frame, person), as diffpose-detect writes."""
    kp, ids, stamps = [], [], []
    for f in range(frames):
        for tid, x0, vx in ((1, -0.8, 1.0), (2, 0.8, -1.0)):
            kp.append(project(STANDING, np.array([x0 + vx * f * dt, 0.0, 4.0])))
            ids.append(tid)
            stamps.append(10.0 + f * dt)
    data = {"keypoints": np.stack(kp), "scores": np.full((len(kp), 17), 0.9), "K": K,
            "track_ids": np.array(ids), "stamp": np.array(stamps)}
    data.update(over)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return len(kp)


def test_lift_writes_filtered_state(tmp_path):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    F = _two_walkers(inp)
    assert lift_tool.main([str(inp), str(out), "--n-hyp", "3", "--steps", "2", "--threads", "1"]) == 0
    with np.load(out) as z:
        for key in FILTER_KEYS:
            assert key in z.files and len(z[key]) == F, key
        assert z["state_covariance"].shape == (F, 6, 6) and z["filtered_poses3d"].shape == (F, 17, 3)
        assert z["is_prediction"].dtype == bool and float(z["prediction_horizon"]) == 1.0
        assert np.isfinite(z["filtered_root"]).all() and np.isfinite(z["state_covariance"]).all()
        ids = np.tile([1, 2], F // 2)
        # the two people walk apart at 1 m/s: the filter's x velocities have opposite signs at the end
        v1, v2 = z["velocity"][ids == 1][-1], z["velocity"][ids == 2][-1]
        assert v1[0] > 0.3 and v2[0] < -0.3
        np.testing.assert_allclose(z["time_since_measurement"][~z["is_prediction"]], 0.0)


def test_lift_filter_off_and_bad_input(tmp_path, capsys):
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    _two_walkers(inp, frames=3)
    assert lift_tool.main([str(inp), str(out), "--n-hyp", "3", "--steps", "2", "--no-filter"]) == 0
    with np.load(out) as z:
        assert not set(FILTER_KEYS) & set(z.files)
    _two_walkers(inp, frames=3, track_ids=None)            # no ids: nothing to filter
    assert lift_tool.main([str(inp), str(out), "--n-hyp", "3", "--steps", "2"]) == 0
    with np.load(out) as z:
        assert "velocity" not in z.files
    n = _two_walkers(inp, frames=3)
    _two_walkers(inp, frames=3, track_ids=np.ones(n, int))  # one id twice in one image
    out.unlink()
    assert lift_tool.main([str(inp), str(out), "--n-hyp", "3", "--steps", "2"]) == 2
    assert "track id repeated within one image" in capsys.readouterr().err and not out.exists()
    _two_walkers(inp, frames=3, stamp=np.full(n, np.nan))
    assert lift_tool.main([str(inp), str(out)]) == 2
    assert "'stamp'" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_filter_command(tmp_path, monkeypatch):
    from diffpose_ros.tools import evaluate_filter
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path / "cache"))
    out, plot = tmp_path / "eval.json", tmp_path / "eval.png"
    assert evaluate_filter.main(["--split", "val", "--limit-clips", "1", "--cameras", "1", "--rates", "10",
                                 "--drops", "none", "gap1s", "--backend", "torch", "--out", str(out),
                                 "--plot", str(plot)]) == 0
    res = json.loads(out.read_text())
    table = res["models"]["cv"]["results"]
    assert {"10Hz/none/all", "10Hz/gap1s/all"} <= set(table)
    r = table["10Hz/gap1s/all"]
    assert r["predicted_stamps"] > 0 and 0 <= r["consistency90_position"] <= 1
    for key in ("velocity_error_mps", "root_error_raw_m", "root_error_filtered_m", "jitter_raw_mps2",
                "jitter_filtered_mps2", "consistency90_velocity"):
        assert np.isfinite(r[key]), key
    assert res["models"]["cv"]["benchmark"]["3_people_ms_p50"] > 0 and plot.stat().st_size > 10_000
    # the same sequence with the camera's height and tilt given: lifted again (its own cache entry),
    # the body sized from the floor, a different root
    floor = tmp_path / "floor.json"
    assert evaluate_filter.main(["--split", "val", "--limit-clips", "1", "--cameras", "1", "--rates", "10",
                                 "--drops", "none", "--backend", "torch", "--floor", "--out", str(floor),
                                 "--plot", "none"]) == 0
    rf = json.loads(floor.read_text())
    assert rf["floor_known"] and not res["floor_known"]
    assert rf["models"]["cv"]["results"]["10Hz/none/all"]["root_error_raw_m"] != table["10Hz/none/all"]["root_error_raw_m"]
    # a second run reads the lifted sequences from the cache
    assert evaluate_filter.main(["--split", "val", "--limit-clips", "1", "--cameras", "1", "--rates", "10",
                                 "--drops", "none", "--backend", "torch", "--out", str(out), "--plot", str(plot)]) == 0
    # the default backend (ONNX Runtime, any N from one graph) lifts the same way
    assert evaluate_filter.main(["--split", "val", "--limit-clips", "1", "--cameras", "1", "--rates", "10",
                                 "--drops", "none", "--no-cache", "--threads", "1", "--out", str(out),
                                 "--plot", "none"]) == 0
