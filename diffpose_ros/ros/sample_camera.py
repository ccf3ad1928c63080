"""A camera for machines with none: publishes images (a folder, files or a video) in a loop as
sensor_msgs/Image + CameraInfo with one stamp, at a set rate.

Default source: the sample photos (basketball1, basketball2, messi5) from the shared data next to
the checkout or, in a colcon install, from share/diffpose_ros/sample_images (paths.py). The
intrinsics are a pinhole guess from `hfov_deg` (the photos came without calibration).
Publishes on the relative names image and camera_info (where the pose node listens by default);
image_topic / camera_info_topic, e.g. from the pose node's params file, name other topics.
"""
from __future__ import annotations

import signal
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from diffpose_ros.camera import Intrinsics
from diffpose_ros.paths import default_sample_images
from diffpose_ros.ros.images import encode_bgr8

DEFAULT_FRAME_ID = "camera_optical_frame"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


class FrameSource:
    """Iterates BGR frames from image files or a video, looping; ROS-free."""

    def __init__(self, source: str = "", loop: bool = True):
        self.loop = loop
        if not source:
            self.files = default_sample_images()
        else:
            parts = [Path(p) for p in source.split(",") if p]
            self.files = []
            for p in parts:
                self.files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
        missing = [str(f) for f in self.files if not f.exists()]
        if missing:
            raise FileNotFoundError(f"sample camera source not found: {', '.join(missing)}")
        self.video = len(self.files) == 1 and self.files[0].suffix.lower() not in IMAGE_SUFFIXES
        self._cap = None
        self._index = 0
        if not self.video:
            self._images = []
            for f in self.files:
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f"cannot read image {f}")
                self._images.append(img)

    def next(self) -> np.ndarray | None:
        if not self.video:
            if self._index >= len(self._images) and not self.loop:
                return None
            img = self._images[self._index % len(self._images)]
            self._index += 1
            return img
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.files[0]))
            if not self._cap.isOpened():
                raise ValueError(f"cannot open video {self.files[0]}")
        ok, frame = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        return frame if ok else None


def camera_info(intr: Intrinsics, header) -> CameraInfo:
    """CameraInfo of an unbinned full-image camera with these intrinsics (no rectification)."""
    info = CameraInfo(header=header, width=intr.width, height=intr.height, distortion_model=intr.distortion_model)
    info.k = intr.K.reshape(-1).tolist()
    info.d = intr.D.tolist() if intr.D.size else [0.0] * 5
    info.r = np.eye(3).reshape(-1).tolist()
    P = np.zeros((3, 4)); P[:, :3] = intr.K
    info.p = P.reshape(-1).tolist()
    return info


class SampleCamera(Node):
    def __init__(self, **kwargs):
        super().__init__("sample_camera", **kwargs)
        self.declare_parameter("source", "")
        self.declare_parameter("rate_hz", 10.0)
        self.declare_parameter("loop", True)
        self.declare_parameter("max_frames", 0)        # 0 = no limit
        self.declare_parameter("hfov_deg", 60.0)
        self.declare_parameter("frame_id", DEFAULT_FRAME_ID)   # '' (the pose node's "keep it") = default
        self.declare_parameter("image_topic", "image")
        self.declare_parameter("camera_info_topic", "camera_info")
        self.declare_parameter("reliable", False)
        g = lambda n: self.get_parameter(n).value  # noqa: E731
        self.source = FrameSource(g("source"), loop=g("loop"))
        self.max_frames, self.hfov, self.frame_id = g("max_frames"), g("hfov_deg"), g("frame_id") or DEFAULT_FRAME_ID
        qos = 10 if g("reliable") else qos_profile_sensor_data
        self.pub_image = self.create_publisher(Image, g("image_topic"), qos)
        self.pub_info = self.create_publisher(CameraInfo, g("camera_info_topic"), qos)
        self.sent = 0
        self.timer = self.create_timer(1.0 / g("rate_hz"), self.tick)
        self.get_logger().info(f"publishing {len(self.source.files)} source file(s) at {g('rate_hz')} Hz on "
                               f"{self.pub_image.topic_name} + {self.pub_info.topic_name}")

    def tick(self):
        if self.max_frames and self.sent >= self.max_frames:
            self.timer.cancel()
            return
        frame = self.source.next()
        if frame is None:
            self.timer.cancel()
            return
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        header.frame_id = self.frame_id
        data, w, h, step = encode_bgr8(frame)
        try:
            self.pub_info.publish(camera_info(Intrinsics.from_fov(w, h, self.hfov), header))
            self.pub_image.publish(Image(header=header, height=h, width=w, encoding="bgr8", step=step, data=data))
        except Exception:
            # rclpy's SIGINT handler shuts the context down from its own thread: a tick that was
            # already running then fails to publish ("publisher's context is invalid"). That is
            # the stop, not an error (ros2 launch would report exit 1 for a Ctrl-C).
            if self.context.ok():
                raise
            return
        self.sent += 1


def main(args=None):
    node = None
    code = 0
    try:
        rclpy.init(args=args)
        try:
            node = SampleCamera()
        except (OSError, ValueError) as err:   # no source files, unreadable image: say so, exit 2
            rclpy.logging.get_logger("sample_camera").fatal(f"cannot start: {err}")
            code = 2
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C from launch must not break cleanup
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
