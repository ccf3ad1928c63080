"""diffpose-bench-peers: the MediaPipe venv logic, settings, tables; the real worker where its venv exists."""
import os
import subprocess
import sys

import numpy as np
import pytest

from diffpose_ros.tools import bench_peers


def test_existing_venv_with_matching_stamp_is_reused(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    import hashlib
    (venv / ".diffpose-requirements").write_text(
        hashlib.sha256("\n".join(bench_peers.PEER_REQUIREMENTS).encode()).hexdigest())
    assert bench_peers.ensure_peer_venv(venv) == venv / "bin" / "python"   # no pip run: returns at once
    assert any(r.startswith("numpy==1.") for r in bench_peers.PEER_REQUIREMENTS)   # mediapipe needs numpy<2
    assert any(r.startswith("protobuf==4.") for r in bench_peers.PEER_REQUIREMENTS)


def test_parse_ours_and_scenes():
    name, kw = bench_peers.parse_ours("fast: size=416,model=int8")
    assert name == "fast" and kw["detector_options"]["input_size"] == 416
    assert kw["detector_model"].endswith("yolo11n-pose-int8.onnx")
    for s in bench_peers.SCENES:
        frames = bench_peers.scene_frames(s)
        assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in frames)


def test_tables_and_targets():
    row = {"median_ms": 30.0, "p90_ms": 35.0, "frames": 10, "people_per_frame": 1.0}
    result = {"scenes": {"1 person": {"ours": {**row, "detect_median_ms": 20.0, "lift_median_ms": 8.0},
                                      "BlazePose static": {**row, "median_ms": 31.0}},
                         "3 people": {"ours": {**row, "median_ms": 50.0}, "BlazePose static": row}}}
    table = bench_peers.markdown(result)
    assert "| 1 person | ours | 30.0 | 35.0 | 1.0 | 20.0 / 8.0 |" in table
    t = bench_peers.targets(result, "ours")
    assert "-> met" in t[0] and "NOT met" in t[1]          # 50 > 1.5 x 31


@pytest.mark.skipif(not (bench_peers.default_venv() / "bin" / "python").exists(),
                    reason="no MediaPipe venv (diffpose-bench-peers --setup-only makes it)")
def test_worker_times_blazepose(tmp_path):
    import cv2
    img = cv2.cvtColor(bench_peers.scene_frames("1 person")[0], cv2.COLOR_BGR2RGB)
    worker = bench_peers.BlazePose(bench_peers.default_venv() / "bin" / "python", img[None, None], tmp_path)
    try:
        assert worker.versions["mediapipe"] == "0.10.21" and worker.versions["numpy"].startswith("1.")
        for mode in ("static", "video"):
            got = worker.run(0, mode, frames=3, warmup=1)
            assert len(got["ms"]) == 3 and all(ms > 0 for ms in got["ms"]) and got["found"] == [1, 1, 1]
    finally:
        worker.close()
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 2), np.float32))
    run = subprocess.run([str(bench_peers.default_venv() / "bin" / "python"), str(bench_peers.WORKER), str(bad)],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "expected S x F x H x W x 3 uint8" in run.stderr
