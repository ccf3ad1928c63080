"""diffpose-lift: offline 2D -> 3D lifting of one person's keypoint track stored in an npz.

Input npz keys:
  keypoints  (F, 17, 2) pixels, H36M order (or COCO-17 with format = 'coco17')
  scores     (F, 17) confidences in [0, 1]
  K          (3, 3) camera intrinsics
  track_ids  (F,) optional; without it all frames form one track in file order (matters for the
             temporal model); pass distinct ids to lift frames independently
  format     optional 'h36m' (default) or 'coco17'
Output npz: poses3d (F,17,3) metres camera frame (absolute), poses3d_root_relative, covariance
(F,17,3,3) absolute (incl. root uncertainty), covariance_root_relative, root (F,3), root_cov
(F,3,3), hypotheses (F,N,17,3) root-relative. Written to a temp file and renamed: a failure
leaves no partial output.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..paths import WEIGHTS_DIR


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
    if fmt not in ("h36m", "coco17"):
        raise InputError(f"key 'format' must be 'h36m' or 'coco17', got {fmt!r}")
    if fmt == "coco17":
        from ..detector.coco_to_h36m import coco_to_h36m
        kp, sc = coco_to_h36m(kp, sc)
    return kp, sc, K, (np.zeros(F, np.int64) if tids is None else tids.astype(np.int64))


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-lift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, nargs="?", help="output npz (or -o)")
    p.add_argument("-o", "--out", type=Path, help="output npz (same as the positional output)")
    p.add_argument("--backend", default="torch",
                   help="sampler backend: torch (default), onnxruntime, tensorrt, auto, ...")
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "frame")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--n-hyp", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if (args.output is None) == (args.out is None):
        p.error("give the output file once: as the second argument or with -o")
    args.output = args.output or args.out
    try:
        kp, sc, K, tids = read_input(args.input)
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
    keys = ("positions", "positions_rel", "covariance", "covariance_rel", "root", "root_cov", "hypotheses")
    outs = {k: [] for k in keys}
    if lifter.temporal:  # frame by frame, so each track's causal buffer sees the past only
        chunks = [(slice(f, f + 1), [int(tids[f])]) for f in range(len(kp))]
    else:
        chunks = [(slice(i, i + 256), None) for i in range(0, len(kp), 256)]
    for sl, ids in tqdm(chunks, desc="lift", disable=len(chunks) < 20):
        r = lifter.lift(kp[sl], sc[sl], K, ids)
        for k in keys:
            outs[k].append(getattr(r, k))
    o = {k: np.concatenate(v).astype(np.float32) for k, v in outs.items()}
    data = {"poses3d": o["positions"], "poses3d_root_relative": o["positions_rel"],
            "covariance": o["covariance"], "covariance_root_relative": o["covariance_rel"],
            "root": o["root"], "root_cov": o["root_cov"], "hypotheses": o["hypotheses"]}
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
