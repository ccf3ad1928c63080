"""diffpose-soak: a long run of sample camera -> pose node, measured.

Reports frames in and out, stale drops, latency percentiles over time (from the node's
diagnostics), and the node's resident memory from start (after warm-up) to end. Writes
summary JSON and a PNG of the timeline.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from diffpose_ros.paths import IMAGES_DIR, REPO_DIR
from diffpose_ros.tools.demo import ros_environment, start_processes, stop_processes


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def plot(timeline, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [s["t_s"] / 60 for s in timeline]
    fig, ax = plt.subplots(1, 3, figsize=(15, 3.8))
    ax[0].plot(t, [s["rss_mb"] for s in timeline]); ax[0].set_ylabel("node RSS [MB]")
    ax[1].plot(t, [s["latency_p50_ms"] for s in timeline], label="p50")
    ax[1].plot(t, [s["latency_p95_ms"] for s in timeline], label="p95"); ax[1].set_ylabel("latency [ms]"); ax[1].legend()
    ax[2].plot(t, [s["output_rate_hz"] for s in timeline], label="out")
    ax[2].plot(t, [s["input_rate_hz"] for s in timeline], label="in"); ax[2].set_ylabel("rate [Hz]"); ax[2].legend()
    for a in ax:
        a.set_xlabel("minutes"); a.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=80); plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate [Hz]")
    ap.add_argument("--source", default=str(IMAGES_DIR / "vtest.avi"))
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before the memory baseline")
    ap.add_argument("--sample-every", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=REPO_DIR / "out" / "soak")
    args = ap.parse_args(argv)

    env = ros_environment()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from diffpose_ros.msg import HumanPose3DArray

    args.out.mkdir(parents=True, exist_ok=True)
    procs = start_processes(env, args.source, args.rate, args.backend, REPO_DIR / "config" / "pose.yaml",
                            args.out / "logs", reliable=False)
    node_pid = procs["pose_node"].pid
    rclpy.init()
    client = rclpy.create_node("soak_monitor")
    latest = {}
    received = {"poses": 0, "people": 0}

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith("diffpose_ros"):
                latest.update({kv.key: kv.value for kv in status.values})

    def on_pose(msg):
        received["poses"] += 1
        received["people"] += len(msg.people)

    client.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    client.create_subscription(HumanPose3DArray, "/human_pose_3d", on_pose,
                               QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    timeline, t0, next_sample = [], time.monotonic(), 0.0
    status = "ok"
    try:
        from tqdm import tqdm
        with tqdm(total=int(args.minutes * 60), unit="s", desc="soak") as bar:
            while (elapsed := time.monotonic() - t0) < args.minutes * 60:
                rclpy.spin_once(client, timeout_sec=0.1)
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    status = f"{', '.join(dead)} exited during the soak"
                    break
                if elapsed >= next_sample:
                    next_sample += args.sample_every
                    f = lambda k: float(latest.get(k, "nan"))  # noqa: E731
                    timeline.append({"t_s": round(elapsed, 1), "rss_mb": round(rss_mb(node_pid), 1),
                                     "frames_in": int(f("frames_in") if "frames_in" in latest else 0),
                                     "frames_out": int(f("frames_out") if "frames_out" in latest else 0),
                                     "dropped_stale": int(f("dropped_stale") if "dropped_stale" in latest else 0),
                                     "latency_p50_ms": f("latency_p50_ms"), "latency_p95_ms": f("latency_p95_ms"),
                                     "input_rate_hz": f("input_rate_hz"), "output_rate_hz": f("output_rate_hz")})
                    bar.n = int(elapsed); bar.refresh()
    finally:
        t_stop = time.monotonic()
        codes = stop_processes(procs)
        stop_s = time.monotonic() - t_stop
        client.destroy_node()
        rclpy.shutdown()
    base = [s for s in timeline if s["t_s"] >= args.warmup] or timeline
    growth = (base[-1]["rss_mb"] / base[0]["rss_mb"] - 1) * 100 if base else float("nan")
    summary = {"status": status, "minutes": args.minutes, "camera_rate_hz": args.rate, "source": args.source,
               "backend": latest.get("backend"), "frames_in": timeline[-1]["frames_in"] if timeline else 0,
               "frames_out": timeline[-1]["frames_out"] if timeline else 0,
               "dropped_stale": timeline[-1]["dropped_stale"] if timeline else 0,
               "pose_messages_received": received["poses"], "people_received": received["people"],
               "rss_mb_start": base[0]["rss_mb"] if base else None, "rss_mb_end": base[-1]["rss_mb"] if base else None,
               "rss_growth_pct": round(growth, 2), "latency_p50_ms_end": latest.get("latency_p50_ms"),
               "latency_p95_ms_end": latest.get("latency_p95_ms"), "shutdown_s": round(stop_s, 2),
               "exit_codes": codes, "timeline": timeline}
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2))
    if timeline:
        plot(timeline, args.out / "soak.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "timeline"}, indent=2))
    ok = status == "ok" and summary["frames_out"] > 0 and all(c == 0 for c in codes.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
