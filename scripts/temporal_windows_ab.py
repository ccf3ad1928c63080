"""The temporal lifter's input windows: one frame per lift() call (the former behaviour, every call
taken as the next frame at the training rate) against the windows on the stamps (lifter/windows.py:
a track at or below the training rate sampled at it, frames in between and dropped ones
interpolated; a faster track its last T frames), on the same mocap sequences, cameras and 2D noise.

    .venv/bin/python scripts/temporal_windows_ab.py --split val
    .venv/bin/python scripts/temporal_windows_ab.py --split test

Sequences: the walking/running/turning clips of the split (every k-th, --clips), one virtual
camera at 3-6 m, the project's detector-like 2D noise, sampled at each camera rate of the
conditions (5 to 30 Hz; the mocap is 30 fps) with a share of random frame drops, lifted frame by
frame by the shipped temporal model (K = 5, N = 5, ONNX Runtime). Prints per condition the
root-relative MPJPE and the root error of both, and the mean per-clip difference with its
standard error; writes docs/temporal_windows_ab_<split>.json.
"""
import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from diffpose_ros.backends import make_backend
from diffpose_ros.data.noise import NoiseConfig
from diffpose_ros.data.sequence import MOCAP_DIR, clip_hash, load_clip_h36m, make_sequence
from diffpose_ros.data.virtual_camera import CameraConfig
from diffpose_ros.filter.process_noise import motion_clips
from diffpose_ros.lifter.lifter import Lifter
from diffpose_ros.paths import REPO_DIR, WEIGHTS_DIR
from diffpose_ros.tools.evaluate_filter import MOCAP_FPS

CONDITIONS = ((5.0, 0.0), (7.5, 0.0), (10.0, 0.0), (10.0, 0.3), (15.0, 0.3), (30.0, 0.0), (30.0, 0.3))


def lift_sequence(lifter, s, keep, stamps: bool):
    rel, root = [], []
    for i in np.flatnonzero(keep):
        r = lifter.lift(s["keypoints_px"][i:i + 1], s["conf"][i:i + 1], s["K"][0], [0],
                        stamp=s["frame"][i] / MOCAP_FPS if stamps else None)
        rel.append(r.positions_rel[0])
        root.append(r.root[0])
    return np.array(rel), np.array(root)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", default="val")
    p.add_argument("--clips", type=int, default=48, help="at most this many clips (every k-th of the split)")
    p.add_argument("--weights", default=str(WEIGHTS_DIR / "temporal"))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    runner = make_backend("onnxruntime", a.weights, steps=5, threads=a.threads)
    clips = motion_clips(a.split)
    clips = clips[:: max(1, len(clips) // a.clips)][: a.clips]
    result = {"split": a.split, "clips": len(clips), "weights": a.weights, "date": time.strftime("%Y-%m-%d"),
              "command": f"python scripts/temporal_windows_ab.py --split {a.split} --clips {a.clips}",
              "conditions": {}}
    for rate, drop in CONDITIONS:
        per = {"per_call": [], "stamps": []}
        for c in tqdm(clips, desc=f"{rate:g} Hz, {drop:.0%} dropped"):
            pose, floor, _ = load_clip_h36m(MOCAP_DIR / c)
            grid = np.unique(np.round(np.arange(0, len(pose) - 1, MOCAP_FPS / rate)).astype(int))
            s = make_sequence(pose, floor, grid, np.random.default_rng([0, clip_hash(c), 0]), NoiseConfig(),
                              CameraConfig(distance_range=(3.0, 6.0)))
            keep = np.random.default_rng([1, clip_hash(c)]).random(len(s["frame"])) >= drop
            if keep.sum() < 3:
                continue
            truth = (s["pose3d"] + s["root"][:, None])[keep].astype(np.float64)
            for name in per:
                lifter = Lifter(a.weights, steps=5, n_hyp=5, seed=0, runner=runner)
                rel, root = lift_sequence(lifter, s, keep, name == "stamps")
                e_rel = np.linalg.norm(rel - (truth - truth[:, :1]), axis=-1)[:, 1:].mean(-1)
                e_root = np.linalg.norm(root - truth[:, 0], axis=-1)
                per[name].append((e_rel, e_root))
        row = {}
        for name, rows in per.items():
            row[name] = {"rel_mpjpe_mm": 1000 * float(np.concatenate([r[0] for r in rows]).mean()),
                         "root_error_cm": 100 * float(np.concatenate([r[1] for r in rows]).mean())}
        d = np.array([s[0].mean() - o[0].mean() for s, o in zip(per["stamps"], per["per_call"])]) * 1000
        row["clip_difference_mm"] = {"mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d))),
                                     "clips": int(len(d))}
        result["conditions"][f"{rate:g}Hz/drop{drop:g}"] = row
        print(f"{rate:4g} Hz, {drop:3.0%} dropped: rel MPJPE per call {row['per_call']['rel_mpjpe_mm']:.1f} -> stamps "
              f"{row['stamps']['rel_mpjpe_mm']:.1f} mm (per clip {d.mean():+.1f} +- {row['clip_difference_mm']['stderr']:.1f}); "
              f"root {row['per_call']['root_error_cm']:.1f} -> {row['stamps']['root_error_cm']:.1f} cm", flush=True)
    out = REPO_DIR / "docs" / f"temporal_windows_ab_{a.split}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
