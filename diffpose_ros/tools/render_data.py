"""diffpose-render-data: draw a few generator samples (3D skeleton from the side, its image with
noisy keypoints coloured by confidence), one per motion source, into one PNG, to check the data
pipeline by eye (data/generator.py: fresh camera, body, mirror and noise per sample)."""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from diffpose_ros import paths
from diffpose_ros.skeleton import H36M_BONES, H36M_LEFT


def render(d, indices, out_path, titles=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(indices)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 8.4), squeeze=False)
    cmap = plt.get_cmap("RdYlGn")
    for col, i in enumerate(indices):
        p3, root = d["pose3d"][i], d["root"][i]
        ax = axes[0, col]
        if "cam_R" in d:
            # side view in the world: horizontal distance from the camera, height above the floor
            R, t = d["cam_R"][i].astype(np.float64), d["cam_t"][i].astype(np.float64)
            world = (p3 + root - t) @ R                       # R^T (p - t)
            centre = -t @ R
            horiz = np.hypot(*(world - centre)[:, [0, 2]].T)
            up = world[:, 1] - centre[1] + d["cam_height"][i]
            xlabel, ylabel = "distance from the camera (m)", "height above the floor (m)"
            ax.axhline(0, color="0.5", lw=1)
        else:   # side view of the camera-frame pose: depth (z) to the right, up (-y) up
            horiz, up = p3[:, 2] + root[2], -p3[:, 1] - root[1]
            xlabel, ylabel = "depth z (m)", "up -y (m)"
        for a, b in H36M_BONES:
            colour = "tab:blue" if b in H36M_LEFT else "tab:red" if b in (1, 2, 3, 14, 15, 16) else "k"
            ax.plot(horiz[[a, b]], up[[a, b]], "-", color=colour, lw=2)
        ax.set_aspect("equal")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        title = titles[col] if titles else f"{d['clip_names'][d['clip'][i]].split('/')[-1][:28]}"
        ax.set_title(f"{title}\nframe {d['frame'][i]}, side view", fontsize=8)
        ax.grid(alpha=0.3)

        ax = axes[1, col]
        w, h = d["image_size"][i]
        K = d["K"][i]
        clean = d["keypoints_clean"][i] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        for a, b in H36M_BONES:
            ax.plot(clean[[a, b], 0], clean[[a, b], 1], "-", color="0.6", lw=1.5)
        vis = d["visible"][i]
        px, conf = d["keypoints_px"][i], d["conf"][i]
        sc = ax.scatter(px[vis, 0], px[vis, 1], c=conf[vis], cmap=cmap, vmin=0, vmax=1, s=22, edgecolors="k", lw=0.4)
        ax.scatter(px[~vis, 0], px[~vis, 1], c=conf[~vis], cmap=cmap, vmin=0, vmax=1, s=40, marker="x")
        ax.add_patch(plt.Rectangle((0, 0), w, h, fill=False, lw=1.5))
        ax.set_xlim(-0.05 * w, 1.05 * w)
        ax.set_ylim(1.05 * h, -0.05 * h)
        ax.set_aspect("equal")
        hfov = np.degrees(2 * np.arctan(w / (2 * K[0, 0])))
        ax.set_title(f"{int(w)}x{int(h)} hfov {hfov:.0f}deg, root depth {root[2]:.1f} m\n"
                     f"grey: true 2D, dots: noisy (x = out of image)", fontsize=8)
    fig.colorbar(sc, ax=axes[1, :].tolist(), shrink=0.8, label="confidence")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, out_path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(paths.REPO_DIR / "docs" / "data_samples.png"))
    ap.add_argument("--data", nargs="+", default=None, metavar="SPEC", help="source specs (default: shared)")
    ap.add_argument("--num", type=int, default=6, help="samples (one per source, in turn)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from diffpose_ros.data.generator import PairGenerator
    from diffpose_ros.data.motion import MotionBank
    bank = MotionBank.load(args.data, progress=False)
    rng = np.random.default_rng(args.seed)
    gen = PairGenerator(bank)
    sources = gen.source_names
    parts, titles = [], []
    for k in range(args.num):
        s = sources[k % len(sources)]
        g = PairGenerator(bank, bank.indices(source=s))
        d = g.sample(rng, 1)
        parts.append(d)
        c = int(d["clip"][0])
        what = bank.meta["action"][c] + (f" / {bank.meta['style'][c]}" if bank.meta["style"][c] else "")
        titles.append(f"{s}: {what[:30]}\n{d['height_m'][0]:.2f} m tall{', mirrored' if d['mirrored'][0] else ''}, "
                      f"camera {d['cam_height'][0]:.1f} m high, tilt {d['cam_tilt_deg'][0]:.0f} deg")
    d = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    render(d, list(range(len(parts))), args.out, titles)
    print(json.dumps({"out": args.out, "samples": [str(bank.meta["key"][c]) for c in d["clip"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
