"""diffpose-bench-node: end-to-end latency and throughput of the pose node at 640x480.

The node runs in its own process (as under ros2 launch); this process is the camera and the
subscriber. Two scenes built from the shared photos: 1 person (messi5 on a 640x480 canvas,
max_people=1) and 3 people (basketball1 + messi5 side by side, max_people=3). Per scene:
  latency     one frame at a time: image stamp -> pose message received, p50/p95
  throughput  camera at --rate Hz for --seconds: output frames/s, latency p50/p95, stale drops
and the node's own stage medians from its diagnostics (detector, sampler, everything else).
The node builds its RViz markers only while someone subscribes to them: --markers subscribes
(as RViz would) so that their cost is in the numbers; `--markers raw` takes them as serialized
bytes (rclpy's raw subscription), without the Python deserialisation of 60-odd Marker objects a
frame that this process would otherwise add on the same cores (RViz deserialises in C++). --video N replaces the two scenes by the
first N frames of vtest.avi in order (768x576 pedestrians, max_people 10), looped: moving people,
for the detector's follow mode (--param detector_follow_every:=5).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from diffpose_ros.paths import REPO_DIR
from diffpose_ros.tools.bench_detector import scene, video_frames
from diffpose_ros.tools.demo import ros_environment


STAGES = ("detect", "sampler", "overhead", "visual")   # the node's stage medians in /diagnostics


def percentiles(values_s):
    v = np.asarray(values_s) * 1e3
    return {"p50_ms": round(float(np.percentile(v, 50)), 1), "p95_ms": round(float(np.percentile(v, 95)), 1),
            "n": int(v.size)} if v.size else {"n": 0}


def run_scene(people: int, args, env, frames: list | None = None) -> dict:
    """One scene: `people` (max_people) on the still scene of that many people, or on `frames`.
    The node runs in its own process, stopped when the scene ends or fails."""
    log = open(args.out / f"node_{people}.log", "w")
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args", "-p", f"backend:={args.backend}",
         "-p", "qos_reliability:=reliable", "-p", f"max_people:={people}", "-p", "diagnostics_period_s:=0.5",
         *[x for p in args.param for x in ("-p", p)]],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        return _measure(node_proc, people, args, frames)
    finally:   # also when the measurement fails: no node left running
        node_proc.send_signal(2)
        try:
            node_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node_proc.kill()
            node_proc.wait()
        log.close()


def _measure(node_proc, people: int, args, frames: list | None) -> dict:
    """Camera and subscriber of run_scene, against the node process already started."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from diffpose_ros.msg import HumanPose3DArray
    from diffpose_ros.pipeline import Intrinsics
    from diffpose_ros.ros.images import encode_bgr8
    from diffpose_ros.ros.sample_camera import camera_info

    client = rclpy.create_node(f"bench_client_{people}")
    rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    arrivals, diag = {}, {}

    def on_pose(msg):
        arrivals[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (client.get_clock().now().nanoseconds, len(msg.people))

    def on_diag(msg):
        for st in msg.status:
            if st.name.startswith("diffpose_ros"):
                diag.update({kv.key: kv.value for kv in st.values})

    client.create_subscription(HumanPose3DArray, "/human_pose_3d", on_pose, rel)
    client.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    marker_counts = []
    if args.markers:
        from visualization_msgs.msg import MarkerArray
        client.create_subscription(MarkerArray, "/human_pose_3d/markers",
                                   # raw: the serialized size in bytes; else the number of markers
                                   lambda m: marker_counts.append(len(m) if args.markers == "raw" else len(m.markers)),
                                   10, raw=args.markers == "raw")
    pub = client.create_publisher(Image, "/image", rel)               # the node's default input names
    pub_info = client.create_publisher(CameraInfo, "/camera_info", 10)
    images = [encode_bgr8(f) for f in (frames or [scene(people)])]
    _, w, h, step = images[0]
    info = camera_info(Intrinsics.from_fov(w, h, 60.0), Header(frame_id="camera_optical_frame"))
    sent_count = [0]

    def send():
        stamp = client.get_clock().now()
        header = Header(stamp=stamp.to_msg(), frame_id="camera_optical_frame")
        info.header = header
        pub_info.publish(info)
        data = images[sent_count[0] % len(images)][0]
        sent_count[0] += 1
        pub.publish(Image(header=header, height=h, width=w, encoding="bgr8", step=step, data=data))
        return (header.stamp.sec, header.stamp.nanosec), stamp.nanoseconds

    deadline = time.monotonic() + 120
    while pub.get_subscription_count() == 0 or not diag:
        rclpy.spin_once(client, timeout_sec=0.1)
        if node_proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"node did not come up; see {args.out / f'node_{people}.log'}")
    for _ in range(5):                           # camera info + warm-up
        key, _ = send()
        t = time.monotonic()
        while key not in arrivals and time.monotonic() - t < 30:
            rclpy.spin_once(client, timeout_sec=0.01)

    lat, counts = [], []
    for _ in range(args.frames):                 # one frame at a time
        key, sent_ns = send()
        t = time.monotonic()
        while key not in arrivals and time.monotonic() - t < 10:
            rclpy.spin_once(client, timeout_sec=0.002)
        if key in arrivals:
            lat.append((arrivals[key][0] - sent_ns) * 1e-9)
            counts.append(arrivals[key][1])
    stages = {k: diag.get(f"{k}_p50_ms") for k in STAGES}

    sent = {}                                    # a camera at --rate Hz
    t0 = time.monotonic()
    next_t = t0
    while time.monotonic() - t0 < args.seconds:
        if time.monotonic() >= next_t:
            key, ns = send()
            sent[key] = ns
            next_t += 1.0 / args.rate
        rclpy.spin_once(client, timeout_sec=0.001)
    t_end = time.monotonic() + 2.0
    while time.monotonic() < t_end:
        rclpy.spin_once(client, timeout_sec=0.01)
    stages_at_rate = {k: diag.get(f"{k}_p50_ms") for k in STAGES}
    got = [((arrivals[k][0] - ns) * 1e-9) for k, ns in sent.items() if k in arrivals]
    out_stamps = sorted(arrivals[k][0] for k in sent if k in arrivals)
    fps = (len(out_stamps) - 1) / ((out_stamps[-1] - out_stamps[0]) * 1e-9) if len(out_stamps) > 1 else 0.0
    client.destroy_node()
    return {"scene": f"vtest.avi frames 0..{len(frames) - 1}" if frames else f"{people} people",
            "people_requested": people, "people_published_median": float(np.median(counts)) if counts else 0,
            "people_published_mean": round(float(np.mean(counts)), 2) if counts else 0,
            "marker_arrays_received": len(marker_counts) if args.markers else None,
            ("marker_array_bytes_median" if args.markers == "raw" else "markers_per_array_median"):
                float(np.median(marker_counts)) if marker_counts else None,
            "latency_one_at_a_time": percentiles(lat), "node_stage_p50_ms": stages,
            "node_stage_p50_ms_at_rate": stages_at_rate,
            "throughput": {"camera_hz": args.rate, "seconds": args.seconds, "frames_sent": len(sent),
                           "frames_out": len(got), "output_fps": round(fps, 2), "latency": percentiles(got)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", default="1,3")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--frames", type=int, default=50, help="frames in the one-at-a-time latency run")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="more node parameters, e.g. detector_input_size:=480 (repeatable)")
    ap.add_argument("--video", type=int, default=0, metavar="N",
                    help="the first N frames of vtest.avi as the camera (instead of the still scenes)")
    ap.add_argument("--markers", nargs="?", const="python", choices=("python", "raw"), default=None,
                    help="also subscribe to the RViz markers (the node builds them only for a subscriber): "
                         "deserialised in Python (the default) or raw, as serialized bytes")
    ap.add_argument("--out", type=Path, default=REPO_DIR / "out" / "bench_node")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = ros_environment()
    import rclpy
    rclpy.init()
    try:
        results = {"cpu": os.cpu_count(), "backend": args.backend, "node_parameters": args.param,
                   "markers_subscribed": args.markers,
                   "load_avg_1min_start": round(os.getloadavg()[0], 2),
                   "scenes": ([run_scene(10, args, env, video_frames(range(args.video)))] if args.video else
                              [run_scene(int(p), args, env) for p in args.people.split(",")])}
    finally:
        rclpy.shutdown()
    results["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    (args.out / "bench_node.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
