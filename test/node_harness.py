"""Runs the real pose node in its own process and talks to it over DDS from the test process."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from diffpose_ros.camera import Intrinsics
from diffpose_ros.msg import HumanPose3DArray
from diffpose_ros.paths import IMAGES_DIR
from diffpose_ros.ros.images import encode_bgr8
from diffpose_ros.ros.sample_camera import camera_info

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def load_image(name: str) -> np.ndarray:
    img = cv2.imread(str(IMAGES_DIR / name), cv2.IMREAD_COLOR)
    assert img is not None, name
    return img


def image_msg(image: np.ndarray, sec: int, nanosec: int = 0, frame_id="camera_optical_frame") -> Image:
    data, w, h, step = encode_bgr8(image)
    return Image(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id),
                 height=h, width=w, encoding="bgr8", step=step, data=data)


class NodeHarness:
    def __init__(self, env, log_path: Path, params=(), compressed=False, name="diffpose_pose_node"):
        cmd = [sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args",
               "-p", "backend:=onnxruntime", "-p", "qos_reliability:=reliable", "-p", "qos_depth:=5",
               "-p", "camera_info_timeout_s:=0.5", "-p", "diagnostics_period_s:=0.2"]
        if compressed:
            cmd += ["-p", "use_compressed:=true"]
        cmd += ["-r", f"__node:={name}"]
        self.name = name
        for p in params:
            cmd += ["-p", p]
        self.log_path = log_path
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        self.node = rclpy.create_node(f"test_client_{name}")
        self.poses: list[HumanPose3DArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(HumanPose3DArray, "/human_pose_3d", self.poses.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        # the node's default input names are the relative image and camera_info
        self.pub_image = self.node.create_publisher(Image, "/image", RELIABLE)
        self.pub_compressed = self.node.create_publisher(CompressedImage, "/image/compressed", RELIABLE)
        self.pub_info = self.node.create_publisher(CameraInfo, "/camera_info", 10)
        self._param_client = None          # set_params() makes it on first use
        image_topic = "/image/compressed" if compressed else "/image"
        try:
            self.spin_until(lambda: self._subscribed(image_topic) and self._subscribed("/camera_info")
                            and self.loaded(), timeout=240, what=f"node {name} to subscribe and load its models")
        except AssertionError:         # no test will close a harness that never came up: no stray node
            self.proc.kill()
            self.proc.wait()
            self.node.destroy_node()
            raise
        time.sleep(0.2)   # let our publishers match the subscriptions the graph just showed

    def _subscribed(self, topic: str) -> bool:
        """This harness's node (by name, not any other node of the test module) subscribes to topic."""
        return any(info.node_name == self.name for info in self.node.get_subscriptions_info_by_topic(topic))

    def _on_diagnostics(self, msg):
        if msg.status and msg.status[0].name == f"diffpose_ros: /{self.name}":   # ours, not another node's
            self.diagnostics.append(msg)

    def latest_values(self) -> dict:
        """The key/values of the newest diagnostics received so far ({} before the first)."""
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values} if self.diagnostics else {}

    def loaded(self) -> bool:
        """The node's diagnostics say its models are loaded (they load after it starts spinning)."""
        return self.latest_values().get("sampler_graph", "loading") != "loading"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spin_until(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.alive():
                raise AssertionError(f"node died waiting for {what}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def spin_for(self, seconds: float):
        """Take what arrives during `seconds` (the node's messages, discovery)."""
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def set_params(self, **values):
        """Set the node's parameters in one call (ros2 param set); its SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        if self._param_client is None:
            self._param_client = self.node.create_client(SetParameters, f"/{self.name}/set_parameters")
            assert self._param_client.wait_for_service(timeout_sec=10)
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        fut = self._param_client.call_async(req)
        self.spin_until(fut.done, 10, f"set {values}")
        return fut.result().results[0]

    def send_info(self, width=640, height=480, hfov=60.0, K=None):
        intr = Intrinsics.from_fov(width, height, hfov)
        info = camera_info(intr, Header(frame_id="camera_optical_frame"))
        if K is not None:
            info.k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(-1)]
        self.pub_info.publish(info)
        # CameraInfo and Image are separate topics with no ordering between them: give the node
        # time to take the info before the test's next image
        self.spin_for(0.2)

    def send(self, msg):
        (self.pub_compressed if isinstance(msg, CompressedImage) else self.pub_image).publish(msg)
        rclpy.spin_once(self.node, timeout_sec=0.01)

    def pose_for(self, sec: int, nanosec: int = 0, timeout: float = 60.0) -> HumanPose3DArray:
        match = lambda: [m for m in self.poses if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)]  # noqa: E731
        self.spin_until(lambda: bool(match()), timeout, f"the pose message of stamp {sec}.{nanosec}")
        return match()[0]

    def counters(self) -> dict:
        """The latest diagnostics key/values of the node."""
        n = len(self.diagnostics)
        self.spin_until(lambda: len(self.diagnostics) > n, 10, "diagnostics")
        return self.latest_values()

    def close(self, timeout=5.0) -> int:
        import signal
        self.node.destroy_node()
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("node did not stop within the timeout after SIGINT")
