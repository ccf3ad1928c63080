"""Messages: one array message with two people crosses from one process to another, intact."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diffpose_ros.msg import HumanPose3D, HumanPose3DArray  # noqa: E402
from diffpose_ros.people import InvalidPoseError, repair_covariance  # noqa: E402
from diffpose_ros.skeleton import H36M_JOINTS  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from ros_peer import two_people  # noqa: E402


def test_message_round_trip_in_process():
    from std_msgs.msg import Header
    from diffpose_ros.ros.messages import msg_to_person, people_to_msg
    people = two_people()
    msg = people_to_msg(people, Header(frame_id="cam"), latency_s=1.5)
    assert msg.processing_latency.sec == 1 and msg.processing_latency.nanosec == 500_000_000
    back = msg_to_person(msg.people[1])
    np.testing.assert_allclose(back.positions, people[1].positions)
    np.testing.assert_allclose(back.covariance, people[1].covariance, atol=1e-7)


def test_filtered_state_round_trip_and_guard():
    from std_msgs.msg import Header
    from diffpose_ros.people import FilteredState
    from diffpose_ros.ros.messages import msg_to_person, person_to_msg
    person = two_people()[0]
    msg = person_to_msg(person, Header())
    assert not msg.has_state and msg_to_person(msg).filtered is None
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 6))
    person.filtered = FilteredState(
        root=np.array([0.3, -0.1, 3.2]), velocity=np.array([0.9, 0.05, -0.4]), covariance=a @ a.T * 0.01 + 1e-3 * np.eye(6),
        positions=person.positions + 0.01, joint_covariance=person.covariance, time_since_measurement=0.25,
        is_prediction=True, ahead_s=1.0, ahead_root=np.array([1.2, -0.05, 2.8]), ahead_covariance=np.eye(3) * 0.2)
    msg = person_to_msg(person, Header())
    assert msg.has_state and msg.is_prediction and msg.time_since_measurement == 0.25
    assert len(msg.state_covariance) == 36 and len(msg.filtered_covariance) == 17 * 9
    back = msg_to_person(msg).filtered
    for name in ("root", "velocity", "covariance", "positions", "joint_covariance", "ahead_root", "ahead_covariance"):
        np.testing.assert_allclose(getattr(back, name), getattr(person.filtered, name), atol=1e-9, err_msg=name)
    assert back.is_prediction and back.ahead_s == 1.0
    # the guards cover the filter state too
    person.filtered.velocity = np.array([np.nan, 0.0, 0.0])
    with pytest.raises(InvalidPoseError, match="filtered.velocity"):
        person_to_msg(person, Header())
    person.filtered.velocity = np.zeros(3)
    person.filtered.covariance = -np.eye(6)
    with pytest.raises(InvalidPoseError, match="positive semi-definite"):
        person_to_msg(person, Header())


def test_covariance_guard():
    good = np.diag([1e-2, 2e-2, 3e-2])
    tiny_neg = good.copy(); tiny_neg[2, 2] = -1e-12
    out = repair_covariance(tiny_neg)
    assert np.linalg.eigvalsh(out).min() > 0 and np.allclose(out, out.T)
    with pytest.raises(InvalidPoseError, match="positive semi-definite"):
        repair_covariance(np.diag([1e-2, 1e-2, -1e-2]))
    with pytest.raises(InvalidPoseError, match="non-finite"):
        repair_covariance(np.full((3, 3), np.nan))


@pytest.mark.ros
def test_two_people_cross_processes(ros_env):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    received = []
    rclpy.init()
    try:
        node = rclpy.create_node("two_people_listener")
        node.create_subscription(HumanPose3DArray, "/human_pose_3d", received.append,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        peer = subprocess.Popen([sys.executable, str(Path(__file__).parent / "ros_peer.py"),
                                 "publish-two-people"], env=ros_env)
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert peer.wait(timeout=30) == 0
        node.destroy_node()
    finally:
        rclpy.shutdown()
    assert received, "no message crossed from the publisher process"
    msg = received[0]
    expected = two_people()
    assert msg.header.frame_id == "camera_optical_frame"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1234, 5678)
    assert msg.processing_latency.sec == 0 and msg.processing_latency.nanosec == 42_100_000
    assert len(msg.people) == 2
    for got, want in zip(msg.people, expected):
        assert isinstance(got, HumanPose3D)
        assert got.header.frame_id == "camera_optical_frame"
        assert got.track_id == want.track_id
        assert got.score == pytest.approx(want.score, rel=1e-6)
        assert got.reliable == want.reliable
        assert list(got.joint_names) == list(H36M_JOINTS)
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in got.positions], want.positions)
        np.testing.assert_allclose(np.reshape(got.covariance, (17, 3, 3)), want.covariance, atol=1e-12)
        np.testing.assert_allclose([got.root.x, got.root.y, got.root.z], want.root)
        np.testing.assert_allclose(np.reshape(got.root_covariance, (3, 3)), want.root_covariance)
        np.testing.assert_allclose(np.reshape(got.keypoints_2d, (17, 2)), want.keypoints_2d)
        np.testing.assert_allclose(got.keypoint_confidence, want.keypoint_conf)
        assert (got.num_hypotheses, got.diffusion_steps) == (5, 5)
        assert got.size_from_floor == want.size_from_floor
