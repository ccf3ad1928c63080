"""diffpose-lift: offline 2D -> 3D lifting of one person's keypoint track stored in an npz.

Input npz keys:
  keypoints  (F, 17, 2) pixels, H36M order (or COCO-17 with format = 'coco17')
  scores     (F, 17) confidences in [0, 1]
  K          (3, 3) camera intrinsics
  track_ids  (F,) optional; without it all frames form one track in file order (matters for the
             temporal model); pass distinct ids to lift frames independently
  stamp      (F,) optional image stamps in seconds (diffpose-detect writes them); rows with the same
             stamp are one image. Without it: `frame` (F,) / --fps, else the row index / --fps. The
             temporal model lifts each track in stamp order and builds its windows on these
             stamps (lifter/windows.py)
  format     optional 'h36m' (default) or 'coco17'
Output npz: poses3d (F,17,3) metres camera frame (absolute), poses3d_root_relative, covariance
(F,17,3,3) absolute (incl. root uncertainty), covariance_root_relative, root (F,3), root_cov
(F,3,3), hypotheses (F,N,17,3) root-relative, size_var (F,) the variance of the relative
body-size error, whose term size_var X X^T is part of each absolute covariance, size_var_track
(F,) its part that is the same in every frame of a track (all of it without the floor), size_from_floor
(F,) bool: the size came from the feet on the floor (--camera-height and --camera-pitch given;
lifter/ground.py), else a typical adult's is assumed.
With track_ids in the input (and without --no-filter), the per-track filter runs over the rows in
stamp order (diffpose_ros/filter, the node's defaults) and each row also gets: filtered_root (F,3),
velocity (F,3) m/s, state_covariance (F,6,6) of (root, velocity), filtered_poses3d (F,17,3),
filtered_covariance (F,17,3,3), time_since_measurement (F,) s, is_prediction (F,) bool (the gate
refused this row's lift), predicted_root (F,3) and predicted_root_cov (F,3,3) prediction_horizon
seconds ahead, and stamp (F,). Rows are measurements: the predictions the node publishes for
frames in which a track has no row are not written.
Written to a temp file and renamed: a failure leaves no partial output.
"""
import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..paths import lifter_bundle


class InputError(ValueError):
    pass


