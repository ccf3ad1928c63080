"""diffpose-render-data: draw a few training samples (3D skeleton from the side, its image with
noisy keypoints coloured by confidence) into one PNG, to check the data pipeline by eye."""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from diffpose_ros import paths
from diffpose_ros.skeleton import H36M_BONES, H36M_LEFT


def render(d, indices, out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(indices)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 8.4), squeeze=False)
    cmap = plt.get_cmap("RdYlGn")
    for col, i in enumerate(indices):
        p3, root = d["pose3d"][i], d["root"][i]
        ax = axes[0, col]
        # side view of the camera-frame pose: depth (z) to the right, up (-y) up
        for a, b in H36M_BONES:
            colour = "tab:blue" if b in H36M_LEFT else "tab:red" if b in (1, 2, 3, 14, 15, 16) else "k"
            ax.plot(p3[[a, b], 2] + root[2], -p3[[a, b], 1] - root[1], "-", color=colour, lw=2)
        ax.set_aspect("equal")
        ax.set_xlabel("depth z (m)")
        ax.set_ylabel("up -y (m)")
        ax.set_title(f"{d['clip_names'][d['clip'][i]].split('/')[-1][:28]}\nframe {d['frame'][i]}, side view", fontsize=8)
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
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--num", type=int, default=4)
    ap.add_argument("--clips", type=int, default=12, help="clips to load (samples are drawn from them)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from diffpose_ros.data.dataset import load_pairs
    d = load_pairs(args.split, stride=10, cameras_per_clip=2, limit_clips=args.clips, seed=args.seed, cache=False)
    rng = np.random.default_rng(args.seed)
    seqs = rng.choice(np.unique(d["seq"]), size=min(args.num, len(np.unique(d["seq"]))), replace=False)
    indices = [int(rng.choice(np.flatnonzero(d["seq"] == s))) for s in seqs]
    render(d, indices, args.out)
    print(json.dumps({"out": args.out, "samples": indices, "clips": [str(d["clip_names"][d["clip"][i]]) for i in indices]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
