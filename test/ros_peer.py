"""A second ROS process for the tests: `python test/ros_peer.py publish-two-people`.

Publishes one HumanPose3DArray with two people (values from two_people()) reliably, once a
subscriber is matched, then exits.
"""
import sys
import time

import numpy as np


def two_people():
    from diffpose_ros.people import Person3D
    rng = np.random.default_rng(7)
    people = []
    for track_id in (3, 11):
        a = rng.normal(size=(17, 3, 3)) * 0.05
        people.append(Person3D(
            track_id=track_id, score=0.5 + 0.1 * track_id / 11,
            positions=rng.normal(size=(17, 3)) * 0.3 + [0, 0, 3.0],
            covariance=a @ np.swapaxes(a, -1, -2) + 1e-4 * np.eye(3),
            root=np.array([0.1 * track_id, -0.2, 3.0]),
            root_covariance=np.diag([0.01, 0.02, 0.09]),
            keypoints_2d=rng.uniform(0, 640, size=(17, 2)).astype(np.float32),
            keypoint_conf=rng.uniform(0, 1, size=17).astype(np.float32),
            num_hypotheses=5, diffusion_steps=5, reliable=track_id == 3, size_from_floor=track_id == 11))
    return people


def publish_two_people(timeout=30.0):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header
    from builtin_interfaces.msg import Time

    from diffpose_ros.msg import HumanPose3DArray
    from diffpose_ros.ros.messages import people_to_msg

    rclpy.init()
    node = rclpy.create_node("two_people_publisher")
    pub = node.create_publisher(HumanPose3DArray, "/human_pose_3d", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    header = Header(stamp=Time(sec=1234, nanosec=5678), frame_id="camera_optical_frame")
    msg = people_to_msg(two_people(), header, latency_s=0.0421)
    deadline = time.monotonic() + timeout
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    for _ in range(5):
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if time.monotonic() < deadline else 1


if __name__ == "__main__":
    sys.exit({"publish-two-people": publish_two_people}[sys.argv[1]]())
