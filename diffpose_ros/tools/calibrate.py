"""diffpose-calibrate: fit per-joint covariance scales on the VALIDATION split so that the nominal
50 / 90 / 95 % chi^2(3) ellipsoids hold that share of the true joints; stores them in
<weights>/calibration.json under the key s<steps>_n<n_hyp> ("default" for the first pair given).
Prints coverage before and after.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..paths import WEIGHTS_DIR


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "frame")
    p.add_argument("--steps", type=int, nargs="+", default=[5], help="DDIM steps (first = default)")
    p.add_argument("--n-hyp", type=int, nargs="+", default=[5], help="hypotheses (first = default)")
    p.add_argument("--start-step", type=int, nargs="+", default=[None],
                   help="chain start step(s) (default: the bundle's; K = full chain from H_K)")
    p.add_argument("--split", default="val")
    p.add_argument("--max-samples", type=int, default=4000)
    p.add_argument("--keep-default", action="store_true",
                   help="do not replace the 'default' entry nor its setting's key (adding sweep settings)")
    p.add_argument("--global-scale", action="store_true", help="one scale for all joints")
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--limit-clips", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..lifter import training as T
    from ..lifter.calibration import fit_calibration
    from ..lifter.metrics import mahalanobis_sq
    from ..lifter.model_io import load_bundle, save_json
    from ..lifter.sampler import DiffPoseSampler, calibration_key
    t0 = time.time()
    b = load_bundle(args.weights)
    stride = args.stride or b.config.get("data", {}).get("stride", 3)
    d = T.load_split(args.split, stride, args.limit_clips, args.seed)
    inp = T.Inputs(d, b.window)
    idx = np.random.default_rng(args.seed).permutation(len(inp))[:args.max_samples]
    gt = d["pose3d"][idx]
    old = dict(b.calibration or {})
    b.calibration = {}  # sample uncalibrated
    new = {}
    combos = [(k0, st, n) for k0 in args.start_step for st in args.steps for n in args.n_hyp]
    for c, (k0, steps, n) in enumerate(combos):
            s = DiffPoseSampler(b, steps, n, start_step=k0)
            if args.keep_default and s.cal_key in old and old.get("default", {}).get("n_samples", 0) >= len(idx) \
                    and s.cal_key == calibration_key(old["default"]["steps"], old["default"]["n_hyp"],
                                                     old["default"]["start_step"], b.config["diffusion"]["n_steps"]):
                print(f"{s.cal_key}: keeping the default setting's calibration")
                continue
            mean, cov, _ = T.run_sampler(s, inp, idx, seed=args.seed)
            res = fit_calibration(mahalanobis_sq(mean - gt, cov), per_joint=not args.global_scale)
            res.update({"steps": steps, "n_hyp": n, "start_step": s.start_step, "split": args.split})
            new[s.cal_key] = res
            if c == 0 and not (args.keep_default and "default" in old):
                new["default"] = res
            print(f"start {s.start_step} steps {steps} N {n}: coverage before {res['coverage_before']} -> after "
                  f"{res['coverage_after']} (global scale {res['global_scale']:.3f})", flush=True)
    old.update(new)
    save_json(old, Path(args.weights) / "calibration.json")
    print(json.dumps({"wall_time_s": time.time() - t0, "n_samples": int(len(idx)), "keys": list(new)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
