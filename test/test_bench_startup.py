"""diffpose-bench-startup: its log parsing (fast) and one real cold + warm start (slow)."""
import json
import sys

import pytest

from diffpose_ros.tools import bench_startup


def test_log_phase_reads_rclpy_stamps():
    log = ("[INFO] [1000.250000000] [diffpose_pose_node]: listening on /camera/image_raw\n"
           "[INFO] [1003.500000000] [diffpose_pose_node]: models loaded; lifter backend: x\n")
    assert bench_startup.log_phase(log, "listening on", 1000.0) == 0.25
    assert bench_startup.log_phase(log, "models loaded", 1000.0) == 3.5
    assert bench_startup.log_phase(log, "never", 1000.0) is None
    rows = [{"cache": "cold", "first_output_s": v} for v in (9.0, 7.0, 8.0)]
    assert bench_startup.summarise(rows, "cold") == {"runs": 3, "median_s": 8.0, "min_s": 7.0,
                                                     "max_s": 9.0}
    assert bench_startup.summarise(rows, "warm") == {"runs": 0}


@pytest.mark.slow
@pytest.mark.ros
def test_one_cold_and_one_warm_start(tmp_path, ros_env):
    pytest.importorskip("rclpy")
    out = tmp_path / "startup.json"
    assert bench_startup.main(["--runs", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    cold, warm = (r for r in result["runs"])
    assert (cold["cache"], cold["exported"], warm["cache"], warm["exported"]) == \
        ("cold", True, "warm", False)
    for r in (cold, warm):
        assert 0 < r["listening_s"] < r["models_loaded_s"] < r["first_output_s"]
        assert r["exit_code"] == 0
    print(json.dumps(result["runs"], indent=1), file=sys.stderr)
