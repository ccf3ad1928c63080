"""diffpose-evaluate: accuracy and uncertainty of lifter bundles on motion they never trained on.

  diffpose-evaluate --weights DIR_FRAME DIR_TEMPORAL --baseline DIR_BASELINE

Rows (the leave-out protocol, data/protocol.py; every bundle must have been trained with
--protocol leave-out-v1, which this checks): `val` (held-out clips of the training sources, adult
bodies drawn as in training: in distribution), `test_source` (a motion source never seen: its skeleton, body size and motions),
`test_actions` (Bandai Namco actions never seen), `test_styles` (styles never seen), and each test
row again with the test skeletons scaled to 0.9 and 1.15 (`test_source@0.9` ...); the test rows keep each clip's own skeleton (1.47 m for Bandai Namco,
1.75 m for iClone) times the scale. Every sample has
its own random camera and detector-like 2D noise; all models see the same samples of a row (the
temporal model its causal window ending at that frame, at 10 fps). --h36m-3d adds a Human3.6M row
(subjects S9 and S11 through the dataset's own cameras; real detections with --h36m-2d; never run
here: the dataset cannot be obtained on this machine).

Per model and row: MPJPE, PA-MPJPE, root error (m and % of the distance), share of true joints
inside the 90 % ellipsoid (root-relative and absolute; 50 / 95 % too), NLL. Rows for DiffPose, its
encoder alone (same placement of the root) and the Martinez baseline trained on the same data in
the same way, both also `, mirrored` (averaged with their pose of the input's mirror image, as
DiffPose's mirror hypotheses are: the same test-time gain without the diffusion); on the
motion-capture rows DiffPose and the baseline again with the floor known (`..., floor known`:
each sample's camera height and tilt given, the body scaled to stand on the floor,
lifter/ground.py). --ablation adds sampling variants (start step, aggregation, N, steps,
antithetic noise, without the mirror image) of the first bundle, and --variant NAME=DIR other trained bundles (denoiser variants).
Writes JSON (--out), a markdown table (--table) and the plot of predicted 90 % radius vs actual
error (--plot).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..paths import REPO_DIR, lifter_bundle
from . import common

EVAL_FPS = 10.0


def _rows(names, scales):
    rows = []
    for name in names:
        for s in ([1.0] if name == "val" else scales):
            rows.append((name, float(s)))
    return rows


def row_label(name, scale):
    return name if scale == 1.0 else f"{name}@{scale:g}"


FLOOR = ", floor known"   # suffix of the rows with the camera's height and tilt given (lifter/ground.py)


def regressor_row(model, d, place=True, ground=False, mirror=False):
    """Pose metrics of a regressor; the root is placed from its pose as DiffPose's is. ground:
    (metrics, metrics with the body scaled by each sample's floor as DiffPose's is). mirror: the
    average of its pose and, mirrored back, its pose of the input's mirror image (what DiffPose's
    mirror hypotheses do, lifter/sampler.py), to tell that gain from the diffusion's."""
    from ..lifter.evaluation import pose_metrics
    from ..lifter.training import predict_regressor
    from ..skeleton import mirror as mirrored
    pose = predict_regressor(model, d)
    if mirror:
        pose = 0.5 * (pose + mirrored(predict_regressor(model, {**d, "inputs": mirrored(d["inputs"])})))
    root = None
    if place:
        from ..lifter.evaluation import placement_inputs
        from ..lifter.placement import place_root
        kn, sigma = placement_inputs(d)
        root, root_cov = place_root(kn, sigma, pose, d["conf"])
    r = pose_metrics(pose, d, root)
    if not ground:
        return r
    from ..lifter.evaluation import ground_of
    from ..lifter.ground import floor_scale
    contact = np.broadcast_to(root_cov[:, None], pose.shape + (3,))
    s, _, used = floor_scale(pose + root[:, None], contact, sigma, d["conf"], ground_of(d))
    rg = pose_metrics(pose * s[:, None, None], d, root * s[:, None])
    rg["floor_used"] = float(used.mean())
    return r, rg


