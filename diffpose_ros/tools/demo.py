"""diffpose-demo: the main job on the bundled input, without `ros2 launch`.

Starts the sample camera and the pose node as two processes (as the launch file does), records
the camera and pose topics to an MCAP rosbag2 that RViz/Foxglove can open, then renders a few
frames from that bag (2D overlay | 3D skeletons with 90 % ellipsoids | top view) to PNG.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from diffpose_ros.paths import REPO_DIR


def fastdds_profiles_variable() -> str:
    """The environment variable this install's Fast DDS reads its XML profiles from: Fast DDS 3
    (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE (and warns that FASTRTPS_... is deprecated);
    Fast DDS 2 (Humble, Jazzy) knows only FASTRTPS_DEFAULT_PROFILES_FILE."""
    import importlib.metadata
    try:
        importlib.metadata.version("ros-fastrtps")          # the Fast DDS 2 wheel (Jazzy)
        return "FASTRTPS_DEFAULT_PROFILES_FILE"
    except importlib.metadata.PackageNotFoundError:
        pass
    if os.environ.get("ROS_DISTRO") in ("humble", "jazzy"):  # a system install
        return "FASTRTPS_DEFAULT_PROFILES_FILE"
    return "FASTDDS_DEFAULT_PROFILES_FILE"


def ros_environment() -> dict:
    """Localhost-only DDS with the large shared-memory profile, a domain of our own (kept if
    ROS_DOMAIN_ID is set). Applied to this process too, before it initialises rclpy; the
    returned copy is for child processes."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"   # Kilted ignores ROS_LOCALHOST_ONLY
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    os.environ.setdefault(fastdds_profiles_variable(), str(REPO_DIR / "config" / "fastdds.xml"))
    return dict(os.environ, PYTHONUNBUFFERED="1")


def _spawn(cmd, env, log_path: Path):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_camera(env, source: str, rate: float, log_path: Path, reliable: bool = True):
    """The sample camera node in its own process."""
    cmd = [sys.executable, "-m", "diffpose_ros.ros.sample_camera", "--ros-args",
           "-p", f"rate_hz:={rate}", "-p", f"reliable:={str(reliable).lower()}"]
    if source:
        cmd += ["-p", f"source:={source}"]
    return _spawn(cmd, env, log_path)


def start_node(env, backend: str, params_file: Path, log_path: Path, reliable: bool = True, extra_params=()):
    """The pose node in its own process."""
    cmd = [sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args", "--params-file", str(params_file),
           "-p", f"backend:={backend}", "-p", f"qos_reliability:={'reliable' if reliable else 'best_effort'}"]
    for p in extra_params:
        cmd += ["-p", p]
    return _spawn(cmd, env, log_path)


def start_processes(env, source: str, rate: float, backend: str, params_file: Path, log_dir: Path,
                    reliable: bool = True, extra_node_params=()):
    """The sample camera and the node, like launch/pose.launch.py with sample_camera:=true."""
    return {"pose_node": start_node(env, backend, params_file, log_dir / "pose_node.log", reliable, extra_node_params),
            "sample_camera": start_camera(env, source, rate, log_dir / "sample_camera.log", reliable)}


def stop_processes(procs, timeout=5.0) -> dict:
    codes = {}
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = proc.wait()
    return codes


def render_from_bag(bag: Path, out_dir: Path, max_frames: int) -> list[Path]:
    """Render frames whose image and pose message share a stamp; one per distinct image."""
    from diffpose_ros.render import render_frame
    from diffpose_ros.ros.bag import read_bag
    from diffpose_ros.ros.images import decode_raw
    from diffpose_ros.ros.messages import msg_to_person
    images, poses = {}, []
    for topic, _, msg in read_bag(bag):
        if topic == "/image":
            images[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        elif topic == "/human_pose_3d":
            poses.append(((msg.header.stamp.sec, msg.header.stamp.nanosec), msg))
    written, seen_sizes = [], set()
    for key, msg in poses:
        if key not in images or len(written) >= max_frames:
            continue
        img = images[key]
        signature = hash(bytes(img.data[::4099]))          # a sparse sample of the pixels
        if signature in seen_sizes:          # one frame per distinct image
            continue
        seen_sizes.add(signature)
        image = decode_raw(img.data, img.width, img.height, img.step, img.encoding)
        people = [msg_to_person(p) for p in msg.people]
        for p in people:                    # boxes are not in the message: use the keypoints' extent
            p.box = np.r_[p.keypoints_2d.min(axis=0), p.keypoints_2d.max(axis=0)]
        path = out_dir / f"frame_{len(written):02d}.png"
        lat = msg.processing_latency.sec + msg.processing_latency.nanosec * 1e-9
        render_frame(image, people, path, title=f"{len(people)} people, {lat * 1e3:.0f} ms")
        written.append(path)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_DIR / "out" / "demo", help="output folder")
    ap.add_argument("--source", default="", help="images/folder/video for the sample camera ('' = bundled)")
    ap.add_argument("--frames", type=int, default=12, help="pose messages to record")
    ap.add_argument("--rate", type=float, default=3.0, help="sample camera rate [Hz]")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--params-file", type=Path, default=REPO_DIR / "config" / "pose.yaml")
    ap.add_argument("--render", type=int, default=3, help="frames to render to PNG")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args(argv)

    env = ros_environment()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from visualization_msgs.msg import MarkerArray

    from diffpose_ros.msg import HumanPose3DArray
    from diffpose_ros.ros.bag import BagRecorder

    args.out.mkdir(parents=True, exist_ok=True)
    bag = args.out / "demo_bag"
    if bag.exists():
        import shutil
        shutil.rmtree(bag)
    topics = {"/image": Image, "/camera_info": CameraInfo, "/human_pose_3d": HumanPose3DArray,
              "/human_pose_3d/markers": MarkerArray, "/diagnostics": DiagnosticArray}
    print(f"[demo] ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}; starting sample camera + pose node (backend {args.backend})")
    procs = start_processes(env, args.source, args.rate, args.backend, args.params_file, args.out / "logs")
    rclpy.init()
    node = rclpy.create_node("demo_recorder")
    recorder = BagRecorder(node, bag, topics)
    t0 = time.monotonic()
    status = "ok"
    try:
        while recorder.counts["/human_pose_3d"] < args.frames:
            rclpy.spin_once(node, timeout_sec=0.1)
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                status = f"{', '.join(dead)} exited early (see {args.out / 'logs'})"
                break
            if time.monotonic() - t0 > args.timeout:
                status = f"timeout after {args.timeout:.0f} s"
                break
    finally:
        codes = stop_processes(procs)
        recorder.close()
        node.destroy_node()
        rclpy.shutdown()
    print(f"[demo] recorded {recorder.counts} in {time.monotonic() - t0:.1f} s -> {bag}")
    frames = render_from_bag(bag, args.out, args.render) if recorder.counts["/human_pose_3d"] else []
    summary = {"status": status, "bag": str(bag), "messages": recorder.counts, "exit_codes": codes,
               "frames": [str(f) for f in frames]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if status != "ok" or not frames:
        print(f"[demo] FAILED: {status}; logs in {args.out / 'logs'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
