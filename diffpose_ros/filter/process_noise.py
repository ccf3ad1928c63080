"""Process noise of the per-track filter, fitted on the true motion of walking, running and
turning people in the shared motion capture (training clips only; the evaluation uses others).

Root (pelvis). A pelvis does not move like a constant-velocity point: it bobs and sways with
every step (about 2 Hz) around a smooth path that changes slowly (turns, speeding up). The
lifter's depth noise (tens of cm) leaves no chance of following the step oscillation, so the
filter tracks the smooth path and reports the oscillation as extra uncertainty:
  * smooth path = local polynomial fit (degree order-1: a line for the constant-velocity model,
    a parabola for constant acceleration) over a window of about one gait cycle (1 s);
  * pos_jitter = std of the true position about that path, per axis;
  * vel_jitter: the variance of the true velocity about the path's slope grows with speed (the
    vertical bounce is 0.05 m/s when strolling, 0.6 m/s when running), so it is fitted per axis
    as var = a + b * speed^2 (non-negative least squares; speed = horizontal speed of the path,
    whose vertical speed is near zero, so the filter evaluates it at its 3D speed)
    and evaluated at the filter's current speed;
  * q = the process-noise density that explains how the path's top derivative (its velocity,
    or its acceleration) changes: the largest D(h) / h over horizons h of 0.5-2 s, where
    D(h) = mean squared change over h (for white noise on that derivative D(h) / h = q at every
    h; the largest value keeps predictions through long gaps honest).
Joints (root-relative). Limbs swing by tens of cm and the lifter's root-relative noise is
smaller than its depth noise, so the joints follow their motion: q per joint is the largest
D(h) / h of the joint's own top derivative over horizons of one frame to 1/3 s. A new track's
joint velocity starts at zero with the joint's rms velocity as its std.

Axes. Motion capture is Y-up, the filter runs in the camera optical frame (x right, y down,
z forward), and a robot's camera may be pitched or rolled, so that floor motion shows on any
camera axis: every root value is made isotropic. The process noise takes the larger of the
horizontal (mean of the two floor axes) and the vertical value, so that no camera axis is rigid;
the gait oscillation keeps its total variance, spread evenly (the mean over the three axes). Densities below Q_FLOOR are raised to it
so that motions the clips lack (stairs, sitting down) do not meet a rigid filter.

The smooth path of most frames is what these fits describe; rare manoeuvres (turning round
within a second) may not be, so the root densities are multiplied by one scale chosen on lifted
validation sequences, together with the measurement model (Student-t tails or Gaussian errors,
correlated over time or not: both fitted on the lifter's errors, kept only where they lower the
negative log-likelihood of the true state), by diffpose_ros/tools/evaluate_filter.py
--fit-measurement; stored under "measurement".

Refit (writes process_noise.json next to this file, with its provenance; keeps "measurement"):
    python -m diffpose_ros.filter.process_noise
    diffpose-evaluate-filter --split val --cameras 1 --body-scales 0.9 1.0 1.15 --fit-measurement
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffpose_ros.skeleton import NUM_JOINTS, ROOT

from .kinematic import ORDERS

NOISE_FILE = Path(__file__).resolve().parent / "process_noise.json"
MOCAP_FPS = 30.0                    # the shared Bandai Namco BVH files (data README)
WINDOW_S = 1.0                      # about one gait cycle
ROOT_HORIZONS_S = (0.5, 1.0, 1.5, 2.0)
JOINT_HORIZONS_FRAMES = tuple(range(1, 11))
Q_FLOOR = 0.01
# actions of walking, running and turning people in the shared mocap file names
MOTION_ACTIONS = ("walk", "walk-back", "walk-left", "walk-right", "walk-turn-left", "walk-turn-right",
                  "run", "dash")
_ACTION_RE = re.compile(r"_(" + "|".join(re.escape(a) for a in MOTION_ACTIONS) + r")_")


@dataclass
class ProcessNoise:
    """Fitted values for one motion model ('cv' or 'ca'); camera optical axes (x, y down, z)."""
    model: str
    root_q: np.ndarray               # (3,) spectral density of the smooth path's top derivative
    root_pos_jitter: np.ndarray      # (3,) m, gait oscillation about the smooth path
    root_vel_jitter_var: np.ndarray  # (3,) m^2/s^2 at speed 0 ...
    root_vel_jitter_var_per_speed2: np.ndarray  # (3,) ... plus this times speed^2
    joint_q: np.ndarray              # (17,) isotropic, root-relative (entry 0, the root, unused)
    joint_derivative_std: np.ndarray  # (17, order-1) prior std of velocity (and acceleration)
    measurement_correlation_s: np.ndarray  # (3,) correlation time of the lifter's root errors (0: independent)
    measurement_dof: float                 # Student-t degrees of freedom of the lifter's errors (inf: Gaussian)

    @property
    def order(self) -> int:
        return ORDERS[self.model]

    def root_vel_var(self, speed) -> np.ndarray:
        """(3,) variance of the gait oscillation of the pelvis velocity at a speed (m/s); (B, 3)
        for speeds (B, 1)."""
        return self.root_vel_jitter_var + self.root_vel_jitter_var_per_speed2 * speed ** 2


def load_process_noise(model: str = "cv", path=NOISE_FILE) -> ProcessNoise:
    if model not in ORDERS:
        raise ValueError(f"model must be one of {sorted(ORDERS)}, got {model!r}")
    data = json.loads(Path(path).read_text())
    m = data["models"][model]
    meas = data.get("measurement", {})
    tau = meas.get("correlation_s", [0.0, 0.0, 0.0])
    # the scale selected on validation sequences by diffpose-evaluate-filter --fit-measurement
    scale = float(meas.get("process_noise_scale", 1.0))
    return ProcessNoise(model=model, root_q=np.array(m["root_q"]) * scale, root_pos_jitter=np.array(m["root_pos_jitter"]),
                        root_vel_jitter_var=np.array(m["root_vel_jitter_var"]),
                        root_vel_jitter_var_per_speed2=np.array(m["root_vel_jitter_var_per_speed2"]),
                        joint_q=np.array(m["joint_q"]),
                        joint_derivative_std=np.array(m["joint_derivative_std"]).reshape(NUM_JOINTS, -1),
                        measurement_correlation_s=np.array(tau, np.float64),
                        # null: Gaussian errors (chosen by diffpose-evaluate-filter --fit-measurement)
                        measurement_dof=float(meas.get("student_t_dof") or np.inf))


# the lifter's leave-out protocol (data/protocol.py) decides which clips are whose: the process
# noise is fitted on the lifter's training clips, the measurement model on its validation clips,
# and the filter is evaluated on walking / running in the Bandai Namco styles the lifter never saw
PROTOCOL_SPLITS = {"train": "train", "val": "val", "test": "test_styles"}


def motion_clips(split: str) -> list[str]:
    """Bandai Namco clips (paths relative to the mocap folder) of walking, running and turning in
    a split of the lifter's leave-out protocol ("train", "val", "test" = its test_styles)."""
    from diffpose_ros.data.motion import MotionBank
    from diffpose_ros.data.protocol import protocol_splits
    if split not in PROTOCOL_SPLITS:
        raise ValueError(f"split must be one of {sorted(PROTOCOL_SPLITS)}, got {split!r}")
    bank = MotionBank.load(sources=["shared:sources=bandai-namco-1,bandai-namco-2"], fps=10.0, progress=False)
    keys = bank.meta["key"][protocol_splits(bank, "leave-out-v1")[PROTOCOL_SPLITS[split]]]
    return sorted(str(k) for k in keys if _ACTION_RE.search(str(k)))