def diffpose_row(bundle, d, steps, n, ground=False, **kw):
    """(metrics, (cov_abs, err) for the plot); ground: (metrics, metrics with the floor known, curve)."""
    from ..lifter.evaluation import ground_terms, lift_set, pose_metrics, publish, uncertainty_metrics
    t0 = time.time()
    raw = lift_set(bundle, d, steps, n, ground=ground, **kw)
    wall = time.time() - t0

    def metrics(t):
        cov_rel, cov_abs, key = publish(bundle, t, steps, n)
        r = pose_metrics(t["pose"], d, t["root"])
        r.update(uncertainty_metrics(t["pose"], cov_rel, t["positions"], cov_abs, d))
        r.update({"steps": steps, "n_hyp": n, "calibration": key, "s_per_sample": wall / len(d["pose3d"])})
        return r, (cov_abs, t["positions"] - (d["pose3d"] + d["root"][:, None]))

    r, curve = metrics(raw)
    if not ground:
        return r, curve
    g = ground_terms(raw)
    rg, _ = metrics(g)
    rg["floor_used"] = float(np.mean(g["ground_used"]))
    return r, rg, curve


def h36m_set(args, window: int) -> dict:
    """Human3.6M test subjects as an evaluation set (causal windows for the temporal model)."""
    from ..data.sequence import causal_windows
    from ..data.h36m import load_h36m
    d = load_h36m("test", args.h36m_3d, args.h36m_2d, stride=args.h36m_stride, seed=args.seed)
    kp = np.concatenate([d["keypoints"], d["conf"][..., None]], -1).astype(np.float32)
    d["inputs"] = kp[causal_windows(d["seq"], d["frame"], window)] if window > 1 else kp
    return common.subset(d, args.max_samples, args.seed)