def read_input(path: Path):
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an input error
        raise InputError(f"cannot read {path} as npz: {exc}") from exc
    with z:
        for key in ("keypoints", "scores", "K"):
            if key not in z.files:
                raise InputError(f"{path}: missing key '{key}' (has {sorted(z.files)})")
        kp = np.asarray(z["keypoints"], np.float64)
        sc = np.asarray(z["scores"], np.float64)
        K = np.asarray(z["K"], np.float64)
        tids = np.asarray(z["track_ids"]) if "track_ids" in z.files else None
        stamps = np.asarray(z["stamp"], np.float64) if "stamp" in z.files else None
        frames = np.asarray(z["frame"], np.float64) if "frame" in z.files else None
        fmt = str(z["format"]) if "format" in z.files else "h36m"
    if kp.ndim != 3 or kp.shape[1:] != (17, 2):
        raise InputError(f"key 'keypoints' must have shape (F, 17, 2), got {kp.shape}")
    F = kp.shape[0]
    if F == 0:
        raise InputError("key 'keypoints' is empty (0 frames): nothing to lift")
    if sc.shape != (F, 17):
        raise InputError(f"key 'scores' must have shape ({F}, 17), got {sc.shape}")
    if K.shape != (3, 3):
        raise InputError(f"key 'K' must have shape (3, 3), got {K.shape}")
    for key, arr in (("keypoints", kp), ("scores", sc), ("K", K)):
        if not np.isfinite(arr).all():
            raise InputError(f"key '{key}' contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"key 'K' must have positive focal lengths, got fx={K[0, 0]}, fy={K[1, 1]}")
    if tids is not None and tids.shape != (F,):
        raise InputError(f"key 'track_ids' must have shape ({F},), got {tids.shape}")
    for key, arr in (("stamp", stamps), ("frame", frames)):
        if arr is not None and (arr.shape != (F,) or not np.isfinite(arr).all()):
            raise InputError(f"key '{key}' must be ({F},) finite values, got shape {arr.shape}")
    if fmt not in ("h36m", "coco17"):
        raise InputError(f"key 'format' must be 'h36m' or 'coco17', got {fmt!r}")
    if fmt == "coco17":
        from ..detector.coco_to_h36m import coco_to_h36m
        kp, sc = coco_to_h36m(kp, sc)
    return LiftInput(kp, sc, K, np.zeros(F, np.int64) if tids is None else tids.astype(np.int64),
                     tids is not None, stamps, frames)


@dataclass
class LiftInput:
    keypoints: np.ndarray
    scores: np.ndarray
    K: np.ndarray
    track_ids: np.ndarray
    has_track_ids: bool
    stamps: np.ndarray | None
    frames: np.ndarray | None

    def __iter__(self):     # kp, sc, K, tids = read_input(...)
        return iter((self.keypoints, self.scores, self.K, self.track_ids))

    def row_stamps(self, fps: float) -> np.ndarray:
        if self.stamps is not None:
            return self.stamps
        index = self.frames if self.frames is not None else np.arange(len(self.keypoints), dtype=np.float64)
        return index / fps


def filter_rows(stamps, track_ids, lifted: dict, config=None) -> dict:
    """Run the per-track filter over lifted rows in stamp order (stable: file order within a
    stamp); one image = the rows with the same stamp. Returns per-row arrays (see the module
    docstring). A duplicate track id within one image is an InputError."""
    from ..filter.people_filter import PeopleFilter
    F = len(stamps)
    f = PeopleFilter(config)
    out = {"filtered_root": np.zeros((F, 3)), "velocity": np.zeros((F, 3)), "state_covariance": np.zeros((F, 6, 6)),
           "filtered_poses3d": np.zeros((F, 17, 3)), "filtered_covariance": np.zeros((F, 17, 3, 3)),
           "time_since_measurement": np.zeros(F), "is_prediction": np.zeros(F, bool),
           "predicted_root": np.zeros((F, 3)), "predicted_root_cov": np.zeros((F, 3, 3))}
    order = np.argsort(stamps, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(stamps[order]) != 0) + 1)
    for rows in tqdm(groups, desc="filter", disable=len(groups) < 200):
        ids = track_ids[rows]
        if len(set(ids.tolist())) != len(ids):
            raise InputError(f"track id repeated within one image (stamp {stamps[rows[0]]}): {ids.tolist()}")
        step = f.step(stamps[rows[0]], ids, lifted["root"][rows], lifted["root_cov"][rows],
                      lifted["positions_rel"][rows], lifted["covariance_rel"][rows],
                      lifted["size_var_track"][rows])
        for r, tid in zip(rows, ids):
            s = step.states[int(tid)]
            out["filtered_root"][r], out["velocity"][r], out["state_covariance"][r] = s.root, s.velocity, s.covariance
            out["filtered_poses3d"][r], out["filtered_covariance"][r] = s.positions, s.joint_covariance
            out["time_since_measurement"][r], out["is_prediction"][r] = s.time_since_measurement, s.is_prediction
            out["predicted_root"][r], out["predicted_root_cov"][r] = s.ahead_root, s.ahead_covariance
    out["prediction_horizon"] = np.float64(f.config.ahead_s)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-lift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, nargs="?", help="output npz (or -o)")
    p.add_argument("-o", "--out", type=Path, help="output npz (same as the positional output)")
    p.add_argument("--backend", default="torch",
                   help="sampler backend: torch (default), onnxruntime, tensorrt, auto, ...")
    p.add_argument("--weights", type=lifter_bundle, default="",
                   help="DiffPose bundle: frame or temporal (the bundled ones) or a folder; default frame")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--n-hyp", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fps", type=float, default=30.0,
                   help="frame rate of the rows when the input has no 'stamp' key (default 30): the filter's "
                        "stamps, and the time axis of the temporal model's windows (lifter/windows.py)")
    p.add_argument("--no-filter", action="store_true", help="do not run the per-track filter")
    p.add_argument("--camera-height", type=float, default=0.0, metavar="M",
                   help="the camera's height above the floor: the body's size from its feet (0: unknown)")
    p.add_argument("--camera-pitch", type=float, default=0.0, metavar="DEG",
                   help="with --camera-height: the optical axis below the horizon (positive: looking down)")
    p.add_argument("--camera-roll", type=float, default=0.0, metavar="DEG",
                   help="with --camera-height: the roll about the optical axis")
    args = p.parse_args(argv)
    if (args.output is None) == (args.out is None):
        p.error("give the output file once: as the second argument or with -o")
    args.output = args.output or args.out
    if not args.fps > 0:
        p.error("--fps must be > 0")
    if not (0 <= args.camera_height <= 20 and abs(args.camera_pitch) <= 90 and abs(args.camera_roll) <= 90):
        p.error("--camera-height must be in [0, 20] m, --camera-pitch and --camera-roll in [-90, 90] degrees")
    from ..lifter.ground import Ground
    ground = (Ground.from_tilt(args.camera_height, args.camera_pitch, args.camera_roll)
              if args.camera_height > 0 else None)
    try:
        inp = read_input(args.input)
        kp, sc, K, tids = inp
    except InputError as exc:
        print(f"diffpose-lift: error: {exc}", file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(args.threads)
    from ..lifter.lifter import Lifter
    runner = None
    if args.backend != "torch":   # the same sampler, run by the node's backends
        from ..backends import make_backend
        runner = make_backend(args.backend, args.weights, steps=args.steps, threads=args.threads)
    lifter = Lifter(args.weights, steps=args.steps, n_hyp=args.n_hyp, seed=args.seed, runner=runner)
    keys = ("positions", "positions_rel", "covariance", "covariance_rel", "root", "root_cov", "hypotheses", "size_var",
            "size_var_track", "ground_used")
    outs = {k: [] for k in keys}
    stamps = inp.row_stamps(args.fps)
    if lifter.temporal:  # row by row in stamp order: each track's window sees its past only, on its stamps
        order = np.argsort(stamps, kind="stable")
        chunks = [(order[f:f + 1], [int(tids[order[f]])], float(stamps[order[f]])) for f in range(len(kp))]
    else:
        order = np.arange(len(kp))
        chunks = [(order[i:i + 256], None, None) for i in range(0, len(kp), 256)]
    for rows, ids, stamp in tqdm(chunks, desc="lift", disable=len(chunks) < 20):
        r = lifter.lift(kp[rows], sc[rows], K, ids, ground=ground, stamp=stamp)
        for k in keys:
            outs[k].append(getattr(r, k))
    back = np.argsort(order)                # the rows in file order again
    rows_out = {k: np.concatenate(v)[back] for k, v in outs.items()}
    size_from_floor = rows_out.pop("ground_used")
    o = {k: v.astype(np.float32) for k, v in rows_out.items()}
    data = {"poses3d": o["positions"], "poses3d_root_relative": o["positions_rel"],
            "covariance": o["covariance"], "covariance_root_relative": o["covariance_rel"],
            "root": o["root"], "root_cov": o["root_cov"], "hypotheses": o["hypotheses"], "size_var": o["size_var"],
            "size_var_track": o["size_var_track"], "size_from_floor": size_from_floor}
    if inp.has_track_ids and not args.no_filter:
        try:
            filtered = filter_rows(stamps, tids, {k: v.astype(np.float64) for k, v in rows_out.items()})
        except InputError as exc:
            print(f"diffpose-lift: error: {exc}", file=sys.stderr)
            return 2
        data.update({k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in filtered.items()})
        data["stamp"] = stamps
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.output.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"lifted {len(kp)} frames -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
