"""A bag of the demo played twice in a row (the same stamps again, as `ros2 bag play` twice or
`--loop` does) must give output both times: the node sees time jump back, resets its tracker and
temporal buffers and goes on. rosbag2's player is not in the venv, so the test replays the bag's
messages itself, in order, through a publisher."""
import subprocess
import sys
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).parent))
from node_harness import NodeHarness  # noqa: E402

from diffpose_ros.paths import WEIGHTS_DIR  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.skipif(
    not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported (run setup)")]


def read_camera_topics(bag: Path):
    """The bag's Image and CameraInfo messages in recorded order, as rclpy messages."""
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import CameraInfo, Image
    types = {"/image": Image, "/camera_info": CameraInfo}
    with Reader(bag) as reader:
        return [(conn.topic, deserialize_message(raw, types[conn.topic]))
                for conn, _, raw in reader.messages() if conn.topic in types]


def test_demo_bag_played_twice_gives_output_both_times(ros_env, tmp_path):
    out = tmp_path / "demo"
    demo = subprocess.run([sys.executable, "-m", "diffpose_ros.tools.demo", "--out", str(out), "--frames", "3",
                           "--render", "1"], env=ros_env, capture_output=True, text=True, timeout=400)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    recorded = read_camera_topics(out / "demo_bag")
    images = [m for topic, m in recorded if topic == "/image"][:4]
    info = next(m for topic, m in recorded if topic == "/camera_info")
    assert len(images) >= 3

    rclpy.init()
    node = NodeHarness(ros_env, tmp_path / "node.log", name="pose_node_bag_replay")
    try:
        passes = []
        for _ in range(2):
            start = len(node.poses)
            node.pub_info.publish(info)
            for image in images:                        # one at a time, so that none is dropped as stale
                node.send(image)
                stamp = (image.header.stamp.sec, image.header.stamp.nanosec)
                node.spin_until(lambda: any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp
                                            for m in node.poses[start:]), 60, f"the pose of {stamp}")
            passes.append([m for m in node.poses[start:]])
        counters = node.counters()
    finally:
        code = node.close()
        rclpy.shutdown()
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in images]
    for published in passes:
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in published] == stamps
        assert any(m.people for m in published)
    assert int(counters["time_jumps"]) == 1, counters
    assert code == 0
