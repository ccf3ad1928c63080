"""How lifter/ground.py's size prior was chosen: the root error on the val clips (never trained on)
with the floor's scale fused with priors of several widths, and with the floor alone.

    .venv/bin/python scripts/choose_floor_prior.py [--samples 800] [--weights diffpose_ros/weights/frame]

Prints the mean and median root error in % of the distance per prior. Only the val clips are
used, so the choice does not look at the test rows of the leave-out protocol.
"""
import argparse
from pathlib import Path

import numpy as np
import torch

from diffpose_ros.lifter import ground as G
from diffpose_ros.lifter.evaluation import ground_of, lift_set, placement_inputs
from diffpose_ros.lifter.model_io import load_bundle
from diffpose_ros.paths import WEIGHTS_DIR
from diffpose_ros.tools import common

ADULT = 0.16 / 1.70     # the training bodies' stature spread


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "frame")
    p.add_argument("--samples", type=int, default=800)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    b = load_bundle(args.weights)
    cfg = dict(common.bundle_data_config(b))
    bank = common.load_bank(cfg, progress=False)
    val = common.held_out_draws(bank, common.splits_for(bank, cfg)["val"], b.window, args.samples, 3, cfg)
    raw = lift_set(b, val, 5, 5, progress=False)
    _, sigma = placement_inputs(val)
    dist = np.linalg.norm(val["root"], axis=-1)
    shipped = G.SIZE_PRIOR_STD
    for name, std in (("typical size (no floor)", None), ("adult spread 0.094", ADULT),
                      ("twice the adult spread 0.188 (shipped)", 2 * ADULT), ("floor alone (prior 100x)", 100 * ADULT)):
        s = np.ones(len(dist))
        if std is not None:
            G.SIZE_PRIOR_STD = std
            s, _, _ = G.floor_scale(raw["positions"], raw["hyp_cov_abs"] + raw["cov_t2d"][:, None], sigma,
                                    val["conf"], ground_of(val))
        e = 100 * np.linalg.norm(raw["root"] * s[:, None] - val["root"], axis=-1) / dist
        print(f"{name:40s} root error {e.mean():5.2f} % of the distance (median {np.median(e):5.2f} %)")
    G.SIZE_PRIOR_STD = shipped


if __name__ == "__main__":
    main()
