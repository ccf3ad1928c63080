"""diffpose-build-dataset and diffpose-render-data on a few clips; full build as a slow test."""
import json
import time

import numpy as np
import pytest

from diffpose_ros import paths
from diffpose_ros.data.dataset import load_pairs

needs_data = pytest.mark.skipif(not paths.MOCAP_DIR.is_dir(), reason="shared mocap data not found")


@needs_data
def test_build_dataset_tool(tmp_path, monkeypatch, capsys):
    from diffpose_ros.tools import build_dataset
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    assert build_dataset.main(["--limit-clips", "2", "--stride", "10", "--splits", "val", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    for split in ("val", "test"):
        s = out["splits"][split]
        assert s["clips"] == 2 and s["sequences"] == 4 and s["samples"] > 0
        assert (tmp_path / "datasets").exists() and s["cache"].startswith(str(tmp_path))
    assert out["peak_rss_mb"] > 0


@needs_data
def test_render_data_tool(tmp_path, capsys):
    from diffpose_ros.tools import render_data
    out = tmp_path / "samples.png"
    assert render_data.main(["--out", str(out), "--num", "2", "--clips", "2"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp*"))


@needs_data
@pytest.mark.slow
def test_full_training_set_builds_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    d = load_pairs("train", stride=5, cache=False)
    assert time.perf_counter() - t0 < 300
    assert len(d["frame"]) > 30_000 and d["keypoints"].dtype == np.float32
    assert d["keypoints"].nbytes + d["pose3d"].nbytes < 1e9
