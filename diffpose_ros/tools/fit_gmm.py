"""diffpose-fit-gmm: (re)fit the pose-specific initial distribution H_K of a bundle on the train
split: conf -> 2D sigma map, S3D, the frozen encoder's residual std, and the residual Gaussian
mixture (EM, M kernels). Writes gmm.npz / model.pt (prior) into the bundle and
gmm_report.json. diffpose-train runs the same step between encoder and denoiser training;
refitting after the denoiser was trained changes the forward process it was trained on, so
retrain the denoiser afterwards (diffpose-train --stage denoiser) and recalibrate.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

from ..paths import WEIGHTS_DIR


def main(argv=None):
    p = argparse.ArgumentParser(prog="diffpose-fit-gmm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "frame")
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--max-samples", type=int, default=20000, help="EM subset size")
    p.add_argument("--stride", type=int, default=None, help="default: the stride the bundle was trained with")
    p.add_argument("--limit-clips", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..lifter import training as T
    from ..lifter.model_io import load_bundle, save_bundle
    t0 = time.time()
    b = load_bundle(args.weights)
    stride = args.stride or b.config.get("data", {}).get("stride", 3)
    d = T.load_split("train", stride, args.limit_clips, args.seed)
    inp = T.Inputs(d, b.window)
    _, mu = T.encode(b.encoder, inp)
    b.gmm, report = T.fit_prior_and_gmm(b.prior, d, mu.numpy(), args.components, args.max_samples, args.seed)
    b.calibration = {}
    save_bundle(b, args.weights)
    report.update({"wall_time_s": time.time() - t0, "n_train": len(inp), "components": args.components})
    T.write_json(report, Path(args.weights) / "gmm_report.json")
    print(f"GMM with {args.components} kernels written to {args.weights} ({report['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
