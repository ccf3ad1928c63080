"""A short soak in CI (the 10-minute one is `diffpose-soak --minutes 10`, result in the README):
camera at 30 Hz into the node for 60 s; the node keeps up without dying, answers, stops cleanly
and its memory stays flat after warm-up."""
import json

import pytest

from diffpose_ros.paths import WEIGHTS_DIR


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.skipif(not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported")
def test_short_soak(tmp_path):
    from diffpose_ros.tools.soak import main
    code = main(["--minutes", "1", "--warmup", "20", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "soak.json").read_text())
    assert code == 0, summary["status"]
    assert summary["frames_out"] >= 30 and summary["pose_messages_received"] >= 30
    assert summary["frames_in"] > summary["frames_out"], "30 Hz is more than the CPU node processes: drops expected"
    assert summary["rss_growth_pct"] < 10.0, summary
    assert summary["shutdown_s"] < 5.0