def _camera_axes(world_xyz: np.ndarray, how: str) -> np.ndarray:
    """Y-up world per-axis values (..., 3) -> the same value on every camera axis (the camera may
    look along any direction): "max" = the larger of horizontal (mean of x, z) and vertical (y),
    "mean" = the mean of the three axes."""
    if how == "max":
        value = np.maximum(0.5 * (world_xyz[..., 0] + world_xyz[..., 2]), world_xyz[..., 1])
    else:
        value = world_xyz.mean(axis=-1)
    return np.stack([value, value, value], axis=-1)


def _derivative(x: np.ndarray, k: int, dt: float) -> np.ndarray:
    for _ in range(k):
        x = np.gradient(x, dt, axis=0)
    return x


def _structure(x: np.ndarray, lags) -> dict[int, tuple[np.ndarray, int]]:
    """Sum of squared changes over each lag (frames) along axis 0, and the count."""
    return {k: (np.square(x[k:] - x[:-k]).sum(axis=0), len(x) - k) for k in lags if len(x) > k}


def fit_process_noise(trajectories, fps: float = MOCAP_FPS, window_s: float = WINDOW_S) -> dict:
    """trajectories: iterable of (F, 17, 3) world-frame (Y-up) H36M poses. Returns the fitted
    values of both models as plain lists, and how many clips and frames they came from."""
    from scipy.signal import savgol_filter
    dt = 1.0 / fps
    win = int(round(window_s * fps)) | 1              # odd
    half = win // 2
    root_lags = [int(round(h * fps)) for h in ROOT_HORIZONS_S]
    acc = {m: {"D": {}, "Dj": {}, "pos": [], "vel": [], "speed": [], "jd": []} for m in ORDERS}
    clips = frames = 0
    for pose in trajectories:
        pose = np.asarray(pose, np.float64)
        if len(pose) < win + max(root_lags):
            continue
        clips += 1
        frames += len(pose)
        p = pose[:, ROOT]
        v = np.gradient(p, dt, axis=0)
        rel = pose - pose[:, ROOT:ROOT + 1]
        for model, order in ORDERS.items():
            a = acc[model]
            deg = order - 1
            smooth = savgol_filter(p, win, deg, axis=0, mode="interp")
            slope = savgol_filter(p, win, deg, deriv=1, delta=dt, axis=0, mode="interp")
            top = savgol_filter(p, win, deg, deriv=deg, delta=dt, axis=0, mode="interp")
            inner = slice(half, len(p) - half)        # windows that lie inside the clip
            a["pos"].append((p - smooth)[inner])
            a["vel"].append((v - slope)[inner])
            a["speed"].append(np.linalg.norm(slope[inner][:, [0, 2]], axis=1))   # Y-up: x, z horizontal
            for k, (s, n) in _structure(top[inner], root_lags).items():
                S, N = a["D"].get(k, (0.0, 0))
                a["D"][k] = (S + s, N + n)
            jtop = _derivative(rel, deg, dt)                                 # (F, 17, 3)
            for k, (s, n) in _structure(jtop, JOINT_HORIZONS_FRAMES).items():
                S, N = a["Dj"].get(k, (0.0, 0))
                a["Dj"][k] = (S + s, N + n)
            a["jd"].append(np.stack([np.linalg.norm(_derivative(rel, d, dt), axis=-1) for d in range(1, order)], -1))
    if clips == 0:
        raise ValueError(f"no clip is long enough (>= {win + max(root_lags)} frames) to fit the process noise")
    out = {"clips": clips, "frames": frames, "models": {}}
    for model, order in ORDERS.items():
        a = acc[model]
        q_world = np.max([S / N / (k * dt) for k, (S, N) in a["D"].items()], axis=0)
        qj = np.max([(S / N).mean(axis=-1) / (k * dt) for k, (S, N) in a["Dj"].items()], axis=0)
        jd = np.concatenate(a["jd"])                                         # (frames, 17, order-1)
        jv = np.concatenate(a["vel"]) ** 2
        speed2 = np.concatenate(a["speed"]) ** 2
        from scipy.optimize import nnls
        A = np.stack([np.ones_like(speed2), speed2], axis=1)
        ab = np.array([nnls(A, jv[:, k])[0] for k in range(3)])              # (3 axes, 2)
        out["models"][model] = {
            "root_q": np.maximum(_camera_axes(q_world, "max"), Q_FLOOR).round(5).tolist(),
            "root_pos_jitter": np.sqrt(_camera_axes(np.concatenate(a["pos"]).var(axis=0), "mean")).round(5).tolist(),
            "root_vel_jitter_var": _camera_axes(ab[:, 0], "mean").round(5).tolist(),
            "root_vel_jitter_var_per_speed2": _camera_axes(ab[:, 1], "mean").round(5).tolist(),
            # rms of |derivative| per joint, per axis (isotropic): sqrt(mean |d|^2 / 3)
            "joint_q": np.maximum(qj, Q_FLOOR).round(5).tolist(),
            "joint_derivative_std": np.sqrt(np.mean(jd ** 2, axis=0) / 3).round(5).tolist(),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffpose_ros.filter.process_noise", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="train", help="clip split to fit on (default: train)")
    p.add_argument("--out", type=Path, default=NOISE_FILE)
    p.add_argument("--limit", type=int, default=None, help="use the first N clips only (quick check)")
    args = p.parse_args(argv)
    from tqdm import tqdm

    from diffpose_ros.data.sequence import MOCAP_DIR, load_clip_h36m
    clips = motion_clips(args.split)[: args.limit]
    if not clips:
        print(f"no walking/running/turning clips in split {args.split!r} under {MOCAP_DIR}")
        return 2
    poses = (load_clip_h36m(MOCAP_DIR / c)[0] for c in tqdm(clips, desc="fit process noise"))
    fit = fit_process_noise(poses)
    fit["provenance"] = {
        "command": "python -m diffpose_ros.filter.process_noise" + (f" --split {args.split}" if args.split != "train" else ""),
        "date": datetime.date.today().isoformat(),
        "data": f"shared/data/mocap ({MOCAP_DIR.name}), split '{args.split}' by clip hash "
                "(the lifter's leave-out-v1 protocol: process_noise.PROTOCOL_SPLITS), actions " + ", ".join(MOTION_ACTIONS),
        "fps": MOCAP_FPS, "window_s": WINDOW_S, "root_horizons_s": list(ROOT_HORIZONS_S),
        "joint_horizons_s": [round(k / MOCAP_FPS, 4) for k in JOINT_HORIZONS_FRAMES], "q_floor": Q_FLOOR,
        "axes": "camera optical frame x, y, z, isotropic: q = the larger of horizontal and vertical, "
                "jitter variances = the mean of the three axes",
        "units": "q: m^2/s^3 (cv) or m^2/s^5 (ca); pos jitter: m; velocity jitter variance: m^2/s^2 "
                 "(+ per speed^2: dimensionless); joint_derivative_std: m/s (and m/s^2)",
    }
    fit = {"provenance": fit.pop("provenance"), **fit}
    if args.out.exists():      # the lifter's error correlation is fitted by diffpose-evaluate-filter
        old = json.loads(args.out.read_text())
        if "measurement" in old:
            fit["measurement"] = old["measurement"]
    args.out.write_text(json.dumps(fit, indent=1) + "\n")
    for model, m in fit["models"].items():
        print(f"{model}: root q {m['root_q']}, pos jitter {m['root_pos_jitter']} m, velocity jitter variance "
              f"{m['root_vel_jitter_var']} + {m['root_vel_jitter_var_per_speed2']} * speed^2")
    print(f"{fit['clips']} clips, {fit['frames']} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
