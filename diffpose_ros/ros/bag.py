"""Record topics to an MCAP rosbag2 (rosbags) and read them back, with our message types."""
from __future__ import annotations

import threading
from pathlib import Path

from diffpose_ros.paths import REPO_DIR

MSG_TYPES = ("HumanPose3D", "HumanPose3DArray")


def _msg_dir() -> Path:
    if (REPO_DIR / "msg").is_dir():
        return REPO_DIR / "msg"
    from ament_index_python.packages import get_package_share_directory   # a colcon install
    return Path(get_package_share_directory("diffpose_ros")) / "msg"


def typestore():
    """ROS 2 Kilted message definitions plus diffpose_ros/msg/*."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in MSG_TYPES:
        types.update(get_types_from_msg((_msg_dir() / f"{name}.msg").read_text(), f"diffpose_ros/msg/{name}"))
    store.register(types)
    return store


class BagRecorder:
    """Subscribes to topics with raw (serialized) callbacks and writes the CDR bytes as they come."""

    def __init__(self, node, path: Path, topics: dict[str, type], qos_for=None):
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.store = typestore()
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.lock = threading.Lock()
        self.counts = {t: 0 for t in topics}
        self.connections = {}
        for topic, msg_type in topics.items():
            type_name = msg_type.__module__.split(".")[0] + "/msg/" + msg_type.__name__
            self.connections[topic] = self.writer.add_connection(topic, type_name, typestore=self.store)
            qos = qos_for(topic) if qos_for else 10
            node.create_subscription(msg_type, topic, self._writer_for(topic, node), qos, raw=True)

    def _writer_for(self, topic, node):
        def write(data: bytes):
            with self.lock:
                if self.writer is not None:
                    self.writer.write(self.connections[topic], node.get_clock().now().nanoseconds, data)
                    self.counts[topic] += 1
        return write

    def close(self):
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None


def read_bag(path: Path):
    """Yield (topic, timestamp_ns, message) from a bag, deserialized with our typestore."""
    from rosbags.rosbag2 import Reader
    store = typestore()
    with Reader(path) as reader:
        for conn, ts, raw in reader.messages():
            yield conn.topic, ts, store.deserialize_cdr(raw, conn.msgtype)
