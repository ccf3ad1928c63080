"""diffpose-bench-peers: this project's pipeline against MediaPipe BlazePose, same frames, same run.

BlazePose (mediapipe==0.10.21, model_complexity=1, 3D world landmarks, one person) is the tool
people pick today for monocular 3D pose on a CPU. It needs numpy<2 and protobuf<5, so it runs in
a venv of its own (made by this command on first use, ``--setup-only`` to make it only; never
needed by the node or the tests) in a worker process (``blazepose_worker.py``) that waits
blocked on its stdin while our pipeline runs, and ours waits while it runs.

Scenes, all 640x480: "photos" (basketball1, basketball2, messi5 resized to 640x480 and looped:
the frames of the issue), "1 person" (messi5 on a 640x480 canvas) and "3 people" (basketball1
and messi5 side by side). Rounds alternate: per round and scene every system (each --ours
setting, BlazePose static-image mode, BlazePose video mode) runs --frames frames, in an order
that rotates from round to round, so load that comes and goes hits all alike. Per frame:
``PosePipeline.process`` (detector + tracker + lifter, with its detector / lifter split) and
``Pose.process``; median and p90 over all rounds, people found per frame.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from diffpose_ros.paths import REPO_DIR, cache_dir
from diffpose_ros.tools.bench_detector import BENCH_PHOTOS, _read, scene

# The MediaPipe venv, pinned and installed with --no-deps: mediapipe's own list would pull jax,
# jaxlib, sentencepiece and sounddevice, none of which mp.solutions.pose imports.
PEER_REQUIREMENTS = (
    "mediapipe==0.10.21", "numpy==1.26.4", "protobuf==4.25.9", "absl-py==2.5.1", "attrs==26.1.0",
    "flatbuffers==25.12.19", "opencv-python-headless==4.10.0.84", "matplotlib==3.9.4", "contourpy==1.3.3",
    "cycler==0.12.1", "fonttools==4.68.0", "kiwisolver==1.5.1", "packaging==26.4", "pillow==13.0.0",
    "pyparsing==3.3.3", "python-dateutil==4.0.0", "six==1.17.0",
)
WORKER = Path(__file__).with_name("blazepose_worker.py")
SCENES = ("photos", "1 person", "3 people")


def default_venv() -> Path:
    return cache_dir() / "venv-mediapipe"


def ensure_peer_venv(venv: Path) -> Path:
    """Create (once) the MediaPipe venv; returns its python. A stamp records the pinned list."""
    py = venv / "bin" / "python"
    stamp = venv / ".diffpose-requirements"
    want = hashlib.sha256("\n".join(PEER_REQUIREMENTS).encode()).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    print(f"[bench-peers] making the MediaPipe venv {venv} (mediapipe 0.10.21, numpy<2, protobuf<5)", file=sys.stderr)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *PEER_REQUIREMENTS], check=True)
    check = subprocess.run([str(py), "-c", "import mediapipe as mp; mp.solutions.pose.Pose"],
                           capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"the MediaPipe venv {venv} does not import mediapipe:\n{check.stderr[-2000:]}")
    stamp.write_text(want)
    return py


def scene_frames(name: str, n: int = 3) -> list[np.ndarray]:
    """BGR 640x480 frames of one scene (the still scenes repeat one frame)."""
    if name == "photos":
        return [cv2.resize(_read(p), (640, 480)) for p in BENCH_PHOTOS]
    return [scene(1 if name == "1 person" else 3)] * n


class BlazePose:
    """The worker process in the MediaPipe venv."""

    def __init__(self, python: Path, frames: np.ndarray, tmpdir: Path):
        path = tmpdir / "frames.npy"
        np.save(path, frames)
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log = open(tmpdir / "blazepose_worker.log", "w")
        self.proc = subprocess.Popen([str(python), str(WORKER), str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        hello = self._read()
        self.versions = {k: hello[k] for k in ("mediapipe", "numpy")}

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            raise RuntimeError(f"BlazePose worker died; see {self.log.name}")
        return json.loads(line)

    def run(self, scene_index: int, mode: str, frames: int, warmup: int) -> dict:
        self.proc.stdin.write(json.dumps({"scene": scene_index, "mode": mode, "frames": frames,
                                          "warmup": warmup}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        self.log.close()


def parse_ours(spec: str) -> tuple[str, dict]:
    """'name: key=value,...' -> detector options (size, letterbox, model=fp32|int8|PATH)."""
    from diffpose_ros.tools.bench_detector import Setting
    s = Setting.parse(spec)
    opts = {"input_size": s.size, "letterbox_mode": s.letterbox, "optimization": s.opt}
    return s.name, {"detector_model": str(s.model_path()), "threads": s.threads, "detector_options": opts}


def run_ours(pipe, frames: list[np.ndarray], n: int, warmup: int, clock: list) -> dict:
    from diffpose_ros.pipeline import Intrinsics
    intr = Intrinsics.from_fov(640, 480, 60.0)
    ms, det, lift, found = [], [], [], []
    for i in range(warmup + n):
        clock[0] += 1 / 30
        t0 = time.perf_counter()
        res = pipe.process(frames[i % len(frames)], intr, clock[0])
        dt = (time.perf_counter() - t0) * 1e3
        if i >= warmup:
            ms.append(dt)
            det.append(res.timings["detect"] * 1e3)
            lift.append(res.timings["lift"] * 1e3)
            found.append(len(res.people))
    return {"ms": ms, "detect_ms": det, "lift_ms": lift, "found": found}


def summary(samples: dict) -> dict:
    ms = np.asarray(samples["ms"])
    out = {"median_ms": round(float(np.median(ms)), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1),
           "frames": int(ms.size), "people_per_frame": round(float(np.mean(samples["found"])), 2)}
    for k in ("detect_ms", "lift_ms"):
        if samples.get(k):
            out[k.replace("_ms", "_median_ms")] = round(float(np.median(samples[k])), 1)
    return out


def markdown(result: dict) -> str:
    lines = ["| scene | system | median ms | p90 ms | people per frame | detector / lifter median ms |",
             "|---|---|---|---|---|---|"]
    for scene_name, systems in result["scenes"].items():
        for name, v in systems.items():
            split = (f"{v['detect_median_ms']} / {v['lift_median_ms']}" if "detect_median_ms" in v else "—")
            lines.append(f"| {scene_name} | {name} | {v['median_ms']} | {v['p90_ms']} | {v['people_per_frame']} | {split} |")
    return "\n".join(lines)


def targets(result: dict, ours: str) -> list[str]:
    sc = result["scenes"]
    out = []
    static1 = sc["1 person"]["BlazePose static"]["median_ms"] if "1 person" in sc else None
    if static1:
        one = sc["1 person"][ours]["median_ms"]
        out.append(f"1 person: {ours} {one} ms vs BlazePose static {static1} ms -> "
                   f"{'met' if one <= static1 else 'NOT met'} (target: at most)")
    if static1 and "3 people" in sc:
        three = sc["3 people"][ours]["median_ms"]
        out.append(f"3 people: {ours} {three} ms vs 1.5 x BlazePose static (1 person) {1.5 * static1:.1f} ms -> "
                   f"{'met' if three <= 1.5 * static1 else 'NOT met'}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", nargs="+", default=["ours: size=640"],
                    help="pipeline settings 'name: key=value,...' (size, letterbox, model=fp32|int8|PATH, threads)")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150, help="frames per system, scene and round")
    ap.add_argument("--warmup", type=int, default=10, help="frames before each timed run (not counted)")
    ap.add_argument("--backend", default="onnxruntime", help="lifter backend")
    ap.add_argument("--venv", type=Path, default=None, help="the MediaPipe venv (default: <cache>/venv-mediapipe)")
    ap.add_argument("--setup-only", action="store_true", help="make the MediaPipe venv and stop")
    ap.add_argument("--out", type=Path, default=REPO_DIR / "out" / "bench_peers" / "bench_peers.json")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.frames < 1 or args.warmup < 0:
        raise ValueError("--rounds and --frames must be >= 1, --warmup >= 0")
    py = ensure_peer_venv(args.venv or default_venv())
    if args.setup_only:
        print(py)
        return 0

    from diffpose_ros.pipeline import PosePipeline
    ours = dict(parse_ours(s) for s in args.ours)
    pipes = {name: PosePipeline.create(backend=args.backend, **kw) for name, kw in ours.items()}
    frames = {s: scene_frames(s) for s in args.scenes}
    stack = np.stack([np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames[s]]) for s in args.scenes])
    samples = {s: {} for s in args.scenes}
    load_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        blaze = BlazePose(py, stack, Path(tmp))
        try:
            systems = list(pipes) + ["BlazePose static", "BlazePose video"]
            clock = [0.0]
            for r in tqdm(range(args.rounds), desc="rounds", unit="round"):
                for si, s in enumerate(args.scenes):
                    for name in systems[r % len(systems):] + systems[:r % len(systems)]:
                        if name in pipes:
                            got = run_ours(pipes[name], frames[s], args.frames, args.warmup, clock)
                        else:
                            got = blaze.run(si, "static" if name.endswith("static") else "video",
                                            args.frames, args.warmup)
                        acc = samples[s].setdefault(name, {})
                        for k, v in got.items():
                            acc.setdefault(k, []).extend(v)
        finally:
            blaze.close()
    result = {"what": "per-frame latency, this pipeline vs MediaPipe BlazePose (diffpose-bench-peers)",
              "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "rounds": args.rounds, "frames_per_round": args.frames, "lifter_backend": args.backend,
              "ours": {n: {k: v for k, v in kw.items()} for n, kw in ours.items()},
              "blazepose": {**blaze.versions, "model_complexity": 1},
              "load_avg_1min_start": load_start, "load_avg_1min_end": round(os.getloadavg()[0], 2),
              "scenes": {s: {n: summary(v) for n, v in samples[s].items()} for s in args.scenes}}
    result["targets"] = targets(result, next(iter(pipes)))
    print(f"\n{args.rounds} alternating rounds x {args.frames} frames, 640x480, load average "
          f"{result['load_avg_1min_start']} -> {result['load_avg_1min_end']} on {os.cpu_count()} CPUs\n")
    print(markdown(result))
    print("\n" + "\n".join(result["targets"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
