"""End to end as launched: sample camera process -> pose node process -> an independent
subscriber (this process) that checks every field of what it receives, on consecutive
basketball frames (ids must stay stable) and then on messi5."""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).parent))
from test_ros_node import check_people  # noqa: E402

from diffpose_ros.paths import IMAGES_DIR, REPO_DIR, WEIGHTS_DIR  # noqa: E402
from diffpose_ros.tools.demo import start_camera, start_node, stop_processes  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.skipif(
    not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported (run setup)")]


def test_sample_camera_to_node_to_subscriber(ros_env, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from diffpose_ros.msg import HumanPose3DArray
    from diffpose_ros.ros.images import decode_raw

    procs = {"pose_node": start_node(ros_env, "onnxruntime", REPO_DIR / "config" / "pose.yaml",
                                     tmp_path / "pose_node.log")}
    rclpy.init()
    poses, images, camera_of = [], {}, {}
    run = [0]                                   # which camera run is publishing
    try:
        node = rclpy.create_node("e2e_subscriber")
        rel = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(HumanPose3DArray, "/human_pose_3d", poses.append, rel)

        def on_image(m):
            key = (m.header.stamp.sec, m.header.stamp.nanosec)
            images[key], camera_of[key] = m, run[0]
        node.create_subscription(Image, "/image", on_image, rel)

        def seen(msgs):   # pose messages of this run's camera whose image this subscriber also
            # received (the first images of a new camera can go out before discovery reaches this
            # process; the node may still publish the previous camera's last frame after it stopped)
            return [m for m in msgs if camera_of.get((m.header.stamp.sec, m.header.stamp.nanosec)) == run[0]]

        def run_camera(source, n):
            run[0] += 1
            camera = start_camera(ros_env, source, 4.0, tmp_path / "sample_camera.log")
            start = len(poses)
            deadline = time.monotonic() + 180
            while len(seen(poses[start:])) < n and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
                assert procs["pose_node"].poll() is None, (tmp_path / "pose_node.log").read_text()[-3000:]
            assert stop_processes({"camera": camera}) == {"camera": 0}
            return seen(poses[start:])

        basketball = run_camera(f"{IMAGES_DIR / 'basketball1.png'},{IMAGES_DIR / 'basketball2.png'}", 6)
        messi = run_camera(str(IMAGES_DIR / "messi5.jpg"), 3)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        codes = stop_processes(procs)
    assert codes == {"pose_node": 0}
    assert len(basketball) >= 6 and len(messi) >= 3
    for msg in basketball + messi:                  # stamps equal the image stamps
        img = images[(msg.header.stamp.sec, msg.header.stamp.nanosec)]
        check_people(msg, decode_raw(img.data, img.width, img.height, img.step, img.encoding))
    assert {(images[(m.header.stamp.sec, m.header.stamp.nanosec)].width) for m in messi} == {548}
    ids = [max(m.people, key=lambda p: np.ptp(np.reshape(p.keypoints_2d, (17, 2))[:, 1])).track_id
           for m in basketball]
    assert len(set(ids)) == 1, f"the full-body player keeps one id over the frames: {ids}"
