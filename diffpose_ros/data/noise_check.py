"""Does a keypoint confidence mean in training what it means at run time? (issue 12, the noise check)

    python -m diffpose_ros.data.noise_check [--plot docs/noise_check.png] [--json out.json]

Real detector: YOLO11n-pose through diffpose_ros.detector.yolo_pose, mapped to H36M-17 by
detector/coco_to_h36m.py, exactly as the node runs it, on the shared photos and 16 vtest.avi
frames under the 16 test-time perturbations of detector/uncertainty.py (`measure_spread`: flip,
scale 0.6-1.4, shifts, small rotations): per (person, joint) the per-axis spread of the
keypoint across perturbations and the mean confidence.

Training model: data/noise.py on clean keypoints of generator samples (data/generator.py,
default cameras and bodies): K independent draws of the noise per sample, the same statistic
(per-axis spread across draws, mean confidence).

Both spreads are divided by the person's box diagonal (the detector's box; for the training
samples the keypoint box times the detector's box / keypoint-box ratio measured on the same
photos) and compared by confidence bin and joint group.

What this cannot see: the spread under perturbations is a LOWER BOUND of the detector's error.
A consistent bias (a keypoint always placed 2 cm off, the same wrong limb in every perturbed
copy) does not spread; the training model's spread is its whole error (it has no bias). So at a
given confidence the detector's true error is larger than its spread by an unknown amount, and
the photos are few (5 photos, 16 small vtest pedestrians) and mostly upright, unoccluded people.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from diffpose_ros.data.noise import JOINT_GROUPS
from diffpose_ros.skeleton import H36M_JOINTS

J = {n: i for i, n in enumerate(H36M_JOINTS)}
GROUPS = JOINT_GROUPS
CONF_BINS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)


def detector_stats(seed: int = 0, video_frames: int = 16, threads: int = 2, cache: bool = True):
    """(spread (P,17) px, mean conf (P,17), box diag (P,), box/keypoint-box diag ratio); cached
    in <cache>/noise_check/ keyed by the detector model file, the images and the arguments (the
    detector pass takes minutes on a loaded 2-core machine)."""
    import hashlib
    import os

    from diffpose_ros import paths
    from diffpose_ros.detector.coco_to_h36m import coco_to_h36m
    from diffpose_ros.detector.uncertainty import box_diagonal, fit_images, measure_spread
    from diffpose_ros.detector.yolo_pose import YoloPoseDetector, default_model_path

    files = [default_model_path()] + sorted(paths.IMAGES_DIR.glob("*"))
    sig = json.dumps([[str(f), os.path.getsize(f), int(os.path.getmtime(f))] for f in files] + [seed, video_frames])
    cache_file = paths.cache_dir() / "noise_check" / f"detector_{hashlib.sha1(sig.encode()).hexdigest()[:16]}.npz"
    if cache and cache_file.is_file():
        with np.load(cache_file) as z:
            return z["spread"], z["conf"], z["diag"], float(z["ratio"])
    det = YoloPoseDetector(threads=threads)
    images = fit_images(video_frames)
    spread, conf, diag = measure_spread(det, images, seed=seed)
    ratios = []
    for img in images:
        for d in det.detect(img):
            if d.score < 0.5:
                continue
            kp, c = coco_to_h36m(d.keypoints, d.keypoint_conf)
            kp = kp[c > 0.3]
            if len(kp) >= 8:
                ratios.append(float(box_diagonal(d.box)) / max(float(np.hypot(*np.ptp(kp, axis=0))), 1.0))
    ratio = float(np.median(ratios))
    if cache:
        from diffpose_ros.data.cache import save_npz
        save_npz(cache_file, {"spread": spread, "conf": conf, "diag": diag, "ratio": ratio})
    return spread, conf, diag, ratio


def detector_keypoints(video_frames: int = 16, threads: int = 2, min_score: float = 0.5):
    """H36M keypoints (P,17,2) px and confidences (P,17) of every person the detector finds with
    score >= min_score on the noise-check images (unperturbed), as the live path maps them."""
    from diffpose_ros.detector.coco_to_h36m import coco_to_h36m
    from diffpose_ros.detector.uncertainty import fit_images
    from diffpose_ros.detector.yolo_pose import YoloPoseDetector
    det = YoloPoseDetector(threads=threads)
    kps, confs = [], []
    for img in fit_images(video_frames):
        for d in det.detect(img):
            if d.score >= min_score:
                kp, c = coco_to_h36m(d.keypoints, d.keypoint_conf)
                kps.append(kp)
                confs.append(c)
    return np.array(kps), np.array(confs)


PROPORTIONS = ("nose_above_thorax", "head_above_thorax", "hip_width", "shoulder_width")


def proportions_2d(kp, ok):
    """Per person seen upright and from the front (torso within 20 degrees of the image vertical,
    shoulders at least 0.45 torso lengths apart): image distances divided by the 2D torso length
    (pelvis -> thorax). `ok` (P,) selects persons (e.g. all joints confident)."""
    kp = np.asarray(kp, np.float64)
    torso_v = kp[:, J["pelvis"]] - kp[:, J["thorax"]]            # image y grows downwards
    torso = np.linalg.norm(torso_v, axis=-1)
    upright = (torso_v[:, 1] > 0) & (np.abs(torso_v[:, 0]) < np.tan(np.radians(20)) * torso_v[:, 1])
    sw = np.linalg.norm(kp[:, J["l_shoulder"]] - kp[:, J["r_shoulder"]], axis=-1) / np.maximum(torso, 1e-6)
    keep = ok & upright & (sw > 0.45) & (torso > 10)
    t = torso[keep]
    return {
        "nose_above_thorax": (kp[keep, J["thorax"], 1] - kp[keep, J["neck_nose"], 1]) / t,
        "head_above_thorax": (kp[keep, J["thorax"], 1] - kp[keep, J["head"], 1]) / t,
        "hip_width": np.linalg.norm(kp[keep, J["l_hip"]] - kp[keep, J["r_hip"]], axis=-1) / t,
        "shoulder_width": sw[keep],
    }


def proportion_table(det_kp, det_conf, samples) -> list[dict]:
    """The live path's joints on real photos against the skeleton maps' joints (generator
    samples, clean projections), both for upright people seen from the front."""
    used = [J[n] for n in ("pelvis", "thorax", "neck_nose", "head", "l_hip", "r_hip", "l_shoulder", "r_shoulder")]
    det = proportions_2d(det_kp, (det_conf[:, used] > 0.5).all(1))
    clean = samples["keypoints_clean"].astype(np.float64)     # normalised coordinates: same ratios as pixels
    clean = clean * samples["K"][:, None, [0, 1], [0, 1]]      # (fx ~ fy; the ratios need equal axes)
    train = proportions_2d(clean, samples["visible"][:, used].all(1) & ~samples["occluded"][:, used].any(1))
    rows = []
    for k in PROPORTIONS:
        rows.append({"ratio": k, "detector_n": int(len(det[k])), "detector_median": round(float(np.median(det[k])), 3)
                     if len(det[k]) else None, "maps_n": int(len(train[k])),
                     "maps_median": round(float(np.median(train[k])), 3) if len(train[k]) else None})
    return rows


def training_samples(n_samples: int = 400, seed: int = 0, sources=None) -> dict:
    """Clean generator samples (default cameras and bodies) to put the training noise on."""
    from diffpose_ros.data.generator import PairGenerator
    from diffpose_ros.data.motion import MotionBank
    bank = MotionBank.load(sources, progress=False)
    return PairGenerator(bank).sample(np.random.default_rng(seed), n_samples)


def training_stats(noise, d: dict, draws: int = 16, seed: int = 0, box_ratio: float = 1.0):
    """The detector's statistic for the training noise model on the samples `d`: (spread (n,17)
    px, mean conf (n,17), box diag (n,))."""
    from diffpose_ros.data.noise import apply_noise

    rng = np.random.default_rng(seed)
    n = len(d["visible"])
    clean = d["keypoints_clean"].astype(np.float64) * d["K"][:, None, [0, 1], [0, 1]] + d["K"][:, None, [0, 1], [2, 2]]
    vis = d["visible"]
    rep = lambda a: np.repeat(a[None], draws, axis=0).reshape(-1, *a.shape[1:])   # noqa: E731
    noisy, conf, _, _ = apply_noise(rng, rep(clean), rep(vis), rep(np.ones_like(vis)), rep(d["image_size"]), noise,
                                    occluded=rep(d["occluded"]))
    noisy = noisy.reshape(draws, n, 17, 2)
    conf = conf.reshape(draws, n, 17)
    spread = np.sqrt(((noisy - noisy.mean(0)) ** 2).sum(-1).mean(0) / 2.0)
    kp_box = np.where(vis[..., None], clean, np.nan)
    diag = np.hypot(*(np.nanmax(kp_box, 1) - np.nanmin(kp_box, 1)).T) * box_ratio
    return spread, conf.mean(0), diag


FIT_QUANTILES = (50, 75, 90)


def fit_confidence(det_conf, samples: dict, base=None, seed: int = 0):
    """NoiseConfig whose confidence (per-group kernel width `conf_width`, the lower end of
    `conf_scale_range`, `conf_noise`) makes the training confidences' 50/75/90 % quantiles per
    joint group match the detector's (least squares over a grid; the groups only share the
    scale range and the noise, so each group's width is chosen on its own). The lower quantiles
    are not fitted: there both sides are dominated by what the other parts of the model set
    (missed, out-of-image and self-occluded joints)."""
    import dataclasses

    from diffpose_ros.data.noise import NoiseConfig
    base = base or NoiseConfig()
    groups = list(GROUPS.values())
    target = np.array([np.percentile(det_conf[:, [J[n] for n in names]], FIT_QUANTILES) for names in groups])
    widths = np.round(np.geomspace(1.0, 10.0, 41), 3)
    best = (np.inf, None)
    for lo in (0.85, 0.9, 0.95, 0.98, 1.0):
        for noise in (0.01, 0.02, 0.03, 0.05):
            err = np.empty((len(widths), len(groups)))
            for i, w in enumerate(widths):
                cfg = dataclasses.replace(base, conf_width=(w,) * len(groups), conf_scale_range=(lo, 1.0), conf_noise=noise)
                _, c, _ = training_stats(cfg, samples, seed=seed)
                got = np.array([np.percentile(c[:, [J[n] for n in names]], FIT_QUANTILES) for names in groups])
                err[i] = ((got - target) ** 2).sum(1)
            pick = err.argmin(0)
            total = float(err[pick, np.arange(len(groups))].sum())
            if total < best[0]:
                best = (total, dataclasses.replace(base, conf_width=tuple(float(widths[k]) for k in pick),
                                                   conf_scale_range=(lo, 1.0), conf_noise=noise))
    return best[1], best[0]


def relation(spread, conf, diag):
    """Rows per joint group and confidence bin: samples, median and 90th percentile of spread / diag (%)."""
    rel = spread / diag[:, None] * 100
    rows = []
    for g, names in GROUPS.items():
        cols = [J[n] for n in names]
        r, c = rel[:, cols].ravel(), conf[:, cols].ravel()
        for lo, hi in zip(CONF_BINS[:-1], CONF_BINS[1:]):
            m = (c >= lo) & (c < hi)
            rows.append({"group": g, "conf": f"{lo:.2f}-{min(hi, 1):.2f}", "n": int(m.sum()),
                         "median_pct": round(float(np.median(r[m])), 2) if m.any() else None,
                         "p90_pct": round(float(np.percentile(r[m], 90)), 2) if m.any() else None})
    return rows


def conf_quantiles(conf):
    return {g: np.round(np.percentile(conf[:, [J[n] for n in names]], [10, 25, 50, 75, 90]), 3).tolist()
            for g, names in GROUPS.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plot", default=None, help="write a PNG of both relations")
    ap.add_argument("--json", default=None)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit", action="store_true", help="also fit the confidence parameters to the detector")
    ap.add_argument("--data", nargs="+", default=None, metavar="SPEC",
                    help="motion sources of the training samples (default: shared)")
    ap.add_argument("--before", action="store_true",
                    help="compare the previous confidence model (conf_width 1, scale 0.85-1, noise 0.05) too")
    args = ap.parse_args(argv)
    import dataclasses

    from diffpose_ros.data.noise import NoiseConfig

    ds, dc, dd, ratio = detector_stats(seed=args.seed)
    samples = training_samples(args.samples, args.seed, args.data)
    configs = {"current": NoiseConfig()}
    if args.before:
        # the confidence model before the calibration against the detector (the first weights')
        configs["before"] = NoiseConfig(conf_scale_range=(0.85, 1.0), conf_noise=0.05, conf_width=(1.0, 1.0, 1.0))
    out = {"detector": {"persons": int(len(dd)), "box_over_keypoint_box": round(ratio, 3),
                        "relation": relation(ds, dc, dd), "conf_quantiles_10_25_50_75_90": conf_quantiles(dc)}}
    if args.fit:
        cfg, loss = fit_confidence(dc, samples, seed=args.seed)
        configs["fitted"] = cfg
        out["fitted"] = {"conf_width": cfg.conf_width, "conf_scale_range": cfg.conf_scale_range,
                         "conf_noise": cfg.conf_noise, "loss": round(loss, 5)}
        print(f"fitted: conf_width {cfg.conf_width}, conf_scale_range {cfg.conf_scale_range}, "
              f"conf_noise {cfg.conf_noise} (squared quantile error {loss:.4f})\n")
    det_kp, det_kc = detector_keypoints()
    out["proportions"] = proportion_table(det_kp, det_kc, training_samples(4000, args.seed, args.data))
    stats = {}
    for name, cfg in configs.items():
        ts, tc, td = training_stats(cfg, samples, seed=args.seed, box_ratio=ratio)
        stats[name] = (ts, tc, td)
        out[name] = {"noise": dataclasses.asdict(cfg), "relation": relation(ts, tc, td),
                     "conf_quantiles_10_25_50_75_90": conf_quantiles(tc)}
    print(f"spread / box diagonal (%), median (90th percentile), by joint group and mean-confidence bin; "
          f"detector: {len(dd)} persons under 16 perturbations; training: {len(samples['visible'])} "
          f"generator samples x 16 draws\n")
    names = list(configs)
    print("| group | conf | detector n | detector | " + " | ".join(f"{n} n | {n}" for n in names) + " |")
    print("|---|---|---|---|" + "---|---|" * len(names))
    fmt = lambda r: "-" if r["median_pct"] is None else f"{r['median_pct']} ({r['p90_pct']})"   # noqa: E731
    for i, a in enumerate(out["detector"]["relation"]):
        cells = " | ".join(f"{out[n]['relation'][i]['n']} | {fmt(out[n]['relation'][i])}" for n in names)
        print(f"| {a['group']} | {a['conf']} | {a['n']} | {fmt(a)} | {cells} |")
    print("\nmean-confidence quantiles (10/25/50/75/90 %):")
    for g in GROUPS:
        print(f"  {g:6s} detector {out['detector']['conf_quantiles_10_25_50_75_90'][g]}  " +
              "  ".join(f"{n} {out[n]['conf_quantiles_10_25_50_75_90'][g]}" for n in names))
    print("\nthe live 2D path's joints (YOLO11n-pose + coco_to_h36m on the photos) against the skeleton maps'"
          " (generator samples), upright people seen from the front, in torso lengths (pelvis -> thorax):\n")
    print("| ratio | detector persons | detector median | maps samples | maps median |")
    print("|---|---|---|---|---|")
    for r in out["proportions"]:
        print(f"| {r['ratio']} | {r['detector_n']} | {r['detector_median']} | {r['maps_n']} | {r['maps_median']} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2, default=list)
    if args.plot:
        plot(args.plot, (ds, dc, dd), stats)
    return 0


def plot(path, det, stats):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(GROUPS), figsize=(5 * len(GROUPS), 4), sharey=True)
    colours = {"before": "tab:gray", "current": "tab:orange", "fitted": "tab:green"}
    for ax, (g, names) in zip(axes, GROUPS.items()):
        cols = [J[n] for n in names]
        series = [(v, f"training noise model ({k})", colours.get(k, "tab:red")) for k, v in stats.items()]
        series.append((det, "YOLO11n-pose under perturbations", "tab:blue"))
        for (s, c, d), label, colour in series:
            r = (s / d[:, None] * 100)[:, cols].ravel()
            cc = c[:, cols].ravel()
            ax.scatter(cc, r, s=4, alpha=0.2, color=colour)
            mids, meds = [], []
            for lo, hi in zip(CONF_BINS[:-1], CONF_BINS[1:]):
                m = (cc >= lo) & (cc < hi)
                if m.sum() >= 5:
                    mids.append(np.median(cc[m]))
                    meds.append(np.median(r[m]))
            ax.plot(mids, meds, "-o", color=colour, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("mean keypoint confidence")
        ax.set_title(f"{g}: {', '.join(names)}", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("spread / box diagonal (%), median per bin")
    axes[0].legend(fontsize=7)
    fig.suptitle("confidence -> keypoint spread: the detector's spread under perturbations is a lower "
                 "bound of its error", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
