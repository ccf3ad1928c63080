"""diffpose-bench-startup: time from starting the pose node's process to its first /human_pose_3d.

A camera in this process publishes CameraInfo and a 640x480 photo (basketball1, two people) at
10 Hz before the node starts and all the while; each run starts `python -m
diffpose_ros.ros.node` and measures, from the moment before the process is spawned:
  first_output_s   the first HumanPose3DArray received for an image published after the
                   spawn (the number the README reports)
  listening_s      the node is up and subscribed (its "listening on" log line)
  models_loaded_s  detector, sampler graph and lifter are loaded ("models loaded")
  stop_s           SIGINT after the first output -> process exit
"cold" runs start with an empty cache (the sampler graph is exported first); "warm" runs reuse
the graph the previous cold run exported. Cold and warm alternate, so that a change of the
machine's load affects both alike; the load average is recorded. Writes JSON (--out).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from diffpose_ros.backends.export import atomic_write_bytes
from diffpose_ros.paths import IMAGES_DIR, REPO_DIR
from diffpose_ros.tools.bench_sampler import _cpu_name
from diffpose_ros.tools.demo import ros_environment

LOG_TIME = re.compile(r"\[(\d+\.\d+)\] \[[^\]]+\]: (.*)")


def log_phase(log_text: str, marker: str, t_spawn_wall: float):
    """Seconds from the spawn to the first log line containing ``marker`` (rclpy's stamps)."""
    for line in log_text.splitlines():
        m = LOG_TIME.search(line)
        if m and marker in m.group(2):
            return round(float(m.group(1)) - t_spawn_wall, 3)
    return None


def one_start(kind: str, cache: Path, args, env, client, camera, log_path: Path) -> dict:
    import rclpy

    camera.drain(client)   # late messages of the previous node must not count for this one
    cmd = [sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args",
           "-p", f"backend:={args.backend}", "-p", "qos_reliability:=reliable"]
    if args.weights:
        cmd += ["-p", f"lifter_weights:={args.weights}"]
    load = os.getloadavg()[0]
    with open(log_path, "w") as log:
        t0_wall, t0 = time.time(), time.monotonic()
        proc = subprocess.Popen(cmd, env=dict(env, DIFFPOSE_CACHE=str(cache)), stdout=log,
                                stderr=subprocess.STDOUT)
        first = None
        while first is None:
            camera.tick()
            rclpy.spin_once(client, timeout_sec=0.005)
            mine = [arrival for arrival, sent in camera.outputs if sent is not None and sent >= t0]
            if mine:
                first = mine[0] - t0
            elif proc.poll() is not None or time.monotonic() - t0 > args.timeout:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{kind} start: no output (exit {proc.returncode}); see {log_path}")
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        stop_s = time.monotonic() - t_stop
    text = log_path.read_text()
    return {"cache": kind, "first_output_s": round(first, 3),
            "listening_s": log_phase(text, "listening on", t0_wall),
            "models_loaded_s": log_phase(text, "models loaded", t0_wall),
            "exported": "exporting ONNX sampler" in text, "stop_s": round(stop_s, 3),
            "exit_code": code, "load_avg_1min": round(load, 2)}


class Camera:
    """CameraInfo + one photo at a fixed rate; records the arrival of every pose message."""

    def __init__(self, client, rate_hz: float):
        import cv2
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        from diffpose_ros.msg import HumanPose3DArray
        from diffpose_ros.pipeline import Intrinsics
        from diffpose_ros.ros.images import encode_bgr8
        from diffpose_ros.ros.sample_camera import camera_info

        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        image = cv2.resize(cv2.imread(str(IMAGES_DIR / "basketball1.png")), (640, 480))
        data, w, h, step = encode_bgr8(image)
        self.header = Header(frame_id="camera_optical_frame")
        self.image = Image(header=self.header, height=h, width=w, encoding="bgr8", step=step, data=data)
        self.info = camera_info(Intrinsics.from_fov(w, h, 60.0), self.header)
        self.pub = client.create_publisher(Image, "/image", rel)  # the node's default (relative) topics
        self.pub_info = client.create_publisher(CameraInfo, "/camera_info", 10)
        self.outputs = []   # (arrival, when its image was published) per pose message
        self.sent = {}      # image stamp -> monotonic time it was published
        client.create_subscription(HumanPose3DArray, "/human_pose_3d", self._on_pose, rel)
        self.clock, self.period, self.next = client.get_clock(), 1.0 / rate_hz, time.monotonic()

    def _on_pose(self, msg):
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.outputs.append((time.monotonic(), self.sent.get(stamp)))

    def tick(self):
        if time.monotonic() >= self.next:
            self.next = time.monotonic() + self.period
            stamp = self.clock.now().to_msg()
            self.info.header.stamp = self.image.header.stamp = stamp
            self.pub_info.publish(self.info)
            self.pub.publish(self.image)
            self.sent[(stamp.sec, stamp.nanosec)] = time.monotonic()

    def drain(self, client, seconds: float = 0.5):
        import rclpy

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.tick()
            rclpy.spin_once(client, timeout_sec=0.01)
        self.outputs.clear()


def summarise(rows, kind):
    vals = [r["first_output_s"] for r in rows if r["cache"] == kind]
    return {"runs": len(vals), "median_s": round(float(np.median(vals)), 2),
            "min_s": round(min(vals), 2), "max_s": round(max(vals), 2)} if vals else {"runs": 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="cold and warm starts each (default 3)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--weights", default="", help="lifter_weights ('' = the bundled frame model)")
    ap.add_argument("--rate", type=float, default=10.0, help="camera rate (Hz)")
    ap.add_argument("--timeout", type=float, default=300.0, help="give up on a start after (s)")
    ap.add_argument("--out", type=Path, default=REPO_DIR / "docs" / "bench_startup_cpu.json")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    env = ros_environment()
    import rclpy
    from tqdm import tqdm

    rclpy.init()
    rows = []
    load_start = os.getloadavg()
    try:
        client = rclpy.create_node("bench_startup_camera")
        camera = Camera(client, args.rate)
        with tempfile.TemporaryDirectory(prefix="diffpose-startup-") as tmp:
            tmp = Path(tmp)
            bar = tqdm(total=2 * args.runs, desc="starts", unit="start")
            for i in range(args.runs):
                cache = tmp / f"cache{i}"   # empty: the cold start exports; the warm one reuses
                for kind in ("cold", "warm"):
                    row = one_start(kind, cache, args, env, client, camera, tmp / f"{kind}{i}.log")
                    if row["exported"] != (kind == "cold"):
                        raise RuntimeError(f"{kind} start {i}: exported={row['exported']}")
                    rows.append(row)
                    bar.set_postfix_str(f"{kind} {row['first_output_s']:.1f} s")
                    bar.update(1)
            bar.close()
        client.destroy_node()
    finally:
        rclpy.shutdown()
    result = {"tool": "diffpose-bench-startup", "backend": args.backend,
              "what": "process spawn -> first /human_pose_3d received (camera at "
                      f"{args.rate:g} Hz publishing before the node starts)",
              "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                          "load_avg_1min_start_end": [round(load_start[0], 2),
                                                      round(os.getloadavg()[0], 2)]},
              "cold": summarise(rows, "cold"), "warm": summarise(rows, "warm"), "runs": rows}
    print(f"{'cache':<6}{'first output s':>15}{'listening s':>13}{'models s':>10}{'stop s':>8}{'load':>6}")
    for r in rows:
        print(f"{r['cache']:<6}{r['first_output_s']:>15.2f}{r['listening_s'] or float('nan'):>13.2f}"
              f"{r['models_loaded_s'] or float('nan'):>10.2f}{r['stop_s']:>8.2f}{r['load_avg_1min']:>6.1f}")
    print(f"cold: median {result['cold']['median_s']} s, warm: median {result['warm']['median_s']} s "
          f"(load average {result['machine']['load_avg_1min_start_end']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {args.out}")
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
