"""diffpose-evaluate: accuracy and uncertainty quality of lifter bundles on held-out data.

Data: the test split of the shared BVH mocap (or any BVH folder with --mocap-dir/--skeleton-map)
with detector-like 2D noise, or Human3.6M via --h36m-3d [--h36m-2d] (diffpose_ros.data.h36m).
For each DiffPose bundle: the context encoder alone, the default sampler setting (first --steps,
first --n-hyp) on all samples, and the N x steps sweep on a subset (--sweep-samples). Metrics:
MPJPE, PA-MPJPE, per-joint errors, best-of-N, hypothesis spread, coverage of the 50/90/95 %
ellipsoids before/after calibration, Gaussian NLL. --baseline adds the Martinez MLP and the
DiffPose/baseline ratio. Writes a JSON summary and a PNG of error vs predicted uncertainty.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..paths import REPO_DIR, WEIGHTS_DIR


def _prepare(d):
    d["inputs"] = np.concatenate([d["keypoints"], d["conf"][..., None]], -1).astype(np.float32)
    return d


def load_eval_data(args, stride):
    from ..lifter import training as T
    if args.h36m_3d:
        from ..data.h36m import load_h36m
        return _prepare(load_h36m("test", args.h36m_3d, args.h36m_2d, stride=stride, seed=args.seed)), "h36m"
    return T.load_split(args.split, stride, args.limit_clips, args.seed, mocap_dir=args.mocap_dir,
                        skeleton_map=args.skeleton_map), f"mocap:{args.split}"


def uncertainty_plot(err_mm, std_mm, path: Path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    e, s = err_mm.ravel(), std_mm.ravel()
    edges = np.unique(np.quantile(s, np.linspace(0, 1, 16)))
    centre, mean_e, q90 = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (s >= lo) & (s <= hi)
        if m.sum() < 10:
            continue
        centre.append(s[m].mean())
        mean_e.append(e[m].mean())
        q90.append(np.quantile(e[m], 0.9))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(centre, mean_e, "o-", label="mean error")
    ax.plot(centre, q90, "s--", label="90 % quantile of error")
    x = np.linspace(0, max(centre) * 1.05, 50)
    # for an isotropic 3D Gaussian with per-axis std s: E|e| = s sqrt(8/pi), 90 % radius = 2.50 s
    ax.plot(x, x * np.sqrt(8 / np.pi), "k:", label="ideal mean (isotropic Gaussian)")
    ax.plot(x, x * 2.500, "k-.", lw=0.8, label="ideal 90 % radius")
    ax.set_xlabel("predicted per-axis std sqrt(tr(Sigma)/3) [mm]")
    ax.set_ylabel("joint position error [mm]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep_plot(result, path: Path):
    """MPJPE and 90 % coverage vs DDIM steps, one line per (model, N)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, res in result["models"].items():
        sw = res.get("sweep", [])
        for n in sorted({r["n_hyp"] for r in sw}):
            rows = sorted((r for r in sw if r["n_hyp"] == n), key=lambda r: r["steps"])
            st = [r["steps"] for r in rows]
            axes[0].plot(st, [r["mpjpe_mm"] for r in rows], "o-", label=f"{name} N={n}")
            axes[1].plot(st, [r["coverage"]["0.90"] for r in rows], "o-", label=f"{name} N={n}")
        if "encoder_only" in res:
            axes[0].axhline(res["encoder_only"]["mpjpe_mm"], ls=":", color="gray")
    if "baseline" in result["models"]:
        axes[0].axhline(result["models"]["baseline"]["mpjpe_mm"], ls="--", color="k", label="Martinez baseline")
    axes[0].set_xlabel("DDIM steps")
    axes[0].set_ylabel("MPJPE [mm] (dotted: encoder alone)")
    axes[1].axhline(0.9, color="k", lw=0.8)
    axes[1].set_xlabel("DDIM steps")
    axes[1].set_ylabel("coverage of the 90 % ellipsoid (calibrated)")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, nargs="+", default=[WEIGHTS_DIR / "frame"])
    p.add_argument("--baseline", type=Path, default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--steps", type=int, nargs="+", default=[5])
    p.add_argument("--n-hyp", type=int, nargs="+", default=[5])
    p.add_argument("--start-step", type=int, nargs="+", default=[None],
                   help="chain start step(s) (default: the bundle's; K = full chain from H_K)")
    p.add_argument("--max-samples", type=int, default=None, help="subsample the evaluation set")
    p.add_argument("--sweep-samples", type=int, default=2000, help="subset for non-default settings")
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--limit-clips", type=int, default=None)
    p.add_argument("--mocap-dir", type=Path, default=None)
    p.add_argument("--skeleton-map", default=None)
    p.add_argument("--h36m-3d", type=Path, default=None)
    p.add_argument("--h36m-2d", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("evaluation.json"))
    p.add_argument("--plot", type=Path, default=REPO_DIR / "docs" / "lifter_uncertainty.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..lifter import training as T
    from ..lifter.baseline import load_baseline
    from ..lifter.metrics import pa_mpjpe, per_joint_error, summary, coverage, mahalanobis_sq
    from ..lifter.model_io import load_bundle
    from ..lifter.sampler import DiffPoseSampler

    if args.plot is not None and str(args.plot).lower() in ("", "none"):
        args.plot = None
    t0 = time.time()
    d, source = load_eval_data(args, args.stride)
    rng = np.random.default_rng(args.seed)
    n_all = len(d["inputs"])
    idx = np.sort(rng.permutation(n_all)[:args.max_samples]) if args.max_samples else np.arange(n_all)
    sweep_idx = np.sort(rng.permutation(idx)[:args.sweep_samples])
    gt, gt_sweep = d["pose3d"][idx], d["pose3d"][sweep_idx]
    result = {"data": source, "n_samples": int(len(idx)), "n_sweep_samples": int(len(sweep_idx)),
              "stride": args.stride, "models": {}}
    plot_done = False
    for wdir in args.weights:
        b = load_bundle(wdir)
        name = b.config["model"]
        inp = T.Inputs(d, b.window)
        mu = T.predict_regressor(b.encoder, inp, idx)
        res = {"weights": str(wdir), "encoder_only": {
            "mpjpe_mm": float(per_joint_error(mu, gt).mean() * 1000),
            "pa_mpjpe_mm": float(pa_mpjpe(mu, gt).mean() * 1000)}, "sweep": []}
        combos = [(k0, st, n) for k0 in args.start_step for st in args.steps for n in args.n_hyp]
        for c, (k0, steps, n) in enumerate(combos):
                default = c == 0
                sel, g = (idx, gt) if default else (sweep_idx, gt_sweep)
                s = DiffPoseSampler(b, steps, n, start_step=k0)
                ts = time.time()
                mean, raw, hyps = T.run_sampler(s, inp, sel, seed=args.seed)  # uncalibrated cov
                cov = raw * s.var_scale[None, :, None, None]  # calibrated, as the Lifter does
                r = summary(mean, cov, hyps, g)
                r["coverage_uncalibrated"] = coverage(mahalanobis_sq(mean - g, raw))
                r.update({"steps": steps, "n_hyp": n, "start_step": s.start_step, "calibrated": s.calibrated,
                          "calibration_source": s.calibration_source,
                          "sampler_s_per_pose": (time.time() - ts) / len(sel), "n": int(len(sel))})
                if not default:
                    r.pop("per_joint_mm")
                res["sweep"].append(r)
                if default:
                    res["default"] = r
                print(f"[{name}] start {s.start_step:2d} steps {steps:2d} N {n:2d}: MPJPE {r['mpjpe_mm']:.1f} PA {r['pa_mpjpe_mm']:.1f} "
                      f"best-of-N {r['best_of_n_mm']:.1f} spread {r['hyp_spread_mm']:.1f} mm, coverage "
                      f"{r['coverage_uncalibrated']} -> {r['coverage']} NLL {r['nll']:.2f}", flush=True)
                if default and args.plot:
                    err = per_joint_error(mean, g)[:, 1:] * 1000
                    std = np.sqrt(np.trace(cov, axis1=-2, axis2=-1) / 3)[:, 1:] * 1000
                    path = args.plot if not plot_done else args.plot.with_name(
                        f"{args.plot.stem}_{name}{args.plot.suffix}")
                    uncertainty_plot(err, std, path,
                                     f"DiffPose {name} ({source}, steps {steps}, N {n}), calibrated")
                    res["plot"] = str(path)
                    plot_done = True
        result["models"][name] = res
        print(f"[{name}] encoder only: MPJPE {res['encoder_only']['mpjpe_mm']:.1f} mm", flush=True)
    if args.baseline:
        m = load_baseline(args.baseline)
        pred = T.predict_regressor(m, T.Inputs(d, 1), idx)
        result["models"]["baseline"] = {"weights": str(args.baseline),
                                        "mpjpe_mm": float(per_joint_error(pred, gt).mean() * 1000),
                                        "pa_mpjpe_mm": float(pa_mpjpe(pred, gt).mean() * 1000),
                                        "per_joint_mm": (per_joint_error(pred, gt).mean(0) * 1000).round(2).tolist()}
        base = result["models"]["baseline"]
        print(f"[baseline] MPJPE {base['mpjpe_mm']:.1f} PA {base['pa_mpjpe_mm']:.1f} mm", flush=True)
        result["ratio_vs_baseline"] = {k: v["default"]["mpjpe_mm"] / base["mpjpe_mm"]
                                       for k, v in result["models"].items() if "default" in v}
    if args.plot and any(len(v.get("sweep", [])) > 1 for v in result["models"].values()):
        sweep_plot(result, args.plot.with_name(f"{args.plot.stem}_sweep{args.plot.suffix}"))
    result["wall_time_s"] = time.time() - t0
    T.write_json(result, args.out)
    print(json.dumps({"out": str(args.out), "wall_time_s": result["wall_time_s"],
                      "ratio_vs_baseline": result.get("ratio_vs_baseline")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
