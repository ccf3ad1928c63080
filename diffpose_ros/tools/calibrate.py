"""diffpose-calibrate: fit the covariance calibration (lifter/calibration.py) of a bundle on its
validation clips (which it never trained on; bodies of 1.25 to 2.15 m, tools/common.py
CALIBRATION_HEIGHTS), for a grid of (DDIM steps, hypotheses N), and store
it in <weights>/calibration.json under the keys s<steps>_n<N> (each with a second set of scales,
"ground", for people whose size the floor gave: lifter/ground.py). A (steps, N) outside the grid uses
the nearest calibrated setting (the node reports which one in /diagnostics). diffpose-train runs
this as its last stage; run it alone after changing a bundle's sampling settings.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..paths import lifter_bundle
from . import common

DEFAULT_STEPS = (1, 2, 5, 10)
DEFAULT_N = (2, 5, 10, 20)
MAX_SAMPLES = 4000
EVALS_PER_SETTING = 200_000  # denoiser calls: expensive settings are fitted on fewer samples (>= 1000)


def sample_count(steps: int, n: int, max_samples: int = MAX_SAMPLES) -> int:
    """Validation samples (steps, N) is fitted on: fewer for the expensive settings."""
    return min(max_samples, max(1000, EVALS_PER_SETTING // (steps * n)))


def fit_terms(t: dict, d: dict) -> dict:
    """fit_calibration's per-sample arguments from raw terms `t` (plain or ground_terms) of the
    samples `d`: the errors against the truth and the covariances they are fitted with."""
    gt_rel = d["pose3d"]
    return {"err_rel": t["pose"] - gt_rel, "hyp_cov": t["hyp_cov"], "pose": t["pose"],
            "err_abs": t["positions"] - (gt_rel + d["root"][:, None]), "hyp_cov_abs": t["hyp_cov_abs"],
            "cov_t2d": t["cov_t2d"], "pos": t["positions"]}


def calibrate_bundle(bundle, val: dict, steps_list, n_list, seed: int = 0, max_samples: int = MAX_SAMPLES,
                     log=print, source_names=None, train_poses=None) -> dict:
    """Fit every (steps, N) of the grid on `val` (a fixed set) and store the entries in
    bundle.calibration; returns a report {key: coverages}. The band per source
    (calibration.source_band_scale) uses val["source"], named by `source_names` (the bank's).
    train_poses (S,17,3): true poses of the training clips (common.training_poses), for the
    pose typicality the atypicality widening measures against (calibration.PoseTypicality),
    stored in bundle.calibration["pose_typicality"] before anything is lifted.

    Per steps, the N share their draws: the samples of N are the first sample_count(steps, N)
    of one seeded order, and each group of samples between two such counts is lifted once with
    the largest N it serves (lift_set_nested); a smaller N takes the first N chains."""
    from ..lifter.calibration import PoseTypicality, calibration_key, fit_calibration
    from ..lifter.evaluation import ground_terms, lift_set_nested
    report = {}
    if train_poses is not None:
        bundle.calibration["pose_typicality"] = PoseTypicality.fit(train_poses).to_json()
    order = common.subset_order(val, seed)
    for steps in steps_list:
        t0 = time.time()
        counts = {n: min(sample_count(steps, n, max_samples), len(order)) for n in n_list}
        raws = {n: [] for n in n_list}
        lo = 0
        for hi in sorted(set(counts.values())):
            served = [n for n in n_list if counts[n] >= hi]
            group = lift_set_nested(bundle, common.take(val, order[lo:hi]), steps, served, seed=[seed, lo],
                                    ground=True)
            for n in served:
                raws[n].append(group[n])
            lo = hi
        log(f"[calibrate] steps {steps}: lifted in {time.time() - t0:.0f} s")
        for n in n_list:
            t1 = time.time()
            raw = {k: np.concatenate([r[k] for r in raws[n]]) for k in raws[n][0]}
            d = common.take(val, order[:counts[n]])
            g = ground_terms(raw)
            ground = dict(fit_terms(g, d), size_w=g["size_w"], used=g["ground_used"])
            sources = d.get("source")
            if sources is not None and source_names is not None:
                sources = np.asarray(source_names)[sources]
            entry = fit_calibration(**fit_terms(raw, d), chi=raw["chi"], ground=ground, sources=sources,
                                    atyp=raw.get("atyp"))
            entry.update({"steps": int(steps), "n_hyp": int(n), "fitted_on": "val clips"})
            key = calibration_key(steps, n)
            bundle.calibration[key] = entry
            report[key] = {k: entry[k] for k in ("coverage_rel_before", "coverage_rel_after", "coverage_abs_after",
                                                 "size_var_rel", "size_var_abs", "root_2d_scale",
                                                 "inflation_gamma", "atypicality_gamma", "source_scale_rel",
                                                 "source_scale_abs")
                           if k in entry}
            gr = entry.get("ground", {})
            report[key]["ground"] = {k: gr[k] for k in ("coverage_rel_after", "coverage_abs_after", "share_used")
                                     if k in gr}
            log(f"[calibrate] {key}: rel 90 % {entry['coverage_rel_before']['0.90']:.3f} -> "
                f"{entry['coverage_rel_after']['0.90']:.3f}, abs 90 % {entry['coverage_abs_after']['0.90']:.3f} "
                f"(size std rel {np.sqrt(entry['size_var_rel']):.3f}, abs {np.sqrt(entry['size_var_abs']):.3f}, "
                f"inflation gamma {entry['inflation_gamma']:.1f}, atypicality gamma {entry['atypicality_gamma']:.2f}, "
                f"band per source x{entry.get('source_scale_rel', 1):.3f} "
                f"rel, x{entry.get('source_scale_abs', 1):.3f} abs; {counts[n]} samples, "
                f"fitted in {time.time() - t1:.0f} s)"
                + (f"; floor known ({gr['share_used']:.0%} used): rel {gr['coverage_rel_after']['0.90']:.3f}, "
                   f"abs {gr['coverage_abs_after']['0.90']:.3f}" if gr else ""))
    return report


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=lifter_bundle, default="",
                   help="DiffPose bundle: frame or temporal (the bundled ones) or a folder; default frame")
    p.add_argument("--steps", type=int, nargs="+", default=list(DEFAULT_STEPS))
    p.add_argument("--n-hyp", type=int, nargs="+", default=list(DEFAULT_N))
    p.add_argument("--max-samples", type=int, default=MAX_SAMPLES)
    p.add_argument("--replace", action="store_true", help="drop the entries not refitted now")
    common.add_data_args(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..lifter.model_io import load_bundle, save_json
    t0 = time.time()
    b = load_bundle(args.weights)
    data_cfg = common.bundle_data_config(b)
    bank = common.load_bank(data_cfg)
    splits = common.splits_for(bank, data_cfg)
    val = common.held_out_draws(bank, splits["val"], b.window, common.VAL_SAMPLES, args.seed + 1, data_cfg,
                                common.CALIBRATION_HEIGHTS)
    if args.replace:
        b.calibration = {}
    report = calibrate_bundle(b, val, args.steps, args.n_hyp, args.seed, args.max_samples,
                              source_names=bank.source_names,
                              train_poses=common.training_poses(bank, splits["train"], args.seed, data_cfg))
    save_json(b.calibration, Path(args.weights) / "calibration.json")
    print(json.dumps({"wall_time_s": time.time() - t0, "keys": list(report)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