def radius_plot(curves, path: Path, title: str):
    """Predicted 90 % radius vs the actual error (binned): one line per row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..lifter.evaluation import radius_vs_error
    fig, ax = plt.subplots(figsize=(6.5, 5))
    top = 0.0
    for label, (cov, err) in curves.items():
        rad, e = radius_vs_error(cov, err)
        edges = np.unique(np.quantile(rad, np.linspace(0, 1, 13)))
        xs, q90 = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (rad >= lo) & (rad <= hi)
            if m.sum() >= 30:
                xs.append(1000 * rad[m].mean())
                q90.append(1000 * np.quantile(e[m], 0.9))
        ax.plot(xs, q90, "o-", label=label)
        top = max(top, max(xs + q90))
    ax.plot([0, top], [0, top], "k--", lw=1, label="ideal: 90 % of errors inside the radius")
    ax.set_xlabel("predicted 90 % radius per joint, sqrt(q90 tr(Sigma)/3) [mm]")
    ax.set_ylabel("90th percentile of the actual error [mm]")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result) -> str:
    from ..lifter.evaluation import OCCLUDED_JOINTS, TRUNCATED_JOINTS
    lines = ["| row | model | MPJPE mm | PA-MPJPE mm | root error m (% of distance) | 90 % coverage rel / abs | "
             f"the same, truncated (>= {TRUNCATED_JOINTS} joints outside the image) | "
             f"occluded (>= {OCCLUDED_JOINTS} joints) |", "|---|---|---|---|---|---|---|---|"]
    for row, models in result["rows"].items():
        for name, r in models.items():
            cov = (f"{r['coverage_rel']['0.90']:.2f} / {r['coverage_abs']['0.90']:.2f}"
                   if "coverage_rel" in r else "–")
            groups = [(f"{g['coverage_rel']:.2f} / {g['coverage_abs']:.2f} (n = {g['n']})" if g else "–")
                      for g in (r.get("groups", {}).get(k) for k in ("truncated", "occluded"))]
            root = f"{r['root_error_m']:.2f} ({r['root_error_pct_of_distance']:.1f} %)" if "root_error_m" in r else "–"
            lines.append(f"| {row} | {name} | {r['mpjpe_mm']:.1f} | {r['pa_mpjpe_mm']:.1f} | {root} | {cov} | "
                         + " | ".join(groups) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=lifter_bundle, nargs="+", required=True,
                   help="DiffPose bundles (frame, temporal: the bundled ones; or folders)")
    p.add_argument("--baseline", type=Path, default=None)
    p.add_argument("--rows", nargs="+", default=["val", *common.TEST_ROWS])
    p.add_argument("--scales", type=float, nargs="+", default=list(common.TEST_SCALES))
    p.add_argument("--per-clip", type=int, default=common.TEST_PER_CLIP)
    p.add_argument("--max-samples", type=int, default=None, help="at most this many samples per row")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--n-hyp", type=int, default=5)
    p.add_argument("--h36m-3d", type=Path, default=None,
                   help="also a row on Human3.6M S9/S11 (VideoPose3D data_3d_h36m.npz; its own cameras)")
    p.add_argument("--h36m-2d", type=Path, default=None,
                   help="... with the 2D of this detections file (e.g. data_2d_h36m_cpn_ft_h36m_dbb.npz) "
                        "instead of the projection plus detector-like noise")
    p.add_argument("--h36m-stride", type=int, default=5, help="frame stride (5: 10 fps of the 50 fps capture)")
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--variant", nargs="*", default=[], metavar="NAME=DIR")
    p.add_argument("--out", type=Path, default=Path("evaluation.json"))
    p.add_argument("--table", type=Path, default=None, help="also write the markdown table here")
    p.add_argument("--plot", type=common.plot_path, default=REPO_DIR / "docs" / "lifter_uncertainty.png",
                   help='"none": no plot')
    common.add_data_args(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..lifter.baseline import load_baseline
    from ..lifter.model_io import load_bundle
    t0 = time.time()
    bundles = [load_bundle(w) for w in args.weights]
    variants = [(v.split("=", 1)[0], load_bundle(v.split("=", 1)[1])) for v in args.variant]
    data_cfg = dict(common.bundle_data_config(bundles[0]))
    for b in bundles[1:] + [v for _, v in variants]:
        other = common.bundle_data_config(b)
        if (other["sources"], other["protocol"]) != (data_cfg["sources"], data_cfg["protocol"]):
            raise SystemExit(f"{b.path} was trained on other data than {bundles[0].path}: compare like with like")
    if data_cfg["protocol"] != "leave-out-v1" and any(r != "val" for r in args.rows):
        raise SystemExit(f"{bundles[0].path} was trained with --protocol {data_cfg['protocol']}: the test rows "
                         "are in its training data; evaluate a bundle trained with --protocol leave-out-v1")
    data_cfg["fps"] = EVAL_FPS
    bank = common.load_bank(data_cfg)
    splits = common.splits_for(bank, data_cfg)
    baseline = load_baseline(args.baseline) if args.baseline else None
    result = {"protocol": data_cfg["protocol"], "sources": data_cfg["sources"], "fps": EVAL_FPS,
              "per_clip": args.per_clip, "steps": args.steps, "n_hyp": args.n_hyp, "rows": {}, "ablation": {}}
    curves = {}
    def row_set(name, scale, window):
        if name == "h36m":
            return h36m_set(args, window)
        if name == "val":  # in distribution: held-out clips, adult bodies drawn like training ones
            return common.held_out_draws(bank, splits["val"], window, args.max_samples or 3000, args.seed + 3,
                                         data_cfg)
        return common.subset(common.fixed_set(bank, splits[name], window, args.per_clip, scale, args.seed, data_cfg),
                             args.max_samples, args.seed)

    rows = _rows(args.rows, args.scales) + ([("h36m", 1.0)] if args.h36m_3d else [])
    for name, scale in rows:
        label = row_label(name, scale)
        sets = {}
        res = {}
        for b in bundles:
            w = b.window
            if w not in sets:
                sets[w] = row_set(name, scale, w)
            d = sets[w]
            model = b.config["model"]
            floor = "cam_height" in d   # a Human3.6M row has no floor
            out = diffpose_row(b, d, args.steps, args.n_hyp, ground=floor, seed=args.seed)
            r, curve = out[0], out[-1]
            res[f"DiffPose {model}"] = r
            res[f"encoder {model}"] = regressor_row(b.encoder, d)
            if b.mirror:
                res[f"encoder {model}, mirrored"] = regressor_row(b.encoder, d, mirror=True)
            rg = out[1] if floor else None
            if floor:
                res[f"DiffPose {model}{FLOOR}"] = rg
            if model == "frame" and scale == 1.0:
                curves[label] = curve
            print(f"[{label}] DiffPose {model}: MPJPE {r['mpjpe_mm']:.1f} PA {r['pa_mpjpe_mm']:.1f} root "
                  f"{r['root_error_m']:.3f} m, cov90 rel {r['coverage_rel']['0.90']:.3f} abs "
                  f"{r['coverage_abs']['0.90']:.3f}; encoder {res[f'encoder {model}']['mpjpe_mm']:.1f}" + (
                      f"; floor known ({rg['floor_used']:.0%} used): MPJPE {rg['mpjpe_mm']:.1f} root "
                      f"{rg['root_error_m']:.3f} m ({rg['root_error_pct_of_distance']:.1f} %), cov90 rel "
                      f"{rg['coverage_rel']['0.90']:.3f} abs {rg['coverage_abs']['0.90']:.3f}" if rg else ""), flush=True)
        d1 = sets.get(1) or row_set(name, scale, 1)
        if baseline is not None:
            if "cam_height" in d1:
                res["Martinez baseline"], res[f"Martinez baseline{FLOOR}"] = regressor_row(baseline, d1, ground=True)
            else:
                res["Martinez baseline"] = regressor_row(baseline, d1)
            res["Martinez baseline, mirrored"] = regressor_row(baseline, d1, mirror=True)
            print(f"[{label}] baseline: MPJPE {res['Martinez baseline']['mpjpe_mm']:.1f}" + (
                f", floor known {res[f'Martinez baseline{FLOOR}']['mpjpe_mm']:.1f}" if "cam_height" in d1 else ""),
                flush=True)
        for vname, vb in variants:
            res[vname], _ = diffpose_row(vb, sets.get(vb.window, d1), args.steps, args.n_hyp, seed=args.seed)
        result["rows"][label] = res
        if args.ablation and scale == 1.0:
            result["ablation"][label] = ablation(bundles[0], sets[bundles[0].window], args)
    if args.plot and curves:
        radius_plot(curves, args.plot, f"DiffPose frame (steps {args.steps}, N {args.n_hyp}): absolute 90 % radius")
        result["plot"] = str(args.plot)
    result["wall_time_s"] = time.time() - t0
    from ..lifter.training import write_json
    write_json(result, args.out)
    if args.table:
        args.table.write_text(markdown(result))
    print(markdown(result))
    print(json.dumps({"out": str(args.out), "wall_time_s": result["wall_time_s"]}))
    return 0


ABLATION = (  # name, lift_set keyword arguments (against the bundle's shipped settings)
    ("shipped setting", {}),
    # the variants below without the mirror image's hypotheses (what they were measured as before it)
    ("full-noise start, mean of hypotheses", {"start_step": 50, "sampler_aggregation": "mean", "mirror": False}),
    ("small-noise start (k0 = 15), mean", {"start_step": 15, "sampler_aggregation": "mean", "mirror": False}),
    ("full-noise start, posterior mean, no mirror image", {"start_step": 50, "sampler_aggregation": "posterior",
                                                           "mirror": False}),
    ("joint-wise reprojection selection", {"aggregation": "reprojection", "mirror": False}),
    ("antithetic noise pairs, mean", {"sampler_aggregation": "mean", "antithetic": True, "mirror": False}),
)


def ablation(bundle, d, args):
    out = {}
    for name, kw in ABLATION:
        r, _ = diffpose_row(bundle, d, args.steps, args.n_hyp, seed=args.seed, **kw)
        out[name] = r
        print(f"  [ablation] {name}: MPJPE {r['mpjpe_mm']:.1f} PA {r['pa_mpjpe_mm']:.1f} "
              f"cov90 rel {r['coverage_rel']['0.90']:.3f}", flush=True)
    for steps, n in ((1, 5), (2, 5), (10, 5), (5, 20)):
        r, _ = diffpose_row(bundle, d, steps, n, seed=args.seed)
        out[f"steps {steps}, N {n}"] = r
    return out


if __name__ == "__main__":
    sys.exit(main())
